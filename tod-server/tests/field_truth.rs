//! The field-truth scorer end to end: the demo's system (server, simulator, agents, tunnels)
//! through the standard scenarios at an accelerated clock, scored against the simulator's truth.
//! The assertions are about the scorer's bookkeeping and about what any honest fleet system must
//! show — a dead access point or radio reported and its links shown down, a tower's outage as one
//! incident, rain seen by the wet sectors — not about the targets, which the README's figures
//! table reports.

mod common;

use tod_server::score::{Score, ScoreOptions};

/// A file of this test run's own in the temporary directory.
fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tod-field-truth-{}-{name}", std::process::id()))
}

/// Runs a scenario on 40 devices at 12× for `minutes` simulated minutes (on PostgreSQL when
/// `db_url` is one, else on the demo's own SQLite file) and prints its table.
async fn scored(scenario: &str, minutes: u32, db_url: Option<&str>) -> (Score, String) {
    scored_at(scenario, 12.0, minutes, db_url).await
}

/// The same at `speed` times real time.
async fn scored_at(scenario: &str, speed: f64, minutes: u32, db_url: Option<&str>) -> (Score, String) {
    let opts = ScoreOptions {
        scenario: scenario.into(),
        devices: Some(40),
        speed: Some(speed),
        minutes: Some(minutes),
        postgres: db_url.filter(|u| u.starts_with("postgres")).map(str::to_owned),
        ..ScoreOptions::default()
    };
    let score = tod_server::score::run(&opts, &|line| eprintln!("{line}"))
        .await
        .expect("the scenario runs");
    let table = score.table();
    eprintln!("{table}");
    (score, table)
}

async fn an_ap_power_loss_is_scored_against_the_truth(db_url: &str) {
    let (score, table) = scored("ap-power-loss", 15, Some(db_url)).await;

    assert!(score.true_links > 5, "{score:?}");
    // One sample per poll (a minute of simulated time), give or take scheduling.
    assert!((12..=16).contains(&score.samples), "{score:?}");
    assert_eq!(
        score.confusion.total(),
        u64::from(score.samples) * score.true_links as u64,
        "every (link, sample) pair is scored once"
    );
    assert!(
        (0.0..=1.0).contains(&score.link_state_accuracy) && score.link_state_accuracy > 0.5,
        "{score:?}"
    );
    let f = &score.faults[0];
    assert_eq!(f.kind, "ap_power_loss");
    assert!(f.until_sim_secs > f.from_sim_secs, "{f:?}");
    assert!(f.detected, "the dead access point must be reported: {f:?}");
    assert!(
        f.links_down_secs.is_some(),
        "its links must be shown down while it is dead: {f:?}"
    );
    assert!(score.confusion.down_reported_down > 0, "{score:?}");
    assert!(score.alerts_with_cause <= score.alerts);
    // Every alert is in the log, oldest first, and the log agrees with the counts.
    assert_eq!(score.alert_log.len(), score.alerts, "{score:?}");
    assert_eq!(
        score.alert_log.iter().filter(|a| a.with_cause).count(),
        score.alerts_with_cause
    );
    assert!(score.alert_log.windows(2).all(|w| w[0].at_sim_secs <= w[1].at_sim_secs));
    assert!(
        score
            .alert_log
            .iter()
            .any(|a| a.kind == "device_offline" && a.device.as_deref() == Some(f.device.as_str())),
        "the dead access point's own offline alert: {:?}",
        score.alert_log
    );
    assert!(
        table.contains("link-state accuracy") && table.contains("ap_power_loss"),
        "{table}"
    );
    let json = serde_json::to_value(&score).unwrap();
    assert_eq!(json["scenario"], "ap-power-loss");
    assert_eq!(json["faults"][0]["device"], f.device.as_str());
}
on_both_backends!(an_ap_power_loss_is_scored_against_the_truth, multi_thread);

/// A tower's backhaul fails and comes back (on the demo's own SQLite file only: the scorer and the
/// system under test are the same on both backends, and the run takes a minute and a half).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backhaul_outage_is_one_incident_and_its_return_is_shown() {
    let (score, _) = scored("backhaul-outage", 18, None).await;
    let f = &score.faults[0];
    assert_eq!((f.kind.as_str(), f.device.as_str()), ("backhaul_outage", "Tower 01"));
    assert!(f.detected, "the tower's devices must be shown unreachable: {f:?}");
    assert!(
        f.alert_kinds.iter().any(|(k, n)| k == "agent_offline" && *n == 1),
        "one agent-offline incident: {f:?}"
    );
    assert!(
        f.links_down_secs.is_none(),
        "links are not judged by a backhaul outage: {f:?}"
    );
    assert!(
        f.recovered,
        "the tower must be shown back after its agent returns: {f:?}"
    );
    assert_eq!(
        score.confusion.total(),
        u64::from(score.samples) * score.true_links as u64
    );
}

