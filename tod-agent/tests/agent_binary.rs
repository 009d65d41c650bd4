//! `tod-agent run` as an operator runs it: against simulated devices and a real HTTP ingest,
//! with `/metrics`, `tod-agent status`, and a graceful stop on SIGTERM.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use tod_agent::sim::{SimConfig, Simulator};
use tod_core::telemetry::Batch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_metrics_status_and_sigterm() {
    let sim = Simulator::start(SimConfig {
        seed: 31,
        devices: 10,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let received: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let app = Router::new()
        .route(
            "/api/ingest",
            post(|State(r): State<Arc<Mutex<Vec<Batch>>>>, body: Bytes| async move {
                let mut json = Vec::new();
                flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut json).unwrap();
                r.lock().unwrap().push(Batch::from_json(&json).unwrap());
                "ok"
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingest = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let metrics_port = common::free_range(1);
    let dir = std::env::temp_dir().join(format!("tod-agent-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut toml = format!(
        "[agent]\nid = \"7f3c2f9e-55c1-4c55-9e4a-0d3a3d6b2f10\"\n[server]\nendpoint = \"127.0.0.1:51820\"\ningest = \"{ingest}\"\n\
         [poll]\ninterval_secs = 1\n[spool]\ndir = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
         [[credentials]]\nname = \"sim\"\nusername = \"admin\"\npassword = \"admin\"\n",
        dir.join("spool").display()
    );
    for i in 0..10 {
        toml.push_str(&format!(
            "[[devices]]\nid = \"00000000-0000-0000-0000-{:012}\"\nhost = \"127.0.0.1\"\nport = {}\ntransport = \"plain\"\ncredentials = \"sim\"\n",
            i + 1,
            sim.ports(i).plain.port()
        ));
    }
    let config = dir.join("agent.toml");
    std::fs::write(&config, toml).unwrap();
    let exe = env!("CARGO_BIN_EXE_tod-agent");
    let mut child = Command::new(exe)
        .args(["--config", config.to_str().unwrap(), "run"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let (status, text) = tokio::task::spawn_blocking(move || {
        common::http_text(&format!("127.0.0.1:{metrics_port}"), "GET", "/metrics", "")
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("tod_agent_devices{state=\"ok\"} 10"), "{text}");
    assert!(text.contains("# TYPE tod_agent_polls_total counter"));
    assert!(text.contains("tod_agent_uplink_reports_total"));

    let out = Command::new(exe)
        .args(["--config", config.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("spool:") && shown.contains("00000000-0000-0000-0000-000000000010"),
        "{shown}"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let code = common::wait_for_exit(&mut child, Duration::from_secs(15), "tod-agent after SIGTERM").await;
    assert!(code.success());
    let reports: usize = received.lock().unwrap().iter().map(|b| b.reports.len()).sum();
    assert!(reports >= 20, "delivered {reports} reports");
    let after: tod_agent::daemon::StatusFile =
        serde_json::from_slice(&std::fs::read(dir.join("spool/status.json")).unwrap()).unwrap();
    assert_eq!(after.spool_pending, 0, "the graceful stop delivered what was spooled");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn genkey_writes_a_private_key_file_and_prints_its_public_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("tod-genkey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wg.key");
    let exe = env!("CARGO_BIN_EXE_tod-agent");
    let out = Command::new(exe)
        .args(["genkey", "--out", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let private: tod_tunnel::PrivateKey = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(printed, private.public_key().to_string());
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    // It never overwrites a key.
    let again = Command::new(exe)
        .args(["genkey", "--out", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
