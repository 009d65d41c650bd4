//! Helpers shared by the agent's integration tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// A base port with `n` free ports above it (checked by binding each).
pub fn free_range(n: u16) -> u16 {
    for attempt in 0..200u32 {
        let base = 30_000 + ((std::process::id() * 7 + attempt * 389) % 30_000) as u16;
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range");
}

/// A blocking HTTP/1.1 request; the status and the body as text.
pub fn http_text(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    (
        status,
        text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned()),
    )
}

/// A blocking HTTP/1.1 request with a JSON answer.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = http_text(addr, method, path, body);
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// The URL of a service the test needs, from `var` (or `default`), if it answers on TCP.
/// Without it the test is skipped with a message — unless `TOD_REQUIRE_SERVICES` is set (as
/// `.ci/run` does), in which case it fails.
pub fn service(var: &str, default: &str) -> Option<String> {
    let url = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let hostport = url
        .split("://")
        .nth(1)
        .unwrap_or(&url)
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&hostport.as_str())
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok());
    if reachable {
        return Some(url);
    }
    if std::env::var_os("TOD_REQUIRE_SERVICES").is_some() {
        panic!("{var} ({url}) is required but does not answer");
    }
    eprintln!("SKIP: {url} does not answer; set {var} to a running service to run this test");
    None
}

/// Waits for a child process to exit, failing the test after `limit`.
pub async fn wait_for_exit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not exit within {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Poll targets for the first `n` devices of a simulator, plain API, user admin/admin.
pub fn targets(sim: &tod_agent::sim::Simulator, n: usize) -> Vec<tod_agent::poll::collector::Target> {
    (0..n)
        .map(|i| tod_agent::poll::collector::Target {
            id: tod_core::DeviceId::from_u128(i as u128 + 1),
            addr: sim.ports(i).plain,
            host: "127.0.0.1".into(),
            transport: tod_agent::routeros::client::Transport::Plain,
            credentials: tod_agent::routeros::client::Credentials {
                username: "admin".into(),
                password: "admin".into(),
            },
        })
        .collect()
}

/// The batch an ingest request carries (gzip when its header says so), or the answer refusing
/// it: what a stub of tod-server's `POST /api/ingest` needs.
pub fn ingest_batch(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<tod_core::telemetry::Batch, (axum::http::StatusCode, String)> {
    use axum::http::StatusCode;
    let mut json = Vec::new();
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        if flate2::read::GzDecoder::new(body).read_to_end(&mut json).is_err() {
            return Err((StatusCode::BAD_REQUEST, "bad gzip".into()));
        }
    } else {
        json = body.to_vec();
    }
    tod_core::telemetry::Batch::from_json(&json).map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

/// Serves `app` on a free loopback port; its address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
