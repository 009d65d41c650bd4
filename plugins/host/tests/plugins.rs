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
    // A component with none of the exports: refused at upload too, naming the worlds served.
    let empty = wat::parse_str("(component)").unwrap();
    let err = host.compile(&empty).unwrap_err();
    assert!(matches!(err, PluginError::Invalid(_)), "{err}");
    assert!(
        err.to_string()
            .contains("its exports match neither tod:plugin@0.2.0 nor @0.1.0"),
        "{err}"
    );

    // The compiled-component cache: the second compile of the same bytes is a lookup.
    let Some(bytes) = common::plugin("aim") else { return };
    let a = host.compile(&bytes).unwrap();
    let cached = host.cached_components();
    let b = host.compile(&bytes).unwrap();
    assert_eq!(a.sha256_hex(), b.sha256_hex());
    assert_eq!(host.cached_components(), cached, "the second compile is a lookup");
}

#[test]
fn every_field_of_the_columnar_snapshot_reaches_the_plugin_as_it_was_absent_values_included() {
    let host = PluginHost::new(Limits::default()).unwrap();
    let Some(echo) = load(&host, "echo", &[]) else {
        return;
    };
    let sector = SectorId::from_u128(77);
    let mut s = snapshot();
    s.devices = vec![
        DeviceView {
            id: dev(1),
            // Multi-byte characters: hostnames travel as one string cut at byte offsets.
            hostname: "tårn-ø-ap1".into(),
            site: Some(site(1)),
            sector: Some(sector),
            groups: Vec::new(),
            status: DeviceStatus::Online,
            metrics: Metrics {
                cpu_load: Some(12.5),
                memory_used_pct: Some(40.0),
                disk_used_pct: Some(0.0),
                temperature: Some(-3.25),
                signal_strength: Some(-61.0),
                ccq: Some(97.0),
                client_count: Some(23.0),
                device_offline: Some(0.0),
            },
        },
        DeviceView {
            id: dev(2),
            hostname: String::new(),
            site: None,
            sector: None,
            groups: Vec::new(),
            status: DeviceStatus::Unreachable,
            metrics: Metrics::default(),
        },
        DeviceView {
            id: dev(3),
            hostname: "cpe-3".into(),
            site: Some(site(2)),
            sector: None,
            groups: Vec::new(),
            status: DeviceStatus::Offline,
            metrics: Metrics {
                cpu_load: Some(99.0),
                ..Metrics::default()
            },
        },
    ];
    s.links = vec![
        LinkView {
            sector: Some(sector),
            state: LinkState::Degraded,
            tx_ccq: Some(0),
            trend_delta_db: Some(5.5),
            ..link(1, 3, 2, -84)
        },
        LinkView {
            site: None,
            state: LinkState::Stale,
            signal_dbm: None,
            ..link(1, 4, 1, 0)
        },
        LinkView {
            state: LinkState::Discovered,
            tx_ccq: Some(100),
            ..link(1, 5, 1, 0)
        },
    ];
    s.sectors = vec![SectorView {
        id: sector,
        site: site(1),
        avg_signal_dbm: None,
        clients_now: 4,
        clients_before: 9,
        avg_ccq: Some(71.5),
        throughput_bps: None,
    }];
    s.history = vec![
        HistoryPoint {
            link: LinkKey {
                ap: dev(1),
                cpe: dev(3),
            },
            at: at() - Duration::minutes(2),
            dbm: -80,
        },
        HistoryPoint {
            link: LinkKey {
                ap: dev(1),
                cpe: dev(4),
            },
            at: at() - Duration::minutes(1),
            dbm: -32767,
        },
    ];

    let findings = echo.evaluate(&s).expect("evaluates");
    let got: Vec<(Subject, Vec<(String, String)>)> = findings.into_iter().map(|f| (f.subject, f.evidence)).collect();
    let uuid = |u: uuid::Uuid| format!("Some({:?})", u.to_string());
    let fields = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    };
    let lk = |cpe| {
        Subject::Link(LinkKey {
            ap: dev(1),
            cpe: dev(cpe),
        })
    };
    let expected = vec![
        (
            Subject::Device(dev(1)),
            fields(&[
                ("hostname", "\"tårn-ø-ap1\"".into()),
                ("site", uuid(site(1).0)),
                ("sector", uuid(sector.0)),
                ("status", "online".into()),
                ("cpu_load", "Some(12.5)".into()),
                ("memory_used_pct", "Some(40.0)".into()),
                ("disk_used_pct", "Some(0.0)".into()),
                ("temperature", "Some(-3.25)".into()),
                ("signal_strength", "Some(-61.0)".into()),
                ("ccq", "Some(97.0)".into()),
                ("client_count", "Some(23.0)".into()),
            ]),
        ),
        (
            Subject::Device(dev(2)),
            fields(&[
                ("hostname", "\"\"".into()),
                ("site", "None".into()),
                ("sector", "None".into()),
                ("status", "unreachable".into()),
                ("cpu_load", "None".into()),
                ("memory_used_pct", "None".into()),
                ("disk_used_pct", "None".into()),
                ("temperature", "None".into()),
                ("signal_strength", "None".into()),
                ("ccq", "None".into()),
                ("client_count", "None".into()),
            ]),
        ),
        (
            Subject::Device(dev(3)),
            fields(&[
                ("hostname", "\"cpe-3\"".into()),
                ("site", uuid(site(2).0)),
                ("sector", "None".into()),
                ("status", "offline".into()),
                ("cpu_load", "Some(99.0)".into()),
                ("memory_used_pct", "None".into()),
                ("disk_used_pct", "None".into()),
                ("temperature", "None".into()),
                ("signal_strength", "None".into()),
                ("ccq", "None".into()),
                ("client_count", "None".into()),
            ]),
        ),
        (
            lk(3),
            fields(&[
                ("site", uuid(site(2).0)),
                ("sector", uuid(sector.0)),
                ("state", "degraded".into()),
                ("signal_dbm", "Some(-84)".into()),
                ("tx_ccq", "Some(0)".into()),
                ("trend_delta_db", "Some(5.5)".into()),
            ]),
        ),
        (
            lk(4),
            fields(&[
                ("site", "None".into()),
                ("sector", "None".into()),
                ("state", "stale".into()),
                ("signal_dbm", "None".into()),
                ("tx_ccq", "None".into()),
                ("trend_delta_db", "None".into()),
            ]),
        ),
        (
            lk(5),
            fields(&[
                ("site", uuid(site(1).0)),
                ("sector", "None".into()),
                ("state", "discovered".into()),
                ("signal_dbm", "Some(0)".into()),
                ("tx_ccq", "Some(100)".into()),
                ("trend_delta_db", "None".into()),
            ]),
        ),
        (
            Subject::Sector(sector),
            fields(&[
                ("site", site(1).0.to_string()),
                ("avg_signal_dbm", "None".into()),
                ("clients_now", "4".into()),
                ("clients_before", "9".into()),
                ("avg_ccq", "Some(71.5)".into()),
                ("throughput_bps", "None".into()),
            ]),
        ),
        (
            lk(3),
            fields(&[
                ("at_ms", (at() - Duration::minutes(2)).timestamp_millis().to_string()),
                ("dbm", "-80".into()),
            ]),
        ),
        (
            lk(4),
            fields(&[
                ("at_ms", (at() - Duration::minutes(1)).timestamp_millis().to_string()),
                ("dbm", "-32767".into()),
            ]),
        ),
        (
            Subject::Site(SiteId(TenantId::from_u128(7).0)),
            fields(&[
                ("tenant", TenantId::from_u128(7).0.to_string()),
                ("at_ms", at().timestamp_millis().to_string()),
            ]),
        ),
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }

    // An empty snapshot: every part is left out, and the plugin still sees the tenant and time.
    let f = echo.evaluate(&snapshot()).unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
}

