//! `tod-server serve` as an operator runs it: migrates a fresh SQLite file, answers health, and
//! stops cleanly on SIGTERM.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

/// Kills the server if the test fails before it stops it (a leaked server would hold its ports).
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_answers_health_and_stops_on_sigterm() {
    let db = common::TestDb::sqlite();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_tod-server"))
        .arg("serve")
        .env("TOD_DATABASE_URL", &db.url)
        // Never the machine's 51820: another WireGuard (or a server) may hold it.
        .env("TOD_WIREGUARD_LISTEN", "127.0.0.1:0")
        .env("TOD_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env("TOD_ENV", "dev")
        .env("TOD_ADMIN_EMAIL", "ops@example.net")
        .env("TOD_ADMIN_PASSWORD", "a long enough passphrase")
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    // Until it answers: a refused connection, or one reset while the server starts, is tried again.
    let ready = async || -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut text = String::new();
        s.read_to_string(&mut text).await?;
        Ok(text)
    };
    let body = loop {
        match ready().await {
            Ok(text) if !text.is_empty() => break text,
            answer => assert!(Instant::now() < deadline, "tod-server did not come up: {answer:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"database\":\"sqlite\""), "{body}");

    // The bootstrap admin logs in from the command line, as a script would.
    let exe = env!("CARGO_BIN_EXE_tod-server");
    let url = format!("http://127.0.0.1:{port}");
    let login = |password: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(exe)
                .args(["login", "--url", &url, "--email", "OPS@example.net"])
                .env("TOD_PASSWORD", password)
                .output()
                .unwrap()
        })
    };
    let ok = login("a long enough passphrase").await.unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let tokens: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(tokens["token_type"], "bearer");
    let bad = login("wrong").await.unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Invalid credentials"));
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tod-server did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success());
    db.drop_db().await;
}

#[test]
fn production_refuses_to_start_without_a_jwt_key_and_enrol_prints_a_verifier() {
    let out = Command::new(env!("CARGO_BIN_EXE_tod-server"))
        .arg("check-config")
        .env_remove("TOD_JWT_SECRET")
        .env_remove("TOD_ENV")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOD_JWT_SECRET"));
    let out = Command::new(env!("CARGO_BIN_EXE_tod-server"))
        .args(["enrol", "--email", "New@Example.net"])
        .env("TOD_PASSWORD", "secret words")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["email"], "new@example.net");
    assert_eq!(v["srp_salt"].as_str().unwrap().len(), 32);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret words"));
}