/// A firmware upgrade reboots every device of a tower at once (SQLite only, like the outage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_reboot_is_logged_device_by_device_and_recovers() {
    let (score, table) = scored("mass-reboot", 12, None).await;
    let f = &score.faults[0];
    assert_eq!((f.kind.as_str(), f.device.as_str()), ("mass_reboot", "Tower 01"));
    assert!(f.devices_hit > 1, "{f:?}");
    assert!(
        (f.until_sim_secs - f.from_sim_secs - 90.0).abs() < 1.0,
        "gone for the boot time: {f:?}"
    );
    assert!(f.detected, "the rebooting devices must be shown not online: {f:?}");
    assert_eq!(
        f.reboots_logged,
        Some(f.devices_hit),
        "every device's reboot is in the event log: {f:?}"
    );
    assert!(f.recovered, "the tower must be shown back: {f:?}");
    assert!(table.contains("reboots in the event log"), "{table}");
}

/// Rain over three towers (SQLite only, like the outage): the scenario's weak-signal sector rules
/// see it in the world's time and clear after it, and no link is taken for down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rain_fade_is_reported_by_the_wet_sectors_and_clears() {
    let (score, table) = scored_at("rain-fade", 30.0, 45, None).await;
    assert!(!score.faults.is_empty() && score.faults.len() <= 3, "{score:?}");
    for f in &score.faults {
        assert_eq!(f.kind, "rain_fade");
        assert!(f.detected, "the rain over {} must be reported: {f:?}", f.device);
        assert!(
            f.alert_kinds.iter().any(|(k, _)| k == "sector_signal_avg"),
            "by its sectors' weak-signal rule: {f:?}"
        );
        assert!(f.links_down_secs.is_none(), "{f:?}");
        assert!(
            f.recovered,
            "the rain alerts at {} must clear after it: {f:?}",
            f.device
        );
    }
    assert!(
        score.link_state_accuracy > 0.9,
        "a fade cuts no link, so the links stay as the world has them: {score:?}"
    );
    assert!(table.contains("rain_fade of Tower 01"), "{table}");
}

/// A customer's radio dies for good (SQLite only): shown offline, its link shown down, and one
/// incident raised for it. The run's truth, written as JSON lines, has its death and every
/// sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_cpe_is_shown_offline_with_its_link_down() {
    let truth_file = scratch("dying-cpe-truth.jsonl");
    let opts = ScoreOptions {
        scenario: "dying-cpe".into(),
        devices: Some(40),
        speed: Some(30.0),
        minutes: Some(15),
        truth: Some(truth_file.clone()),
        ..ScoreOptions::default()
    };
    let score = tod_server::score::run(&opts, &|line| eprintln!("{line}"))
        .await
        .expect("the scenario runs");
    eprintln!("{}", score.table());
    let f = &score.faults[0];
    assert_eq!((f.fault.as_str(), score.seed), ("power_off", 7));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&truth_file)
        .expect("the truth was written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let death = lines
        .iter()
        .find(|l| l["type"] == "event" && l["kind"] == "power_off" && l["device"] == f.device.as_str())
        .expect("the radio's power-off is in the truth");
    assert_eq!(death["source"], "injected");
    let died = death["at"].as_f64().unwrap();
    let times: std::collections::BTreeSet<u64> = lines
        .iter()
        .filter(|l| l["type"] == "device")
        .map(|l| l["t"].as_f64().unwrap().to_bits())
        .collect();
    assert_eq!(times.len(), score.samples as usize, "one truth per sample");
    for l in lines
        .iter()
        .filter(|l| l["type"] == "device" && l["name"] == f.device.as_str())
    {
        let t = l["t"].as_f64().unwrap();
        assert_eq!(l["up"], t < died, "{l}");
    }
    std::fs::remove_file(&truth_file).ok();
    assert_eq!(f.kind, "dying_cpe");
    assert!(f.detected, "the dead radio must be shown offline: {f:?}");
    assert!(f.links_down_secs.is_some(), "its link must be shown down: {f:?}");
    assert!(
        f.alert_kinds.iter().any(|(k, _)| k == "device_offline"),
        "an offline alert for it: {f:?}"
    );
    assert!(!f.recovered, "it never comes back: {f:?}");
}

