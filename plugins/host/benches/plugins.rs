//! WASM plugin cost: evaluations per second of the `threshold` example plugin (a link below
//! -75 dBm) on a 50-client sector snapshot, against the same rule built in (native Rust, same
//! `Rule` trait) in the same run; and the per-call overhead — with the instance reused, with the
//! snapshot converted once for several plugins ([`Prepared`]), on an empty snapshot (the floor),
//! and with a fresh instance per call; and the same plugin built for the older row world
//! (`tod:plugin@0.1.0`, one record per link) against the current columnar one.
//!
//! Run: `cargo bench -p tod-plugin-host --bench plugins` (needs `rustup target add
//! wasm32-unknown-unknown`; `TOD_BENCH_PLUGIN_SECS=2` per measurement, 5 rounds, medians).

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tod_core::alerts::{Finding, Hysteresis, LinkView, Rule, RuleError, Severity, Snapshot, Subject};
use tod_core::links::{LinkKey, LinkState};
use tod_core::{DeviceId, RuleId, SiteId, TenantId};
use tod_plugin_host::{Inputs, Limits, PluginHost, Prepared};

/// The threshold plugin's logic, built in.
struct NativeThreshold;

impl Rule for NativeThreshold {
    fn id(&self) -> RuleId {
        RuleId::from_u128(1)
    }
    fn name(&self) -> &str {
        "Weak link"
    }
    fn hysteresis(&self) -> Hysteresis {
        Hysteresis::IMMEDIATE
    }
    fn evaluate(&self, s: &Snapshot) -> Result<Vec<Finding>, RuleError> {
        Ok(s.links
            .iter()
            .filter_map(|l| {
                let dbm = f64::from(l.signal_dbm?);
                (dbm < -75.0).then(|| Finding {
                    subject: Subject::Link(l.key),
                    severity: Severity::Warning,
                    message: format!("signal {dbm} dBm below -75 dBm"),
                    value: Some(dbm),
                    evidence: Vec::new(),
                })
            })
            .collect())
    }
}

fn sector_snapshot(clients: u128) -> Snapshot {
    let mut s = Snapshot::empty(TenantId::from_u128(1), Utc.timestamp_opt(1_800_000_000, 0).unwrap());
    for c in 0..clients {
        s.links.push(LinkView {
            key: LinkKey {
                ap: DeviceId::from_u128(1),
                cpe: DeviceId::from_u128(100 + c),
            },
            site: Some(SiteId::from_u128(7)),
            sector: None,
            state: LinkState::Active,
            // Two of fifty below the threshold, as on a healthy sector.
            signal_dbm: Some(if c % 25 == 0 { -80 } else { -62 }),
            tx_ccq: None,
            trend_delta_db: None,
        });
    }
    s
}