#[test]
fn a_plugin_built_for_the_older_row_world_still_loads_and_judges_like_the_current_one() {
    let host = PluginHost::new(Limits::default()).unwrap();
    let (Some(old_bytes), Some(new_bytes)) = (common::plugin("legacy-threshold"), common::plugin("threshold")) else {
        return;
    };
    let old = host.compile(&old_bytes).expect("a 0.1.0 plugin compiles");
    let new = host.compile(&new_bytes).unwrap();
    assert_eq!(old.world_version(), "0.1.0");
    assert_eq!(new.world_version(), "0.2.0");
    let config = vec![("threshold".to_string(), "-70".to_string())];
    let old = host
        .instantiate(&old, RuleId::from_u128(1), Hysteresis::IMMEDIATE, config.clone())
        .unwrap();
    let new = host
        .instantiate(&new, RuleId::from_u128(2), Hysteresis::IMMEDIATE, config)
        .unwrap();
    assert_eq!(old.metadata().name, "Weak link (0.1.0)");
    assert!(old.metadata().inputs.links && !old.metadata().inputs.devices);
    let mut s = snapshot();
    s.links = vec![
        link(1, 11, 1, -69),
        link(1, 12, 1, -71),
        LinkView {
            signal_dbm: None,
            ..link(1, 13, 1, 0)
        },
        link(2, 21, 2, -88),
    ];
    let from_old = old.evaluate(&s).unwrap();
    assert_eq!(
        from_old.iter().map(|f| f.subject).collect::<Vec<_>>(),
        vec![
            Subject::Link(LinkKey {
                ap: dev(1),
                cpe: dev(12)
            }),
            Subject::Link(LinkKey {
                ap: dev(2),
                cpe: dev(21)
            })
        ]
    );
    assert_eq!(from_old[0].message, "signal -71 dBm below -70 dBm");
    assert_eq!(from_old, new.evaluate(&s).unwrap(), "both worlds, one verdict");
}