/// A customer's radio drops out for 3 minutes of every 12 (SQLite only): every drop is shown and
/// every return too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_client_is_shown_at_each_drop_and_return() {
    let (score, _) = scored_at("flapping-client", 30.0, 30, None).await;
    assert!(score.faults.len() >= 2, "a drop every 12 minutes: {:?}", score.faults);
    let device = &score.faults[0].device;
    for f in &score.faults {
        assert_eq!((f.kind.as_str(), &f.device), ("client_flap", device), "{f:?}");
        assert!((f.until_sim_secs - f.from_sim_secs - 180.0).abs() < 1.0, "{f:?}");
        assert!(f.detected, "each drop must be shown: {f:?}");
        assert!(f.recovered, "and each return: {f:?}");
    }
}

/// A scenario file runs as written (SQLite only): its own fault on a device named in it, its own
/// length and label, and the run's defaults from its `[run]` table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_file_runs_as_written() {
    let file = scratch("first-ap.toml");
    std::fs::write(
        &file,
        r#"
name = "first-ap-off"
about = "The first tower's first access point off for 4 minutes, one poll in."

[run]
devices = 40
minutes = 8

[[fault]]
kind = "power_off"
label = "first_ap_off"
target = "device:site1-ap1"
at = "1 poll"
lasts = "4 min"
"#,
    )
    .unwrap();
    let opts = ScoreOptions {
        scenario: file.display().to_string(),
        speed: Some(30.0),
        ..ScoreOptions::default()
    };
    let score = tod_server::score::run(&opts, &|line| eprintln!("{line}"))
        .await
        .expect("the scenario runs");
    eprintln!("{}", score.table());
    assert_eq!((score.scenario.as_str(), score.devices), ("first-ap-off", 40));
    assert!((7..=10).contains(&score.samples), "8 simulated minutes: {score:?}");
    let [f] = score.faults.as_slice() else {
        panic!("one fault: {:?}", score.faults)
    };
    assert_eq!((f.kind.as_str(), f.device.as_str()), ("first_ap_off", "site1-ap1"));
    assert!((f.until_sim_secs - f.from_sim_secs - 240.0).abs() < 1.0, "{f:?}");
    assert!(f.from_sim_secs >= 59.0, "one poll in: {f:?}");
    assert!(f.detected, "{f:?}");

    let bad = scratch("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nabout = \"y\"\n[[fault]]\nkind = \"power_off\"\ntarget = \"device:nobody\"\nat = \"1 poll\"\nlasts = \"1 min\"\n").unwrap();
    let e = tod_server::score::run(
        &ScoreOptions {
            scenario: bad.display().to_string(),
            ..ScoreOptions::default()
        },
        &|_| {},
    )
    .await
    .expect_err("a target the world lacks");
    assert!(e.contains("no device `nobody`"), "{e}");
    for f in [file, bad] {
        std::fs::remove_file(f).ok();
    }
}

/// A customer radio's alignment drifts for three weeks after a quiet one (SQLite only). The
/// server and agents read the simulator's clock, so the trend detector compares real weeks: the
/// drift is reported as its link's signal trend, naming the radio and its access point, and every
/// trend reported is a link drifting in the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drift_is_reported_as_its_links_signal_trend() {
    // Four simulated weeks at 14 400×, a poll every 4 simulated hours: under three minutes.
    let (score, table) = scored_at("drift", 14_400.0, 28 * 1_440, None).await;
    assert!(
        (150..=175).contains(&score.samples),
        "a sample a poll over four weeks: {score:?}"
    );
    assert_eq!(score.poll_sim_secs, 14_400.0);
    let [f] = score.faults.as_slice() else {
        panic!("one fault: {:?}", score.faults)
    };
    assert_eq!((f.kind.as_str(), f.fault.as_str()), ("alignment_drift", "drift"));
    assert!(
        (f.from_sim_secs - 7.0 * 86_400.0).abs() <= score.poll_sim_secs,
        "a quiet week first: {f:?}"
    );
    assert!(f.detected, "the drift must be reported: {f:?}\n{table}");
    let after = f.detection_secs.unwrap();
    // 0.5 dB a day: the last week's mean is 5 dB under the earlier week's 13.5 days in; the
    // world's rain in either week and sampling every 4 hours move that by a day or so.
    assert!(
        (10.0 * 86_400.0..=f.detection_target_secs + 2.0 * 86_400.0).contains(&after),
        "detected after {:.1} days: {f:?}",
        after / 86_400.0
    );
    assert_eq!(f.attributed, Some(true), "the trend names the drifting link: {f:?}");
    assert!(f.alert_kinds.iter().any(|(k, _)| k == "signal_trend"), "{f:?}");
    let trends: Vec<_> = score.alert_log.iter().filter(|a| a.kind == "signal_trend").collect();
    assert!(
        trends.iter().all(|a| a.with_cause),
        "every trend reported is a drifting link: {trends:?}"
    );
    assert!(table.contains("names its link"), "{table}");
}
