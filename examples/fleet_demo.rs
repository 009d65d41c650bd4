//! A simulated WISP running through tod-core's engines, in one process, as fast as the CPU allows.
//!
//! Sites with sectors, one AP per sector, CPEs per AP, polled once a simulated minute. Scripted
//! trouble: a rain fade over one site, a dying CPE, a flapping client, an AP outage. Every poll
//! goes through link discovery and the device rules; every 5 simulated minutes the site rules run.
//! Prints progress each simulated half hour and the site health at the end.
//!
//! The domain library alone, for embedders: no network, no database. The whole system (server,
//! simulator, agents, tunnels) runs with `cargo run --release -p tod-server -- demo`.
//!
//! Run: `cargo run --release -p tod-examples --example fleet_demo -- [sites] [aps_per_site] [clients_per_ap] [hours]`

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tod_core::alerts::device::{DeviceContext, default_rules};
use tod_core::alerts::site::DEFAULT_SITE_HYSTERESIS;
use tod_core::alerts::{
    AlertBook, AlertEvent, DeviceRule, DeviceRuleEngine, DeviceView, FlapPolicy, LinkView, Metrics, SectorView,
    SiteRule, SiteRuleKind, Snapshot, Subject,
};
use tod_core::links::{LinkConfig, LinkState};
use tod_core::sites::{sector_stats, site_rollup};
use tod_core::telemetry::{DeviceReport, PollStatus};
use tod_core::{DeviceStatus, RuleId, SectorId, SiteId, TenantId};
use tod_examples::{Fleet, registration};

