//! Alert rules: the default device rules, a maintenance window and a site rule with hysteresis,
//! driven by a scripted hour of polls. Prints every alert event.
//!
//! Run: `cargo run -p tod-examples --example alert_rules`

use chrono::{DateTime, Duration, TimeZone, Utc};
use tod_core::alerts::device::{DeviceContext, default_rules};
use tod_core::alerts::site::DEFAULT_SITE_HYSTERESIS;
use tod_core::alerts::{
    AlertBook, AlertEvent, DeviceRule, DeviceRuleEngine, DeviceView, FlapPolicy, MaintenanceWindow, Metrics, SiteRule,
    SiteRuleKind, Snapshot, Subject,
};
use tod_core::{DeviceId, DeviceStatus, RuleId, SiteId, TenantId, WindowId};

fn main() {
    let t0 = Utc.with_ymd_and_hms(2026, 3, 19, 8, 0, 0).single().expect("valid time");
    let at = |min: i64| t0 + Duration::minutes(min);

    // The rules a new tenant starts with.
    let rules: Vec<DeviceRule> = default_rules()
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.into_rule(RuleId::from_u128(i as u128 + 1)))
        .collect();
    println!("default rules:");
    for r in &rules {
        println!(
            "  {:<26} {} {} {} for {} poll(s), {}",
            r.name,
            r.metric,
            r.op.as_str(),
            r.threshold,
            r.duration_polls,
            r.severity
        );
    }
    let mut engine = DeviceRuleEngine::new(rules, FlapPolicy::default());

    let router = DeviceId::from_u128(100);
    let site = SiteId::from_u128(7);
    // Firmware upgrade window from minute 30 to 40: the reboot must not page anyone.
    let windows = [MaintenanceWindow {
        id: WindowId::from_u128(1),
        devices: vec![router],
        sites: vec![],
        start_at: at(30),
        end_at: at(40),
        suppress_alerts: true,
        recurrence: None,
    }];
    println!("\ndevice ap-north-1, one poll a minute:");
    for min in 0..60 {
        let cpu = if (10..18).contains(&min) { 97.0 } else { 20.0 };
        let offline = (31..34).contains(&min) || (50..53).contains(&min);
        let metrics = Metrics {
            cpu_load: (!offline).then_some(cpu),
            device_offline: Some(if offline { 1.0 } else { 0.0 }),
            ..Metrics::default()
        };
        let ctx = DeviceContext {
            id: router,
            hostname: "ap-north-1",
            site: Some(site),
            groups: &[],
        };
        for e in engine.evaluate(ctx, &metrics, at(min), &windows) {
            print_event(at(min), &e);
        }
    }

    // Site rule: more than 25 % of the site's devices offline, confirmed over two 5-minute passes.
    let rule = SiteRule {
        id: RuleId::from_u128(50),
        site,
        sector: None,
        kind: SiteRuleKind::DeviceOfflinePercent,
        name: "Tower north outage".into(),
        threshold: 25.0,
        unit: SiteRuleKind::DeviceOfflinePercent.unit(),
        enabled: true,
        hysteresis: DEFAULT_SITE_HYSTERESIS,
    };
    rule.validate().expect("valid rule");
    let mut book = AlertBook::new(FlapPolicy::default());
    println!(
        "\nsite rule '{}' every 5 minutes (fire after 2 hits, clear after 2 clean passes):",
        rule.name
    );
    let offline_per_pass = [0, 3, 1, 3, 3, 3, 1, 3, 0, 0, 0];
    for (pass, &offline) in offline_per_pass.iter().enumerate() {
        let now = at(pass as i64 * 5);
        let devices = (0..8)
            .map(|i| DeviceView {
                id: DeviceId::from_u128(200 + i),
                hostname: format!("cpe-{i}"),
                site: Some(site),
                sector: None,
                groups: vec![],
                status: if i < offline {
                    DeviceStatus::Offline
                } else {
                    DeviceStatus::Online
                },
                metrics: Metrics::default(),
            })
            .collect();
        let snapshot = Snapshot {
            devices,
            ..Snapshot::empty(TenantId::from_u128(1), now)
        };
        let events = book
            .apply_rule(&rule, &snapshot, &|_: &Subject| None)
            .expect("built-in rules do not fail");
        println!(
            "  pass {pass:>2}: {offline}/8 offline{}",
            if events.is_empty() { "" } else { " ->" }
        );
        for e in events {
            print_event(now, &e);
        }
    }
}

fn print_event(at: DateTime<Utc>, e: &AlertEvent) {
    let when = at.format("%H:%M");
    match e {
        AlertEvent::Fired { alert } => println!(
            "    {when} FIRED     [{}] {} ({:?})",
            alert.severity, alert.message, alert.state
        ),
        AlertEvent::StateChanged { from, to, .. } => println!("    {when} STATE     {from:?} -> {to:?}"),
        AlertEvent::Resolved { reason, fired_at, .. } => {
            println!("    {when} RESOLVED  {reason:?} (fired {})", fired_at.format("%H:%M"))
        }
        AlertEvent::Suppressed { message, .. } => println!("    {when} SUPPRESSED by maintenance: {message}"),
    }
}
