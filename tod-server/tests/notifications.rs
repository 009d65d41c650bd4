//! Notifications over real sockets on SQLite and PostgreSQL: channels created through the API
//! (secrets never come back), device alert rules linked to them, alerts fired and resolved by
//! ingest, and the dispatcher delivering to a real HTTP receiver (a signed webhook; a
//! Slack-compatible hook that fails each delivery's first attempt with 503 + `Retry-After`; a hook
//! that answers 404) and to a real SMTP server (Python's aiosmtpd, writing a Maildir). The
//! dispatcher runs with an injected clock, so retries are tested without waiting.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use chrono::{Duration, Utc};
use common::fleet::{World, deliver, world};
use common::{Auth, TestServer};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use tod_core::telemetry::{DeviceReport, PollStatus, Resources};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Value,
    raw: Bytes,
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    seen: Arc<Mutex<HashSet<String>>>,
}

impl Receiver {
    async fn start() -> (Self, String) {
        let me = Self::default();
        let app = axum::Router::new().fallback(receive).with_state(me.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (me, base)
    }

    fn at(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }
}

/// `/hook` takes everything; `/slack` refuses each delivery's first attempt (503, retry in 1 s);
/// `/gone` answers 404.
async fn receive(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let path = uri.path().to_owned();
    r.hits.lock().unwrap().push(Hit {
        path: path.clone(),
        headers: headers.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body,
    });
    match path.as_str() {
        "/slack" => {
            let delivery = headers
                .get("x-tod-delivery")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if r.seen.lock().unwrap().insert(delivery) {
                (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]).into_response()
            } else {
                StatusCode::OK.into_response()
            }
        }
        "/gone" => StatusCode::NOT_FOUND.into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// A real SMTP server writing what it receives into a Maildir, or `None` (with a message) when
/// Python's aiosmtpd is missing — unless `TOD_REQUIRE_ORACLES` makes it mandatory.
struct SmtpSink {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl SmtpSink {
    async fn start() -> Option<Self> {
        let present = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            if std::env::var_os("TOD_REQUIRE_ORACLES").is_some() {
                panic!("python3 with aiosmtpd is required (TOD_REQUIRE_ORACLES is set)");
            }
            eprintln!("SKIP (e-mail part): python3 -m pip install aiosmtpd");
            return None;
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(format!("tod-maildir-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = std::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox", dir.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(Self { child, port, dir });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not listen on {port}");
    }

    /// The messages received, parsed by Python's `email` package: subject (decoded), recipients,
    /// plain-text body (decoded).
    fn messages(&self) -> Vec<Value> {
        let script = r#"
import email, email.policy, json, pathlib, sys
out = []
for p in sorted(pathlib.Path(sys.argv[1], 'new').glob('*')):
    m = email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
    out.append({'subject': str(m['Subject']), 'to': str(m['To']),
                'body': m.get_body(('plain',)).get_content()})
print(json.dumps(out))
"#;
        let out = std::process::Command::new("python3")
            .args(["-c", script, self.dir.to_str().unwrap()])
            .output()
            .expect("python3");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON from the mail parser")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cpu(w: &World, device: usize, seq: u64, load: f64) -> DeviceReport {
    let mut r = DeviceReport::new(
        w.devices[device].parse().unwrap(),
        seq,
        Utc::now() - Duration::seconds(20 - seq as i64),
        PollStatus::Online,
    );
    r.resources = Some(Resources {
        cpu_load: Some(load),
        ..Resources::default()
    });
    r
}

async fn alerts_reach_their_channels_with_retries_signatures_and_a_delivery_log(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let q = format!("?tenant_id={}", w.tenant);
    let (recv, base) = Receiver::start().await;
    let smtp = SmtpSink::start().await;

    let rule = |name: &str, threshold: f64| json!({ "name": name, "metric": "cpu_load", "operator": "gt", "threshold": threshold });
    let warm = srv
        .call(
            "POST",
            &format!("/api/alerts/rules{q}"),
            &w.root,
            Some(rule("Warm", 50.0)),
        )
        .await;
    assert_eq!(warm.status, 201, "{:?}", warm.json);
    let hot = srv
        .call(
            "POST",
            &format!("/api/alerts/rules{q}"),
            &w.root,
            Some(rule("Hot", 70.0)),
        )
        .await;
    assert_eq!(hot.status, 201);
    // Before any channel exists: this alert is history, not news, when channels arrive.
    deliver(&srv, &w, "before", vec![cpu(&w, 1, 1, 90.0)]).await;

    // Channels, and what the API refuses.
    let channels = format!("/api/alerts/channels{q}");
    let create = async |body: Value| srv.call("POST", &channels, &w.root, Some(body)).await;
    let secret = "0123456789abcdef-signing-key";
    let hook = create(
        json!({ "name": "NOC hook", "channel_type": "webhook", "url": format!("{base}/hook"), "secret": secret }),
    )
    .await;
    assert_eq!(hook.status, 201, "{:?}", hook.json);
    assert_eq!(hook.json["has_secret"], true);
    assert!(!hook.json.to_string().contains(secret), "the secret never comes back");
    let slack = create(json!({ "name": "Slack", "channel_type": "slack", "url": format!("{base}/slack") })).await;
    assert_eq!(slack.status, 201, "{:?}", slack.json);
    assert!(
        !slack.json.to_string().contains("/slack"),
        "a Slack URL is a secret: {:?}",
        slack.json
    );
    assert_eq!(slack.json["settings"]["url_hint"], "http://127.0.0.1/…");
    let gone = create(json!({ "name": "Dead end", "channel_type": "webhook", "url": format!("{base}/gone") })).await;
    assert_eq!(gone.status, 201);
    let smtp_port = smtp.as_ref().map_or(2525, |s| s.port);
    let mail = create(
        json!({ "name": "NOC mail", "channel_type": "email", "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port, "tls": "none", "from_address": "tod@wisp.test",
        "to_addresses": ["noc@wisp.test"], "fallback": true }),
    )
    .await;
    assert_eq!(mail.status, 201, "{:?}", mail.json);
    assert_eq!(mail.json["settings"]["to_addresses"], json!(["noc@wisp.test"]));
    for (body, why) in [
        (
            json!({ "name": "x", "channel_type": "pager", "url": "http://a" }),
            "unknown type",
        ),
        (
            json!({ "name": "x", "channel_type": "webhook", "url": "ftp://a/b" }),
            "not http",
        ),
        (json!({ "name": "x", "channel_type": "webhook" }), "no url"),
        (
            json!({ "name": "x", "channel_type": "webhook", "url": "http://a", "secret": "short" }),
            "weak secret",
        ),
        (
            json!({ "name": "x", "channel_type": "slack", "url": "http://a", "smtp_host": "h" }),
            "foreign field",
        ),
        (
            json!({ "name": "x", "channel_type": "email", "smtp_host": "h", "from_address": "a@b.c" }),
            "no recipients",
        ),
        (
            json!({ "name": "x", "channel_type": "email", "smtp_host": "h", "from_address": "nope", "to_addresses": ["a@b.c"] }),
            "bad address",
        ),
        (
            json!({ "name": "x", "channel_type": "email", "smtp_host": "h", "from_address": "a@b.c", "to_addresses": ["a@b.c"], "tls": "ssl3" }),
            "bad tls",
        ),
    ] {
        let r = create(body).await;
        assert_eq!(r.status, 422, "{why}: {:?}", r.json);
    }
    let dup = create(json!({ "name": "NOC hook", "channel_type": "webhook", "url": "http://a" })).await;
    assert_eq!(dup.status, 409, "{:?}", dup.json);
    let listed = srv
        .call("GET", &format!("/api/alerts/channels{q}"), &w.root, None)
        .await;
    assert_eq!(listed.json["total"], 4);

    // Warm notifies the hooks; Hot links nothing, so its alerts go to the fallback (mail).
    let id = |r: &common::Resp| r.json["id"].as_str().unwrap().to_owned();
    let warm_channels = format!("/api/alerts/rules/{}/channels{q}", id(&warm));
    let set = srv
        .call(
            "PUT",
            &warm_channels,
            &w.root,
            Some(json!({ "channel_ids": [id(&hook), id(&slack), id(&gone)] })),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.json);
    assert_eq!(set.json["channel_ids"].as_array().unwrap().len(), 3);
    let other = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await;
    let theirs = srv
        .call(
            "POST",
            &format!("/api/alerts/channels?tenant_id={}", id(&other)),
            &w.root,
            Some(json!({ "name": "Theirs", "channel_type": "webhook", "url": "http://127.0.0.1:9/x" })),
        )
        .await;
    assert_eq!(theirs.status, 201);
    let r = srv
        .call(
            "PUT",
            &warm_channels,
            &w.root,
            Some(json!({ "channel_ids": [id(&theirs)] })),
        )
        .await;
    assert_eq!(r.status, 404, "another tenant's channel: {:?}", r.json);
    let r = srv
        .call(
            "GET",
            &format!("/api/alerts/channels/{}{q}", id(&theirs)),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = srv.call("GET", &warm_channels, &w.root, None).await;
    assert_eq!(
        r.json["channel_ids"].as_array().unwrap().len(),
        3,
        "a refused change changes nothing"
    );

    // An alert fires and clears; the dispatcher plans and sends at t0.
    deliver(&srv, &w, "n-1", vec![cpu(&w, 0, 2, 80.0)]).await;
    deliver(&srv, &w, "n-2", vec![cpu(&w, 0, 3, 10.0)]).await;
    let notifier = srv.state.notifier.clone();
    let t0 = Utc::now();
    let first = notifier.pass(t0).await.expect("pass");
    // Warm: fired + resolved to 3 channels; Hot: fired + resolved to the fallback.
    assert_eq!(first.planned, 8, "{first:?}");
    assert_eq!(
        (first.delivered, first.retrying, first.failed),
        (2 + if smtp.is_some() { 2 } else { 0 }, 2, 2),
        "{first:?}"
    );
    let again = notifier.pass(t0).await.unwrap();
    assert_eq!(
        (again.planned, again.delivered),
        (0, 0),
        "planned once; retries not yet due"
    );
    let later = notifier.pass(t0 + Duration::seconds(2)).await.unwrap();
    assert_eq!(
        (later.delivered, later.retrying),
        (2, 0),
        "Retry-After honoured: {later:?}"
    );

    // The signed webhook: fired then resolved, with the facts and a signature over what was sent.
    let hits = recv.at("/hook");
    assert_eq!(hits.len(), 2, "{hits:?}");
    let event = |h: &&Hit| h.headers["x-tod-event"].to_str().unwrap().to_owned();
    let fired = hits.iter().find(|h| event(h) == "alert.fired").expect("firing");
    let resolved = hits.iter().find(|h| event(h) == "alert.resolved").expect("resolution");
    assert_eq!(fired.body["status"], "firing");
    assert_eq!(fired.body["device"], "dev-0");
    assert_eq!(fired.body["value"], 80.0);
    assert_eq!(fired.body["threshold"], 50.0);
    assert_eq!(fired.body["rule_id"], warm.json["id"]);
    assert_eq!(resolved.body["status"], "resolved");
    assert_eq!(resolved.body["reason"], "cleared");
    for h in &hits {
        let ts = h.headers["x-tod-timestamp"].to_str().unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&h.raw);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(h.headers["x-tod-signature"].to_str().unwrap(), expected);
    }
    assert!(
        recv.at("/gone")
            .iter()
            .all(|h| h.headers.get("x-tod-signature").is_none()),
        "no secret, no signature"
    );
    // Slack: each delivery tried twice (503, then taken), as Slack's attachment shape.
    let slack_hits = recv.at("/slack");
    assert_eq!(slack_hits.len(), 4);
    let firing = slack_hits
        .iter()
        .find(|h| h.headers["x-tod-event"] == "alert.fired")
        .expect("the firing reached Slack");
    assert_eq!(firing.body["attachments"][0]["color"], "#f59e0b");
    assert!(
        firing.body["text"]
            .as_str()
            .unwrap()
            .starts_with("[WARNING] dev-0: Warm")
    );
    let resolution = slack_hits
        .iter()
        .find(|h| h.headers["x-tod-event"] == "alert.resolved")
        .expect("the resolution reached Slack");
    assert_eq!(resolution.body["attachments"][0]["color"], "#16a34a");
    // 404 is not retried.
    assert_eq!(recv.at("/gone").len(), 2);

    // The delivery log.
    let log = async |filter: &str| {
        let path = format!("/api/alerts/deliveries{q}{filter}");
        srv.call("GET", &path, &w.root, None).await
    };
    let all = log("").await;
    assert_eq!(all.status, 200, "{:?}", all.json);
    assert_eq!(all.json["total"], 8);
    let failed = log("&state=failed").await;
    assert_eq!(failed.json["total"], 2);
    for d in failed.json["items"].as_array().unwrap() {
        assert_eq!(d["channel_name"], "Dead end");
        assert_eq!(d["last_status"], 404);
        assert_eq!(d["attempts"], 1);
    }
    let slack_log = log(&format!("&channel_id={}", id(&slack))).await;
    for d in slack_log.json["items"].as_array().unwrap() {
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_i64()),
            (Some("delivered"), Some(2))
        );
    }
    assert_eq!(log("&state=sent").await.status, 422);

    // E-mail through a real SMTP server: Hot's firing and resolution, to the fallback channel.
    if let Some(sink) = &smtp {
        let mails = sink.messages();
        assert_eq!(mails.len(), 2, "{mails:?}");
        let subjects: Vec<&str> = mails.iter().map(|m| m["subject"].as_str().unwrap()).collect();
        assert!(
            subjects.contains(&"[TOD FIRING] Hot: cpu_load = 80 (threshold: gt 70) — dev-0"),
            "{subjects:?}"
        );
        assert!(
            subjects.iter().any(|s| s.starts_with("[TOD RESOLVED] Resolved: Hot")),
            "{subjects:?}"
        );
        for m in &mails {
            assert_eq!(m["to"], "noc@wisp.test");
            let body = m["body"].as_str().unwrap();
            assert!(
                body.contains("Device:    dev-0") && body.contains("Threshold: 70"),
                "{body}"
            );
        }
    }

    // A test send answers now; a disabled channel gets nothing more; deleting one drops its log.
    let t = srv
        .call(
            "POST",
            &format!("/api/alerts/channels/{}/test{q}", id(&hook)),
            &w.root,
            None,
        )
        .await;
    assert_eq!((t.status, &t.json["delivered"]), (200, &json!(true)), "{:?}", t.json);
    assert_eq!(recv.at("/hook").last().unwrap().headers["x-tod-event"], "test");
    let off = srv
        .call(
            "PUT",
            &format!("/api/alerts/channels/{}{q}", id(&hook)),
            &w.root,
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(
        (off.status, &off.json["has_secret"]),
        (200, &json!(true)),
        "the secret stays"
    );
    deliver(&srv, &w, "n-3", vec![cpu(&w, 0, 4, 80.0)]).await;
    let p = notifier.pass(t0 + Duration::seconds(3)).await.unwrap();
    assert_eq!(
        p.planned, 3,
        "slack, dead end and the mail fallback, not the disabled hook: {p:?}"
    );
    let r = srv
        .call(
            "DELETE",
            &format!("/api/alerts/channels/{}{q}", id(&gone)),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        log("").await.json["total"],
        8,
        "the dead end's three deliveries went with it"
    );
    let r = srv.call("GET", &warm_channels, &w.root, None).await;
    assert_eq!(r.json["channel_ids"].as_array().unwrap().len(), 2);

    // No credentials, no channels (roles are walked by the RBAC matrix test).
    let listed = srv
        .call("GET", &format!("/api/alerts/channels{q}"), &Auth::None, None)
        .await;
    assert_eq!(listed.status, 401);
}

on_both_backends!(
    alerts_reach_their_channels_with_retries_signatures_and_a_delivery_log,
    multi_thread
);

/// Devices of one site that cross a rule together are one incident, and one incident is one
/// notice: its first alert's firing, and its end once its last alert resolves — not one page per
/// radio when a tower's devices all go at once.
async fn an_incident_is_notified_once_however_many_devices_it_hits(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let q = format!("?tenant_id={}", w.tenant);
    let (recv, base) = Receiver::start().await;
    let rule = srv
        .call(
            "POST",
            &format!("/api/alerts/rules{q}"),
            &w.root,
            Some(
                json!({ "name": "Warm", "metric": "cpu_load", "operator": "gt", "threshold": 50.0,
                "duration_polls": 2 }),
            ),
        )
        .await;
    assert_eq!(rule.status, 201, "{:?}", rule.json);
    let hook = srv
        .call(
            "POST",
            &format!("/api/alerts/channels{q}"),
            &w.root,
            Some(json!({ "name": "NOC hook", "channel_type": "webhook", "url": format!("{base}/hook") })),
        )
        .await;
    assert_eq!(hook.status, 201, "{:?}", hook.json);
    let linked = srv
        .call(
            "PUT",
            &format!("/api/alerts/rules/{}/channels{q}", rule.json["id"].as_str().unwrap()),
            &w.root,
            Some(json!({ "channel_ids": [hook.json["id"]] })),
        )
        .await;
    assert_eq!(linked.status, 200, "{:?}", linked.json);

    // The tower's three devices: cool, all hot at once (two polls, as the rule wants), one cools,
    // all cool.
    let loads: [[f64; 3]; 5] = [[10.0; 3], [80.0; 3], [80.0; 3], [10.0, 80.0, 80.0], [10.0; 3]];
    for (seq, load) in loads.iter().enumerate() {
        let reports = (0..3).map(|d| cpu(&w, d, seq as u64 + 1, load[d])).collect();
        deliver(&srv, &w, &format!("i-{seq}"), reports).await;
    }
    let history = srv
        .call("GET", &format!("/api/alerts{q}&per_page=50"), &w.root, None)
        .await;
    let items = history.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "three alerts: {}", history.json);
    let incidents: HashSet<&str> = items.iter().filter_map(|a| a["incident_id"].as_str()).collect();
    assert_eq!(incidents.len(), 1, "in one incident: {}", history.json);

    let pass = srv.state.notifier.pass(Utc::now()).await.expect("pass");
    assert_eq!(
        (pass.planned, pass.delivered),
        (2, 2),
        "one firing and one end for the incident: {pass:?}"
    );
    let hits = recv.at("/hook");
    let mut events: Vec<String> = hits
        .iter()
        .map(|h| h.headers["x-tod-event"].to_str().unwrap().to_owned())
        .collect();
    events.sort();
    assert_eq!(events, ["alert.fired", "alert.resolved"]);
    let incident = *incidents.iter().next().unwrap();
    for h in &hits {
        assert_eq!(h.body["incident_id"], incident, "{:?}", h.body);
        assert_eq!(
            h.body["device"], "dev-0",
            "as the first device that crossed: {:?}",
            h.body
        );
    }
}

on_both_backends!(an_incident_is_notified_once_however_many_devices_it_hits, multi_thread);
