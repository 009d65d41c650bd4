//! The example plugins, built for wasm32 from `plugins/guest`, judged by the host as tod-core
//! rules; and hostile plugins — each stopped with a clear reason while the others keep running.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tod_core::alerts::{
    AlertBook, AlertEvent, DeviceView, FlapPolicy, HistoryPoint, Hysteresis, LinkView, Metrics, Rule, SectorView,
    Severity, Snapshot, Subject,
};
use tod_core::links::{LinkKey, LinkState};
use tod_core::{DeviceId, DeviceStatus, RuleId, SectorId, SiteId, TenantId};
use tod_plugin_host::{Limits, PluginError, PluginHost, Status, WasmRule};

fn at() -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap()
}

fn dev(n: u128) -> DeviceId {
    DeviceId::from_u128(n)
}

fn site(n: u128) -> SiteId {
    SiteId::from_u128(1000 + n)
}

fn link(ap: u128, cpe: u128, site_n: u128, dbm: i16) -> LinkView {
    LinkView {
        key: LinkKey {
            ap: dev(ap),
            cpe: dev(cpe),
        },
        site: Some(site(site_n)),
        sector: None,
        state: LinkState::Active,
        signal_dbm: Some(dbm),
        tx_ccq: None,
        trend_delta_db: None,
    }
}

fn snapshot() -> Snapshot {
    Snapshot::empty(TenantId::from_u128(7), at())
}

fn load(host: &PluginHost, name: &str, config: &[(&str, &str)]) -> Option<WasmRule> {
    let bytes = common::plugin(name)?;
    let compiled = host.compile(&bytes).expect("compiles");
    let config = config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Some(
        host.instantiate(&compiled, RuleId::from_u128(99), Hysteresis::IMMEDIATE, config)
            .expect("instantiates"),
    )
}

#[test]
fn the_aim_plugin_finds_the_client_far_below_its_aps_median_and_the_book_raises_it() {
    let host = PluginHost::new(Limits::default()).unwrap();
    let Some(aim) = load(&host, "aim", &[("margin_db", "10")]) else {
        return;
    };
    assert_eq!(aim.metadata().name, "CPE aim");
    assert!(aim.metadata().inputs.links && !aim.metadata().inputs.devices);
    let mut s = snapshot();
    for (cpe, dbm) in [(11, -60), (12, -62), (13, -61), (14, -63), (15, -80)] {
        s.links.push(link(1, cpe, 1, dbm));
    }
    // A second AP whose clients are all weak alike: no aim problem there.
    for cpe in 21..25 {
        s.links.push(link(2, cpe, 1, -78));
    }
    let findings = aim.evaluate(&s).expect("evaluates");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        findings[0].subject,
        Subject::Link(LinkKey {
            ap: dev(1),
            cpe: dev(15)
        })
    );
    assert_eq!(findings[0].severity, Severity::Warning);
    assert!(
        findings[0]
            .message
            .contains("18.0 dB below its access point's median (-62.0 dBm)"),
        "{}",
        findings[0].message
    );
    assert_eq!(findings[0].value, Some(-80.0));

    // The same lifecycle as the built-in rules: with hysteresis 2, the second pass fires.
    let rule = host
        .instantiate(
            &host.compile(&common::plugin("aim").unwrap()).unwrap(),
            RuleId::from_u128(5),
            Hysteresis {
                fire_after: 2,
                clear_after: 1,
            },
            Vec::new(),
        )
        .unwrap();
    let mut book = AlertBook::new(FlapPolicy::default());
    assert!(book.apply_rule(&rule, &s, &|_| None).unwrap().is_empty());
    s.at += Duration::minutes(1);
    let events = book.apply_rule(&rule, &s, &|_| None).unwrap();
    assert!(matches!(events.as_slice(), [AlertEvent::Fired { .. }]), "{events:?}");
}

#[test]
fn the_threshold_sector_and_rain_fade_plugins_judge_what_they_read() {
    let host = PluginHost::new(Limits::default()).unwrap();
    let Some(threshold) = load(&host, "threshold", &[]) else {
        return;
    };
    let mut s = snapshot();
    s.links = vec![link(1, 11, 1, -70), link(1, 12, 1, -81)];
    let f = threshold.evaluate(&s).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].subject,
        Subject::Link(LinkKey {
            ap: dev(1),
            cpe: dev(12)
        })
    );

    let collapse = load(&host, "sector-collapse", &[]).unwrap();
    let sector = |n: u128, ccq: Option<f64>, clients: u32| SectorView {
        id: SectorId::from_u128(n),
        site: site(1),
        avg_signal_dbm: Some(-65.0),
        clients_now: clients,
        clients_before: clients,
        avg_ccq: ccq,
        throughput_bps: None,
    };
    s.sectors = vec![
        sector(1, Some(30.0), 8), // collapsed
        sector(2, Some(85.0), 8), // healthy
        sector(3, None, 8),       // RouterOS v7: no CCQ is not "CCQ 0"
        sector(4, Some(10.0), 1), // one client is not a sector
    ];
    let f = collapse.evaluate(&s).unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].subject, Subject::Sector(SectorId::from_u128(1)));
    assert_eq!(f[0].severity, Severity::Critical);

    let rain = load(&host, "rain-fade", &[]).unwrap();
    assert!(rain.metadata().inputs.history);
    // Four links at two sites: an hour at -60 dBm, then the last 15 minutes at -68.
    let mut s = snapshot();
    let links = [(1, 11, 1), (1, 12, 1), (2, 21, 2), (2, 22, 2)];
    for (ap, cpe, st) in links {
        s.links.push(link(ap, cpe, st, -68));
        for m in (1..=75).rev() {
            let dbm = if m <= 15 { -68 } else { -60 };
            s.history.push(HistoryPoint {
                link: LinkKey {
                    ap: dev(ap),
                    cpe: dev(cpe),
                },
                at: at() - Duration::minutes(m) + Duration::seconds(30),
                dbm,
            });
        }
    }
    let f = rain.evaluate(&s).unwrap();
    let subjects: Vec<Subject> = f.iter().map(|f| f.subject).collect();
    assert_eq!(
        subjects,
        vec![Subject::Site(site(1)), Subject::Site(site(2))],
        "one finding per site"
    );
    assert!(f[0].message.contains("4 at 2 sites"), "{}", f[0].message);
    // The same drop at one site only is local, not weather.
    s.links.retain(|l| l.site == Some(site(1)));
    s.history.retain(|h| h.link.ap == dev(1));
    assert!(rain.evaluate(&s).unwrap().is_empty());
}

