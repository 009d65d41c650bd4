//! Server-Sent Events over real HTTP on SQLite and PostgreSQL: a live stream gets the tenant's
//! device, alert and link changes as ingest commits them, numbered; a client reconnecting with
//! `Last-Event-ID` resumes exactly after it; `?kinds` narrows; other tenants see nothing.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::fleet::{World, deliver, world};
use common::{Auth, TestServer};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tod_core::telemetry::{DeviceReport, PollStatus, Resources};

/// One parsed server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    id: i64,
    event: String,
    data: Value,
}

/// An open event stream.
struct Stream {
    body: hyper::body::Incoming,
    buffer: String,
}

async fn open(srv: &TestServer, path: &str, auth: &Auth, last_id: Option<&str>) -> Stream {
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header("host", "test");
    if let Auth::Bearer(t) = auth {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    let resp = sender
        .send_request(req.body(http_body_util::Empty::<hyper::body::Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    Stream {
        body: resp.into_body(),
        buffer: String::new(),
    }
}

impl Stream {
    /// The next event, or `None` if none comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = serde_json::from_str(v.trim()).ok();
                    }
                }
                // Keep-alive comments carry no event.
                if let (Some(id), Some(event), Some(data)) = (id, event, data) {
                    return Some(Sse { id, event, data });
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await.ok()??.ok()?;
            if let Ok(bytes) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }

    /// Whether the server ends the stream within `wait` (events before the end are dropped).
    async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    async fn take(&mut self, n: usize) -> Vec<Sse> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next(Duration::from_secs(10)).await {
                Some(e) => out.push(e),
                None => panic!("only {} of {n} events came: {out:?}", out.len()),
            }
        }
        out
    }
}

fn cpu(w: &World, seq: u64, load: f64) -> DeviceReport {
    let mut r = DeviceReport::new(
        w.devices[0].parse().unwrap(),
        seq,
        Utc::now() - chrono::Duration::seconds(10 - seq as i64),
        PollStatus::Online,
    );
    r.resources = Some(Resources {
        cpu_load: Some(load),
        ..Resources::default()
    });
    r
}

async fn the_stream_carries_changes_live_and_resumes_after_the_last_id(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let q = format!("?tenant_id={}", w.tenant);
    let rule = srv
        .call(
            "POST",
            &format!("/api/alerts/rules{q}"),
            &w.root,
            Some(json!({ "name": "Warm", "metric": "cpu_load", "operator": "gt", "threshold": 50.0 })),
        )
        .await;
    assert_eq!(rule.status, 201, "{:?}", rule.json);
    let path = format!("/api/sse/events{q}");
    let mut live = open(&srv, &path, &w.root, None).await;

    deliver(&srv, &w, "sse-1", vec![cpu(&w, 1, 80.0)]).await;
    deliver(&srv, &w, "sse-2", vec![cpu(&w, 2, 10.0)]).await;
    let got = live.take(3).await;
    let names: Vec<&str> = got.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["device.status", "alert.fired", "alert.resolved"], "{got:?}");
    assert!(
        got.windows(2).all(|p| p[1].id == p[0].id + 1),
        "numbered in order: {got:?}"
    );
    assert_eq!(got[0].data["device_id"], json!(w.devices[0]));
    assert_eq!(
        (&got[0].data["from"], &got[0].data["to"]),
        (&json!("unknown"), &json!("online"))
    );
    assert_eq!(got[1].data["rule_id"], rule.json["id"]);
    assert_eq!(got[1].data["hostname"], "dev-0");
    assert_eq!(got[2].data["reason"], "cleared");

    // Reconnecting with the first id resumes exactly after it.
    let mut resumed = open(&srv, &path, &w.root, Some(&got[0].id.to_string())).await;
    let again = resumed.take(2).await;
    assert_eq!(
        again.iter().map(|e| (e.id, e.event.clone())).collect::<Vec<_>>(),
        got[1..].iter().map(|e| (e.id, e.event.clone())).collect::<Vec<_>>()
    );
    // Only what was asked for, from the start of what is kept.
    let mut fired = open(
        &srv,
        &format!("{path}&kinds=alert.fired&last_event_id=0"),
        &w.root,
        None,
    )
    .await;
    let f = fired.take(1).await;
    assert_eq!((f[0].id, f[0].event.as_str()), (got[1].id, "alert.fired"));
    assert!(
        fired.next(Duration::from_millis(1500)).await.is_none(),
        "nothing else matches"
    );

    // Another tenant's stream is empty; bad parameters are refused.
    let other = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await;
    let mut theirs = open(
        &srv,
        &format!(
            "/api/sse/events?tenant_id={}&last_event_id=0",
            other.json["id"].as_str().unwrap()
        ),
        &w.root,
        None,
    )
    .await;
    assert!(theirs.next(Duration::from_millis(1500)).await.is_none());
    let r = srv.call("GET", &format!("{path}&kinds=weather"), &w.root, None).await;
    assert_eq!(r.status, 422, "{:?}", r.json);
    let r = common::request_headers(
        srv.addr,
        "GET",
        &path,
        &[
            ("authorization", &format!("Bearer {}", bearer(&w.root))),
            ("last-event-id", "soon"),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.json);
    let r = srv.call("GET", &path, &Auth::None, None).await;
    assert_eq!(r.status, 401);

    // The live stream saw nothing of the other tenant and is still open for more.
    deliver(&srv, &w, "sse-3", vec![cpu(&w, 3, 90.0)]).await;
    let more = live.take(1).await;
    assert_eq!((more[0].id, more[0].event.as_str()), (got[2].id + 1, "alert.fired"));

    // A server that starts shutting down ends its streams instead of waiting on them.
    srv.state.stopping.send_replace(true);
    assert!(
        live.ends_within(Duration::from_secs(3)).await,
        "the stream ended at shutdown"
    );
}
on_both_backends!(the_stream_carries_changes_live_and_resumes_after_the_last_id);