fn arg(i: usize, default: usize) -> usize {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let (sites, aps_per_site, clients, hours) =
        (arg(1, 4).max(2), arg(2, 3).max(2), arg(3, 25).max(2), arg(4, 3).max(1));
    let fleet = Fleet::new(sites * aps_per_site, clients, 2026);
    let site_of = |ap: usize| SiteId::from_u128(1 + (ap / aps_per_site) as u128);
    let sector_of = |ap: usize| SectorId::from_u128(1000 + ap as u128);
    let tenant = TenantId::from_u128(1);
    println!(
        "TOD fleet demo (tod-core engines only; server, agents and tunnel are not built yet)\n\
         {sites} sites, {} APs, {} CPEs, {hours} simulated hours, one poll per AP per minute\n",
        fleet.aps.len(),
        fleet.aps.len() * clients
    );

    let mut links = fleet.tracker(LinkConfig::default());
    let device_rules: Vec<DeviceRule> = default_rules()
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.into_rule(RuleId::from_u128(i as u128 + 1)))
        .collect();
    let mut device_engine = DeviceRuleEngine::new(device_rules, FlapPolicy::default());
    let mut site_rules: Vec<SiteRule> = Vec::new();
    for s in 0..sites {
        let site = SiteId::from_u128(1 + s as u128);
        let name = format!("site-{} outage", s + 1);
        site_rules.push(site_rule(
            100 + s as u128,
            &name,
            site,
            None,
            SiteRuleKind::DeviceOfflinePercent,
            20.0,
        ));
        for a in 0..aps_per_site {
            let (ap, sector) = (s * aps_per_site + a, format!("sector {}-{}", s + 1, a + 1));
            let weak = format!("{sector} weak signal");
            site_rules.push(site_rule(
                10_000 + ap as u128,
                &weak,
                site,
                Some(sector_of(ap)),
                SiteRuleKind::SectorSignalAvg,
                -72.0,
            ));
            let drop = format!("{sector} client drop");
            site_rules.push(site_rule(
                20_000 + ap as u128,
                &drop,
                site,
                Some(sector_of(ap)),
                SiteRuleKind::SectorClientDrop,
                30.0,
            ));
        }
    }
    let mut site_book = AlertBook::new(FlapPolicy::default());

    // The script. Minutes are simulated.
    let rain_site = 1;
    let (rain_from, rain_to) = (60u64, 130u64);
    let (outage_ap, outage_from, outage_to) = (1usize, 95u64, 125u64);
    let dying = (0usize, 0usize);
    let flapper = (0usize, 1usize);

    let mut counts: HashMap<&'static str, u64> = HashMap::new();
    let mut clients_history: Vec<HashMap<SectorId, u32>> = Vec::new();
    let mut last_signal: HashMap<SectorId, Option<f64>> = HashMap::new();
    let started = Instant::now();
    let mut entries = 0u64;
    for minute in 0..hours as u64 * 60 {
        let now = fleet.poll_time(minute, 60);
        let mut sector_clients: HashMap<SectorId, u32> = HashMap::new();
        for ap in 0..fleet.aps.len() {
            let ap_id = fleet.aps[ap].id;
            let offline = ap == outage_ap && (outage_from..outage_to).contains(&minute);
            let mut regs = if offline {
                Vec::new()
            } else {
                fleet.registrations(ap, minute, |c| {
                    !((ap, c) == flapper && (90..150).contains(&minute) && (minute / 3) % 2 == 1)
                })
            };
            for (c, r) in regs.iter_mut().enumerate() {
                let mut s = r.signal_dbm.unwrap_or(-60);
                if ap / aps_per_site == rain_site && (rain_from..rain_to).contains(&minute) {
                    s -= 12;
                }
                if (ap, c) == dying && minute > 30 {
                    s -= ((minute - 30) / 4).min(40) as i16;
                }
                *r = registration(r.mac, Some(s));
            }
            entries += regs.len() as u64;
            let outcome = if offline {
                links.apply_offline(ap_id, now)
            } else {
                links.apply_registrations(ap_id, now, &regs)
            };
            for c in &outcome.changes {
                *counts.entry(state_counter(c.to)).or_default() += 1;
            }
            let status = if offline {
                PollStatus::Offline {
                    reason: "timeout".into(),
                }
            } else {
                PollStatus::Online
            };
            let report = DeviceReport {
                registrations: (!offline).then(|| regs.clone()),
                ..DeviceReport::new(ap_id, minute + 1, now, status)
            };
            let metrics = Metrics::from_report(&report);
            let hostname = format!("ap-{}-{}", ap / aps_per_site + 1, ap % aps_per_site + 1);
            let ctx = DeviceContext {
                id: ap_id,
                hostname: &hostname,
                site: Some(site_of(ap)),
                groups: &[],
            };
            for e in device_engine.evaluate(ctx, &metrics, now, &[]) {
                count_event(&mut counts, &e);
                print_event(now, &e);
            }
            sector_clients.insert(sector_of(ap), regs.len() as u32);
            let sig: Vec<i16> = regs.iter().filter_map(|r| r.signal_dbm).collect();
            last_signal.insert(
                sector_of(ap),
                (!sig.is_empty()).then(|| sig.iter().map(|&s| f64::from(s)).sum::<f64>() / sig.len() as f64),
            );
        }
        clients_history.push(sector_clients);

        if minute % 5 == 4 {
            let snapshot = snapshot(
                tenant,
                now,
                &fleet,
                &links,
                &last_signal,
                &clients_history,
                site_of,
                sector_of,
            );
            for rule in &site_rules {
                let events = site_book
                    .apply_rule(rule, &snapshot, &|_: &Subject| None)
                    .expect("built-in rules do not fail");
                for e in events {
                    count_event(&mut counts, &e);
                    print_event(now, &e);
                }
            }
        }
        if minute % 30 == 29 {
            let (up, degraded, down) = link_summary(&links);
            println!(
                "[{}] polls {:>6}  links up {up} (degraded {degraded}) down {down}  alerts fired {} open {}",
                now.format("%H:%M"),
                (minute + 1) * fleet.aps.len() as u64,
                counts.get("fired").copied().unwrap_or(0),
                device_engine.book().active_count() + site_book.active_count()
            );
        }
    }
    let elapsed = started.elapsed();

    println!("\nsite health at the end:");
    println!(
        "  {:<8} {:>7} {:>7} {:>8} {:>7}   sectors (clients/avg dBm/degraded)",
        "site", "devices", "online", "online%", "alerts"
    );
    let open_site_alerts: HashSet<Subject> = site_book.open_alerts().map(|a| a.subject).collect();
    for s in 0..sites {
        let site = SiteId::from_u128(1 + s as u128);
        let aps: Vec<usize> = (s * aps_per_site..(s + 1) * aps_per_site).collect();
        let mut statuses = Vec::new();
        let mut sectors = Vec::new();
        for &ap in &aps {
            let ap_links: Vec<_> = links.links_of_ap(fleet.aps[ap].id).collect();
            statuses.push(
                if links.ap_last_report(fleet.aps[ap].id).is_some() && !ap_links.is_empty() {
                    DeviceStatus::Online
                } else {
                    DeviceStatus::Offline
                },
            );
            statuses.extend(ap_links.iter().map(|l| {
                if l.state.is_up() {
                    DeviceStatus::Online
                } else {
                    DeviceStatus::Offline
                }
            }));
            let st = sector_stats(1 + clients as u32, ap_links.iter().copied());
            sectors.push(format!(
                "{}/{}/{}",
                st.clients,
                st.avg_signal_dbm.map_or("-".into(), |v| v.to_string()),
                st.degraded_links
            ));
        }
        let alerts = open_site_alerts
            .iter()
            .filter(|sub| match sub {
                Subject::Site(x) => *x == site,
                Subject::Sector(sec) => aps.iter().any(|&ap| sector_of(ap) == *sec),
                _ => false,
            })
            .count() as u32;
        let r = site_rollup(statuses, alerts);
        println!(
            "  {:<8} {:>7} {:>7} {:>7.1}% {:>7}   {}",
            format!("site-{}", s + 1),
            r.device_count,
            r.online_count,
            r.online_percent,
            r.alert_count,
            sectors.join("  ")
        );
    }
    println!(
        "\n{} registration entries and {} polls in {:.2?} ({:.1} M entries/s)",
        entries,
        hours as u64 * 60 * fleet.aps.len() as u64,
        elapsed,
        entries as f64 / elapsed.as_secs_f64() / 1e6
    );
}

