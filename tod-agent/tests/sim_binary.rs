//! The `tod-sim` command-line contract: device i on BASE_PORT + i, a manifest, the control
//! surface, and a clean exit on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tod_agent::routeros::client::{Client, ClientConfig, Credentials, Error, Transport};

#[tokio::test]
async fn cli_contract_manifest_control_and_sigterm() {
    let base = common::free_range(12);
    let control_port = base + 10;
    let dir = std::env::temp_dir().join(format!("tod-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("manifest.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tod-sim"))
        .args([
            "--devices",
            "8",
            "--seed",
            "5",
            "--base-port",
            &base.to_string(),
            "--password",
            "pw",
        ])
        .args([
            "--manifest",
            manifest.to_str().unwrap(),
            "--control",
            &format!("127.0.0.1:{control_port}"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !manifest.exists() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let devices = m["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 8);
    for (i, d) in devices.iter().enumerate() {
        assert_eq!(d["port"], u64::from(base) + i as u64);
        assert!(d["interfaces"][0]["mac"].as_str().unwrap().contains(':'));
        assert!(["ap", "cpe", "router"].contains(&d["role"].as_str().unwrap()));
    }

    let creds = Credentials {
        username: "admin".into(),
        password: "pw".into(),
    };
    let addr = format!("127.0.0.1:{}", base + 3).parse().unwrap();
    let c = Client::connect(addr, "127.0.0.1", &Transport::Plain, &creds, ClientConfig::default())
        .await
        .unwrap();
    assert_eq!(
        c.print("/system/identity", &[], &[]).await.unwrap()[0]
            .get("name")
            .unwrap(),
        devices[3]["name"].as_str().unwrap()
    );

    let ctl = format!("127.0.0.1:{control_port}");
    let (status, list) = tokio::task::spawn_blocking({
        let ctl = ctl.clone();
        move || common::http(&ctl, "GET", "/devices", "")
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(list[3]["stats"]["logins"], 1);
    let (status, _) = tokio::task::spawn_blocking({
        let ctl = ctl.clone();
        move || common::http(&ctl, "PUT", "/devices/4/faults", r#"{"auth_fail": true}"#)
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    let addr4 = format!("127.0.0.1:{}", base + 4).parse().unwrap();
    let refused = Client::connect(addr4, "127.0.0.1", &Transport::Plain, &creds, ClientConfig::default()).await;
    assert!(matches!(refused, Err(Error::AuthFailed(_))), "{refused:?}");
    let (status, body) = tokio::task::spawn_blocking({
        let ctl = ctl.clone();
        move || common::http(&ctl, "PUT", "/devices/99/faults", "{}")
    })
    .await
    .unwrap();
    assert_eq!((status, body["detail"].as_str().unwrap()), (404, "no device 99"));
    let (status, _) =
        tokio::task::spawn_blocking(move || common::http(&ctl, "PUT", "/devices/1/faults", r#"{"nonsense": 1}"#))
            .await
            .unwrap();
    assert_eq!(status, 422, "unknown fault names are rejected");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = common::wait_for_exit(&mut child, Duration::from_secs(10), "tod-sim after SIGTERM").await;
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