fn bearer(a: &Auth) -> String {
    match a {
        Auth::Bearer(t) => t.clone(),
        other => panic!("not a bearer: {other:?}"),
    }
}

/// The NATS relay: the same stream published to JetStream under `{prefix}.{tenant}.{event}`, in
/// order, with message ids that JetStream de-duplicates; two replicas relaying at once publish
/// each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_relayed_to_nats_once_each() {
    use futures_util::StreamExt;
    let url = std::env::var("TOD_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = match async_nats::connect(&url).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var_os("TOD_REQUIRE_SERVICES").is_some() {
                panic!("NATS at {url} is required: {e}");
            }
            eprintln!("SKIP: NATS at {url} does not answer ({e})");
            return;
        }
    };
    let db = common::TestDb::sqlite();
    let srv = TestServer::start(&db.url, 1000).await;
    let w = world(&srv).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let config = tod_server::relay::NatsRelayConfig {
        url: url.clone(),
        stream: format!("TODTEST_EVENTS_{tag}"),
        subject_prefix: format!("todtest{tag}.events"),
        every: Duration::from_millis(100),
    };
    let mut sub = client.subscribe(format!("{}.>", config.subject_prefix)).await.unwrap();
    let replicas = [
        tod_server::relay::NatsRelay::start(config.clone(), srv.state.store.clone())
            .await
            .unwrap(),
        tod_server::relay::NatsRelay::start(config.clone(), srv.state.store.clone())
            .await
            .unwrap(),
    ];
    let reports = (0..3)
        .map(|i| DeviceReport::new(w.devices[i].parse().unwrap(), 1, Utc::now(), PollStatus::Online))
        .collect();
    deliver(&srv, &w, "relay-1", reports).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("relayed event")
            .unwrap();
        got.push(m);
    }
    for (i, m) in got.iter().enumerate() {
        assert_eq!(
            m.subject.as_str(),
            format!("{}.{}.device.status", config.subject_prefix, w.tenant)
        );
        let headers = m.headers.as_ref().unwrap();
        assert_eq!(
            headers.get("Nats-Msg-Id").unwrap().as_str(),
            format!("{}:{}", w.tenant, i + 1)
        );
        let data: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(data["to"], "online");
    }
    // Nothing more, though two relays run: one holds the lease, and the position is stored.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), sub.next())
            .await
            .is_err(),
        "an event was published twice"
    );
    assert!(srv.state.store.relay_pending().await.unwrap().is_empty());
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream(&config.stream).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 3);
    for r in &replicas {
        r.stop();
    }
    js.delete_stream(&config.stream).await.unwrap();
    db.drop_db().await;
}