fn site_rule(
    id: u128,
    name: &str,
    site: SiteId,
    sector: Option<SectorId>,
    kind: SiteRuleKind,
    threshold: f64,
) -> SiteRule {
    SiteRule {
        id: RuleId::from_u128(id),
        site,
        sector,
        kind,
        name: name.into(),
        threshold,
        unit: kind.unit(),
        enabled: true,
        hysteresis: DEFAULT_SITE_HYSTERESIS,
    }
}

#[allow(clippy::too_many_arguments)]
fn snapshot(
    tenant: TenantId,
    now: DateTime<Utc>,
    fleet: &Fleet,
    links: &tod_core::links::LinkTracker,
    last_signal: &HashMap<SectorId, Option<f64>>,
    history: &[HashMap<SectorId, u32>],
    site_of: impl Fn(usize) -> SiteId,
    sector_of: impl Fn(usize) -> SectorId,
) -> Snapshot {
    let mut s = Snapshot::empty(tenant, now);
    let hour_ago = history.len().checked_sub(61).map(|i| &history[i]);
    for (i, ap) in fleet.aps.iter().enumerate() {
        let reporting = links.links_of_ap(ap.id).any(|l| l.last_seen == now) || links.links_of_ap(ap.id).count() == 0;
        s.devices.push(DeviceView {
            id: ap.id,
            hostname: String::new(),
            site: Some(site_of(i)),
            sector: Some(sector_of(i)),
            groups: vec![],
            status: if reporting {
                DeviceStatus::Online
            } else {
                DeviceStatus::Offline
            },
            metrics: Metrics::default(),
        });
        let sector = sector_of(i);
        s.sectors.push(SectorView {
            id: sector,
            site: site_of(i),
            avg_signal_dbm: last_signal.get(&sector).copied().flatten(),
            clients_now: history.last().and_then(|h| h.get(&sector)).copied().unwrap_or(0),
            clients_before: hour_ago.and_then(|h| h.get(&sector)).copied().unwrap_or(0),
            avg_ccq: None,
            throughput_bps: None,
        });
        for l in links.links_of_ap(ap.id) {
            s.links.push(LinkView {
                key: l.key,
                site: Some(site_of(i)),
                sector: Some(sector),
                state: l.state,
                signal_dbm: l.signal_dbm,
                tx_ccq: l.tx_ccq,
                trend_delta_db: None,
            });
        }
    }
    s
}

fn link_summary(links: &tod_core::links::LinkTracker) -> (usize, usize, usize) {
    let (mut up, mut degraded, mut down) = (0, 0, 0);
    for l in links.links() {
        match l.state {
            LinkState::Degraded => {
                up += 1;
                degraded += 1;
            }
            s if s.is_up() => up += 1,
            _ => down += 1,
        }
    }
    (up, degraded, down)
}

fn state_counter(s: LinkState) -> &'static str {
    match s {
        LinkState::Discovered => "discovered",
        LinkState::Active => "active",
        LinkState::Degraded => "degraded",
        LinkState::Down => "down",
        LinkState::Stale => "stale",
    }
}

fn count_event(counts: &mut HashMap<&'static str, u64>, e: &AlertEvent) {
    let k = match e {
        AlertEvent::Fired { .. } => "fired",
        AlertEvent::Resolved { .. } => "resolved",
        AlertEvent::StateChanged { .. } => "state",
        AlertEvent::Suppressed { .. } => "suppressed",
    };
    *counts.entry(k).or_default() += 1;
}

fn print_event(now: DateTime<Utc>, e: &AlertEvent) {
    let when = now.format("%H:%M");
    match e {
        AlertEvent::Fired { alert } => println!(
            "  {when} ALERT    [{}] {} ({:?})",
            alert.severity, alert.message, alert.state
        ),
        AlertEvent::Resolved { fired_at, .. } => println!("  {when} resolved (fired {})", fired_at.format("%H:%M")),
        AlertEvent::StateChanged { from, to, .. } => println!("  {when} alert {from:?} -> {to:?}"),
        AlertEvent::Suppressed { message, .. } => println!("  {when} suppressed: {message}"),
    }
}