/// Calls per second of `f`, median of 5 rounds of `secs` seconds.
fn rate(secs: f64, mut f: impl FnMut()) -> f64 {
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let budget = Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < budget {
            for _ in 0..16 {
                f();
            }
            n += 16;
        }
        rounds.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

fn main() {
    let secs: f64 = std::env::var("TOD_BENCH_PLUGIN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target"))
        .join("wasm-plugins");
    let dir = tod_plugin_host::build_example_plugins(&target).expect("example plugins build");
    let bytes = std::fs::read(dir.join("tod_plugin_threshold.wasm")).unwrap();
    let host = PluginHost::new(Limits::default()).unwrap();
    let compiled = host.compile(&bytes).unwrap();
    let plugin = host
        .instantiate(&compiled, RuleId::from_u128(2), Hysteresis::IMMEDIATE, Vec::new())
        .unwrap();

    let snap = sector_snapshot(50);
    let native = NativeThreshold;
    assert_eq!(
        native.evaluate(&snap).unwrap(),
        plugin.evaluate(&snap).unwrap(),
        "same verdicts"
    );

    let native_rate = rate(secs, || {
        black_box(native.evaluate(black_box(&snap)).unwrap());
    });
    let wasm_rate = rate(secs, || {
        black_box(plugin.evaluate(black_box(&snap)).unwrap());
    });
    let legacy = host
        .instantiate(
            &host
                .compile(&std::fs::read(dir.join("tod_plugin_legacy_threshold.wasm")).unwrap())
                .unwrap(),
            RuleId::from_u128(4),
            Hysteresis::IMMEDIATE,
            Vec::new(),
        )
        .unwrap();
    assert_eq!(
        native.evaluate(&snap).unwrap(),
        legacy.evaluate(&snap).unwrap(),
        "same verdicts"
    );
    let prepared = Prepared::new(&snap, Inputs::ALL);
    let prepared_rate = rate(secs, || {
        black_box(plugin.evaluate_prepared(black_box(&prepared)).unwrap());
    });
    let empty = Prepared::new(&sector_snapshot(0), Inputs::ALL);
    let floor_rate = rate(secs, || {
        black_box(plugin.evaluate_prepared(black_box(&empty)).unwrap());
    });
    let legacy_rate = rate(secs, || {
        black_box(legacy.evaluate_prepared(black_box(&prepared)).unwrap());
    });
    let fresh_rate = rate(secs.min(1.0), || {
        let p = host
            .instantiate(&compiled, RuleId::from_u128(3), Hysteresis::IMMEDIATE, Vec::new())
            .unwrap();
        black_box(p.evaluate_prepared(&prepared).unwrap());
    });
    // What a restart costs: compiling each example plugin on a host with an empty cache (the
    // compiled-component cache is in memory), against finding it in the cache.
    let mut compiles = Vec::new();
    for name in ["threshold", "aim", "rain_fade", "sector_collapse", "echo"] {
        let bytes = std::fs::read(dir.join(format!("tod_plugin_{name}.wasm"))).unwrap();
        let mut cold: Vec<f64> = (0..5)
            .map(|_| {
                let fresh = PluginHost::new(Limits::default()).unwrap();
                let t = std::time::Instant::now();
                black_box(fresh.compile(&bytes).unwrap());
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        cold.sort_by(f64::total_cmp);
        black_box(host.compile(&bytes).unwrap());
        let t = std::time::Instant::now();
        black_box(host.compile(&bytes).unwrap());
        let cached = t.elapsed().as_secs_f64() * 1e3;
        compiles.push((name, bytes.len(), cold[2], cached));
    }
    let us = |r: f64| 1e6 / r;
    println!("| Case (50-client sector snapshot) | Evaluations/s | µs per call | vs built in |");
    println!("|---|---|---|---|");
    for (name, r) in [
        ("built-in rule (native Rust)", native_rate),
        ("plugin, instance reused, snapshot converted per call", wasm_rate),
        ("plugin, instance reused, snapshot converted once", prepared_rate),
        ("plugin, empty snapshot (call overhead floor)", floor_rate),
        ("plugin, fresh instance per call", fresh_rate),
        (
            "plugin for tod:plugin@0.1.0 (rows), snapshot converted once",
            legacy_rate,
        ),
    ] {
        println!("| {name} | {r:.0} | {:.2} | {:.3} |", us(r), r / native_rate);
    }
    println!("\n| Example plugin | Component bytes | Compile, empty cache (ms, median of 5) | From the cache (ms) |");
    println!("|---|---|---|---|");
    for (name, size, cold, cached) in &compiles {
        println!("| {name} | {size} | {cold:.1} | {cached:.3} |");
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "plugins",
            "compile_ms": compiles.iter().map(|(n, size, cold, cached)| serde_json::json!({
                "plugin": n, "bytes": size, "cold_ms": cold, "cached_ms": cached,
            })).collect::<Vec<_>>(),
            "snapshot_links": 50,
            "native_per_s": native_rate,
            "wasm_per_s": wasm_rate,
            "wasm_prepared_per_s": prepared_rate,
            "wasm_empty_per_s": floor_rate,
            "wasm_fresh_instance_per_s": fresh_rate,
            "wasm_v0_1_rows_prepared_per_s": legacy_rate,
        })
    );
}
