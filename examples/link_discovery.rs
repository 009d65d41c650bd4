//! Link discovery over a recorded sequence of AP reports.
//!
//! Reads `data/ap_reports.jsonl` — registration tables one AP reported over time, with RouterOS's
//! raw signal strings and MACs in mixed notations, one late replay, and two clock ticks while the
//! AP is silent — and prints every link state change.
//!
//! Run: `cargo run -p tod-examples --example link_discovery`

use chrono::{DateTime, Utc};
use serde_json::Value;
use tod_core::links::{LinkConfig, LinkState, LinkTracker};
use tod_core::routeros::parse_signal;
use tod_core::{DeviceId, MacAddr};
use tod_examples::registration;

const REPORTS: &str = include_str!("data/ap_reports.jsonl");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ap = DeviceId::from_u128(1);
    let devices = [
        ("ap-north-1", ap, "4c:5e:0c:11:22:00"),
        ("cpe-anderson", DeviceId::from_u128(2), "4C:5E:0C:11:22:01"),
        ("cpe-baker", DeviceId::from_u128(3), "4c5e0c112202"),
        ("cpe-chen", DeviceId::from_u128(4), "4c-5e-0c-11-22-03"),
    ];
    let name = |id: DeviceId| devices.iter().find(|d| d.1 == id).map_or("?", |d| d.0);
    let mut tracker = LinkTracker::new(LinkConfig::default());
    for (_, id, mac) in &devices {
        tracker.set_device_macs(*id, [mac.parse::<MacAddr>()?]);
    }

    println!(
        "{:<20} {:<8} {:<14} {:<12} -> {:<10}",
        "time", "event", "cpe", "from", "to"
    );
    for line in REPORTS.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)?;
        if let Some(at) = v.get("tick").and_then(Value::as_str) {
            let at: DateTime<Utc> = at.parse()?;
            for c in tracker.tick(at) {
                print_change("tick", c.at, name(c.key.cpe), c.from, c.to);
            }
            continue;
        }
        let at: DateTime<Utc> = v["collected_at"].as_str().ok_or("collected_at")?.parse()?;
        let mut regs = Vec::new();
        for r in v["registrations"].as_array().ok_or("registrations")? {
            let mac: MacAddr = r["mac"].as_str().ok_or("mac")?.parse()?;
            regs.push(registration(mac, parse_signal(r["signal"].as_str().unwrap_or(""))?));
        }
        let out = tracker.apply_registrations(ap, at, &regs);
        if out.ignored_as_stale {
            println!(
                "{:<20} {:<8} report not newer than the last applied one: ignored",
                fmt(at),
                "replay"
            );
        }
        for mac in out.unknown_clients {
            println!(
                "{:<20} {:<8} {mac} matches no device (unknown client)",
                fmt(at),
                "unknown"
            );
        }
        for c in out.changes {
            print_change("report", c.at, name(c.key.cpe), c.from, c.to);
        }
    }
    println!("\nfinal:");
    let mut links: Vec<_> = tracker.links().collect();
    links.sort_by_key(|l| l.key);
    for l in links {
        println!(
            "  {} -> {:<13} {:<9} signal {:>4} dBm, last seen {}",
            name(l.key.ap),
            name(l.key.cpe),
            l.state.as_str(),
            l.signal_dbm.map_or("-".into(), |s| s.to_string()),
            fmt(l.last_seen)
        );
    }
    Ok(())
}

fn fmt(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn print_change(event: &str, at: DateTime<Utc>, cpe: &str, from: Option<LinkState>, to: LinkState) {
    let from = from.map_or("(new)", LinkState::as_str);
    println!(
        "{:<20} {:<8} {:<14} {:<12} -> {:<10}",
        fmt(at),
        event,
        cpe,
        from,
        to.as_str()
    );
}