#[test]
fn hostile_plugins_are_stopped_with_a_reason_and_the_others_keep_running() {
    let limits = Limits {
        fuel_per_call: 50_000_000,
        max_memory_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    };
    let host = PluginHost::new(limits).unwrap();
    let Some(good) = load(&host, "threshold", &[]) else {
        return;
    };
    let mut s = snapshot();
    s.links = vec![link(1, 11, 1, -90)];
    s.devices = vec![DeviceView {
        id: dev(1),
        hostname: "ap-1".into(),
        site: Some(site(1)),
        sector: None,
        groups: Vec::new(),
        status: DeviceStatus::Online,
        metrics: Metrics::default(),
    }];

    for (mode, expect) in [
        ("loop", "ran out of fuel"),
        ("grow", "memory"),
        ("trap", "trapped"),
        ("flood", "memory limit"),
        ("nan", "not a finite number"),
    ] {
        let plugin = load(&host, "hostile", &[("mode", mode)]).unwrap();
        let err = plugin.evaluate(&s).expect_err(mode);
        let Status::Disabled { reason } = plugin.status() else {
            panic!("{mode}: still enabled after {err}");
        };
        assert!(reason.contains(expect), "{mode}: {reason}");
        // Disabled stays disabled, and says why.
        let again = plugin.evaluate(&s).unwrap_err();
        assert!(again.reason.starts_with("disabled:"), "{again}");
        // The well-behaved plugin is unaffected.
        assert_eq!(good.evaluate(&s).unwrap().len(), 1, "after {mode}");
    }

    // An error value is "no verdict this pass", not misbehaviour.
    let decline = load(&host, "hostile", &[("mode", "decline")]).unwrap();
    let err = decline.evaluate(&s).unwrap_err();
    assert!(err.reason.contains("no data yet"), "{err}");
    assert_eq!(decline.status(), Status::Enabled);
    // A chatty plugin is truncated, not stopped; its own view of the clock is the snapshot's.
    let chatty = load(&host, "hostile", &[("mode", "log")]).unwrap();
    assert!(chatty.evaluate(&s).unwrap().is_empty());
    let fine = load(&host, "hostile", &[]).unwrap();
    let f = fine.evaluate(&s).unwrap();
    assert!(
        f[0].message.contains(&at().timestamp_millis().to_string()),
        "{}",
        f[0].message
    );
    assert_eq!(fine.status(), Status::Enabled);
}

#[test]
fn a_plugin_that_outlives_its_time_limit_is_stopped_even_with_fuel_to_spare() {
    let host = PluginHost::new(Limits {
        fuel_per_call: 1 << 62,
        time_per_call: std::time::Duration::from_millis(100),
        ..Limits::default()
    })
    .unwrap();
    let Some(plugin) = load(&host, "hostile", &[("mode", "loop")]) else {
        return;
    };
    let started = std::time::Instant::now();
    let err = plugin.evaluate(&snapshot()).expect_err("an endless loop");
    let took = started.elapsed();
    let Status::Disabled { reason } = plugin.status() else {
        panic!("still enabled after {err}");
    };
    assert!(reason.contains("time limit"), "{reason}");
    assert!(took < std::time::Duration::from_secs(5), "stopped after {took:?}");
}

#[test]
fn components_that_are_not_plugins_are_refused_at_upload() {
    let host = PluginHost::new(Limits {
        max_component_bytes: 1 << 20,
        ..Limits::default()
    })
    .unwrap();
    assert!(matches!(host.compile(b"not wasm at all"), Err(PluginError::Invalid(_))));
    assert!(matches!(
        host.compile(&vec![0u8; 2 << 20]),
        Err(PluginError::TooLarge { .. })
    ));
    // A component that wants a host function the world does not have.
    let evil = wat::parse_str(
        r#"(component
             (import "tod:plugin/filesystem@0.1.0" (instance (export "read" (func (param "path" string) (result string)))))
           )"#,
    )
    .unwrap();
    let err = host.compile(&evil).unwrap_err();
    assert!(matches!(err, PluginError::Import(_)), "{err}");
    assert!(err.to_string().contains("tod:plugin/filesystem"), "{err}");
    // A component with none of the exports.
    let empty = wat::parse_str("(component)").unwrap();
    let compiled = host.compile(&empty).expect("no imports to refuse");
    let err = host
        .instantiate(&compiled, RuleId::from_u128(1), Hysteresis::IMMEDIATE, Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("instantiation failed"), "{err}");

    // The compiled-component cache: the second compile of the same bytes is a lookup.
    let Some(bytes) = common::plugin("aim") else { return };
    let a = host.compile(&bytes).unwrap();
    let cached = host.cached_components();
    let b = host.compile(&bytes).unwrap();
    assert_eq!(a.sha256_hex(), b.sha256_hex());
    assert_eq!(host.cached_components(), cached, "the second compile is a lookup");
}
