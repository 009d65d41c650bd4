//! An independent client agrees: the Python `librouteros` package logs in to simulated devices
//! (plain and legacy challenge), prints with a proplist and a query, sends a tagged command and
//! meets a trap; its view must match ours.
//!
//! Skips with a message when Python or the package is missing, unless `TOD_REQUIRE_ORACLES` is
//! set (as `.ci/run` does, after installing it).

use std::process::Command;
use std::time::Duration;

use tod_agent::routeros::client::{Client, ClientConfig, Credentials, Transport};
use tod_agent::sim::world::Role;
use tod_agent::sim::{SimConfig, Simulator};

fn oracle_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import librouteros"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("TOD_REQUIRE_ORACLES").is_some() {
            panic!("python3 with librouteros is required (TOD_REQUIRE_ORACLES is set)");
        }
        eprintln!("SKIP: python3 -c 'import librouteros' failed; `pip install librouteros` to run this test");
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librouteros_sees_what_our_client_sees() {
    if !oracle_available() {
        return;
    }
    let anonymous = cfg!(feature = "openssl");
    let sim = Simulator::start(SimConfig {
        seed: 9,
        devices: 300,
        password: "s3cret".into(),
        tls_base_port: anonymous.then_some(0),
        anonymous_tls: anonymous,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let w = sim.world();
    let router = w
        .devices
        .iter()
        .position(|d| d.role == Role::Router && d.version.plain_login())
        .unwrap();
    let legacy = w.devices.iter().position(|d| !d.version.plain_login()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/librouteros_check.py");
    let (plain_port, legacy_port) = (sim.ports(router).plain.port(), sim.ports(legacy).plain.port());
    let adh_port = sim.ports(router).tls.map(|a| a.port().to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([
                script,
                "127.0.0.1",
                &plain_port.to_string(),
                &legacy_port.to_string(),
                "s3cret",
            ])
            .args(adh_port)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let creds = Credentials {
        username: "admin".into(),
        password: "s3cret".into(),
    };
    let config = ClientConfig {
        command_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let ours = Client::connect(sim.ports(router).plain, "127.0.0.1", &Transport::Plain, &creds, config)
        .await
        .unwrap();
    let rows = ours
        .print(
            "/interface",
            &["name", "mac-address"],
            &[tod_agent::routeros::query::eq("type", "ether")],
        )
        .await
        .unwrap();

    assert_eq!(seen["identity"], w.devices[router].name.as_str());
    assert_eq!(seen["legacy_identity"], w.devices[legacy].name.as_str());
    assert_eq!(seen["ether_keys"], serde_json::json!(["mac-address", "name"]));
    let theirs = seen["ether_macs"].as_object().unwrap();
    assert_eq!(theirs.len(), rows.len());
    for r in &rows {
        assert_eq!(
            theirs[r.get("name").unwrap().as_ref()],
            r.get("mac-address").unwrap().as_ref()
        );
    }
    for tags in seen["tagged_replies"].as_array().unwrap() {
        assert_eq!(tags, &serde_json::json!([".tag=oracle7"]));
    }
    assert_eq!(seen["trap"], "no such command prefix");
    assert_eq!(seen["after_trap_identity"], w.devices[router].name.as_str());
    assert_eq!(seen["bad_password"], "invalid user name or password (6)");
    if anonymous {
        assert_eq!(
            seen["adh_identity"],
            w.devices[router].name.as_str(),
            "anonymous-DH with Python's OpenSSL"
        );
    }
}
