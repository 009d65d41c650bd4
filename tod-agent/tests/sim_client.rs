//! The client and the simulator agree over real loopback sockets, including every fault.

use std::time::Duration;

use tod_agent::routeros::client::{
    Client, ClientConfig, Credentials, Error, FailureClass, LoginFlow, Phase, Transport,
};
use tod_agent::routeros::tls::{TlsMode, fingerprint};
use tod_agent::routeros::{Sentence, query};
use tod_agent::sim::state::Faults;
use tod_agent::sim::world::{Behaviour, Package, Role, client_signal};
use tod_agent::sim::{SimConfig, Simulator};

fn admin() -> Credentials {
    Credentials {
        username: "admin".into(),
        password: "admin".into(),
    }
}

fn quick() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        login_timeout: Duration::from_millis(800),
        command_timeout: Duration::from_secs(3),
        cancel_grace: Duration::from_millis(500),
        ..ClientConfig::default()
    }
}

async fn sim(devices: usize, tls: bool) -> Simulator {
    Simulator::start(SimConfig {
        seed: 42,
        devices,
        tls_base_port: tls.then_some(0),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

async fn plain(s: &Simulator, i: usize) -> Result<Client, Error> {
    Client::connect(s.ports(i).plain, "127.0.0.1", &Transport::Plain, &admin(), quick()).await
}

/// Whether `check` comes true within 5 s, asked every 20 ms.
async fn until<F: std::future::Future<Output = bool>>(check: impl Fn() -> F) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn find(s: &Simulator, f: impl Fn(&tod_agent::sim::world::Device) -> bool) -> usize {
    s.world()
        .devices
        .iter()
        .position(f)
        .expect("the world has such a device")
}

#[tokio::test]
async fn modern_and_legacy_logins() {
    let s = sim(200, false).await;
    let modern = find(&s, |d| d.version.plain_login());
    let legacy = find(&s, |d| !d.version.plain_login());
    assert_eq!(plain(&s, modern).await.unwrap().login_flow(), LoginFlow::Plain);
    assert_eq!(plain(&s, legacy).await.unwrap().login_flow(), LoginFlow::Challenge);
    for i in [modern, legacy] {
        let bad = Credentials {
            username: "admin".into(),
            password: "wrong".into(),
        };
        let e = Client::connect(s.ports(i).plain, "127.0.0.1", &Transport::Plain, &bad, quick())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AuthFailed(_)), "{e:?}");
        assert_eq!(e.class(), FailureClass::Auth);
    }
    assert_eq!(s.state(modern).stats.snapshot().logins, 1);
    assert_eq!(s.state(legacy).stats.snapshot().failed_logins, 1);
}

#[tokio::test]
async fn prints_with_proplist_queries_and_count_only() {
    let s = sim(50, false).await;
    let router = find(&s, |d| d.role == Role::Router);
    let c = plain(&s, router).await.unwrap();
    let rows = c.print("/interface", &["name", "mac-address"], &[]).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0].attrs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        vec!["name", "mac-address"]
    );
    let mac: tod_core::MacAddr = rows[0].get("mac-address").unwrap().parse().unwrap();
    assert_eq!(mac, s.world().devices[router].interfaces[0].mac);
    let two = c
        .print(
            "/interface",
            &["name"],
            &[query::eq("name", "ether1"), query::eq("name", "ether3"), query::op("|")],
        )
        .await
        .unwrap();
    assert_eq!(
        two.iter()
            .map(|r| r.get("name").unwrap().into_owned())
            .collect::<Vec<_>>(),
        vec!["ether1", "ether3"]
    );
    let count = c
        .command(
            Sentence::command("/interface/print")
                .attr("count-only", "")
                .query(query::eq("type", "ether")),
        )
        .await
        .unwrap();
    assert_eq!(count.ret.as_deref(), Some("4"));
    let res = c.print("/system/resource", &[], &[]).await.unwrap();
    let version = tod_core::routeros::RouterOsVersion::parse(&res[0].get("version").unwrap()).unwrap();
    assert_eq!(version.major, s.world().devices[router].version.major);
    assert!(
        tod_core::routeros::parse_duration(&res[0].get("uptime").unwrap())
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn unknown_menus_and_verbs_trap_without_hurting_the_session() {
    let s = sim(20, false).await;
    let router = find(&s, |d| d.role == Role::Router);
    let c = plain(&s, router).await.unwrap();
    match c.print("/interface/wifi/registration-table", &[], &[]).await {
        Err(Error::Trap(t)) => assert_eq!(t[0].message, "no such command prefix"),
        other => panic!("{other:?}"),
    }
    match c.command(Sentence::command("/interface/frobnicate")).await {
        Err(Error::Trap(t)) => assert_eq!(t[0].message, "no such command"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.print("/system/identity", &[], &[]).await.unwrap()[0]
            .get("name")
            .as_deref(),
        Some(s.world().devices[router].name.as_str())
    );
}

#[tokio::test]
async fn registration_tables_match_the_world_per_package_and_empty_follows_the_version() {
    let s = sim(400, false).await;
    for pkg in [Package::Wireless, Package::Wifiwave2, Package::Wifi] {
        let ap = find(&s, |d| {
            d.role == Role::Ap && d.package == pkg && d.radios.iter().any(|r| !r.clients.is_empty())
        });
        let c = plain(&s, ap).await.unwrap();
        let menu = format!("{}/registration-table", pkg.menu().unwrap());
        let rows = c.print(&menu, &[], &[]).await.unwrap();
        assert!(!rows.is_empty(), "{pkg:?}");
        let known: Vec<tod_core::MacAddr> = s.world().devices[ap]
            .radios
            .iter()
            .flat_map(|r| r.clients.iter().map(|c| c.mac))
            .collect();
        for r in &rows {
            let mac: tod_core::MacAddr = r.get("mac-address").unwrap().parse().unwrap();
            assert!(known.contains(&mac));
            let signal = r
                .get(if pkg == Package::Wireless {
                    "signal-strength"
                } else {
                    "signal"
                })
                .unwrap();
            assert!(tod_core::routeros::parse_signal(&signal).unwrap().unwrap() < -20);
            assert_eq!(
                r.get("tx-ccq").is_some(),
                pkg == Package::Wireless,
                "CCQ only on the legacy package"
            );
        }
        let radio = s.world().devices[ap].interfaces[s.world().devices[ap].radios[0].iface]
            .name
            .clone();
        let mon = c
            .command(
                Sentence::command(format!("{}/monitor", pkg.menu().unwrap()))
                    .attr("numbers", &radio)
                    .attr("once", ""),
            )
            .await
            .unwrap();
        assert_eq!(mon.rows.len(), 1);
        assert!(
            tod_core::routeros::parse_channel(&mon.rows[0].get("channel").unwrap())
                .unwrap()
                .is_some()
        );
    }
    // A print with no rows: `!empty` on 7.18+, plain `!done` before.
    let new = find(&s, |d| d.version.sends_empty());
    let old = find(&s, |d| !d.version.sends_empty());
    for (i, want) in [(new, true), (old, false)] {
        let c = plain(&s, i).await.unwrap();
        let r = c
            .command(Sentence::command("/interface/print").query(query::eq("name", "nope")))
            .await
            .unwrap();
        assert!(r.rows.is_empty());
        assert_eq!(r.empty, want);
    }
}

#[tokio::test]
async fn streaming_monitor_delivers_rows_until_cancelled() {
    let s = sim(100, false).await;
    let ap = find(&s, |d| d.role == Role::Ap);
    let c = plain(&s, ap).await.unwrap();
    let d = &s.world().devices[ap];
    let menu = d.package.menu().unwrap();
    let radio = d.interfaces[d.radios[0].iface].name.clone();
    let mut stream = c
        .stream(Sentence::command(format!("{menu}/monitor")).attr("numbers", &radio))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(3), stream.next())
        .await
        .unwrap()
        .unwrap();
    assert!(first.get("channel").is_some());
    let second = tokio::time::timeout(Duration::from_secs(3), stream.next())
        .await
        .unwrap();
    assert!(second.is_some());
    let end = stream.cancel().await;
    assert!(
        matches!(end, Err(Error::Trap(ref t)) if t[0].message == "interrupted"),
        "{end:?}"
    );
    // The session is still in step.
    assert_eq!(c.print("/system/identity", &["name"], &[]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn tls_verified_pinned_and_insecure() {
    let s = sim(5, true).await;
    let addr = s.ports(0).tls.unwrap();
    let pem = s.certificate_pem().unwrap().as_bytes().to_vec();
    let pin = fingerprint(s.certificate_der().unwrap());
    for mode in [
        TlsMode::Verified { ca_pem: pem },
        TlsMode::Pinned { sha256: pin },
        TlsMode::Insecure,
    ] {
        let c = Client::connect(addr, "127.0.0.1", &Transport::Tls(mode.clone()), &admin(), quick()).await;
        let c = c.unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(c.print("/system/identity", &[], &[]).await.unwrap().len(), 1);
    }
    let wrong = Client::connect(
        addr,
        "127.0.0.1",
        &Transport::Tls(TlsMode::Pinned { sha256: [7; 32] }),
        &admin(),
        quick(),
    )
    .await;
    assert!(
        matches!(wrong, Err(Error::Tls(ref m)) if m.contains("fingerprint")),
        "{wrong:?}"
    );
    let other_ca = rcgen::generate_simple_self_signed(vec!["localhost".into()])
        .unwrap()
        .cert
        .pem();
    let untrusted = Client::connect(
        addr,
        "127.0.0.1",
        &Transport::Tls(TlsMode::Verified {
            ca_pem: other_ca.into_bytes(),
        }),
        &admin(),
        quick(),
    )
    .await;
    assert!(matches!(untrusted, Err(Error::Tls(_))), "{untrusted:?}");
    s.set_faults(
        0,
        Faults {
            tls_fail: true,
            ..Faults::default()
        },
    );
    let failed = Client::connect(addr, "127.0.0.1", &Transport::Tls(TlsMode::Insecure), &admin(), quick()).await;
    assert!(matches!(failed, Err(Error::Tls(_))), "{failed:?}");
    assert_eq!(failed.unwrap_err().class(), FailureClass::Unreachable);
}

#[tokio::test]
async fn connection_faults_map_to_typed_errors() {
    let s = sim(10, false).await;
    s.set_faults(
        0,
        Faults {
            refuse: true,
            ..Faults::default()
        },
    );
    // The listener closes as soon as its task next runs (on a loaded machine, not always within
    // a fixed sleep): wait for it, boundedly.
    let refused = until(|| async { matches!(plain(&s, 0).await, Err(Error::Connect(_))) }).await;
    assert!(refused, "a refusing device's port refuses");
    s.set_faults(0, Faults::default());
    let back = until(|| async { plain(&s, 0).await.is_ok() }).await;
    assert!(back, "the listener comes back");

    s.set_faults(
        1,
        Faults {
            silent: true,
            ..Faults::default()
        },
    );
    assert_eq!(plain(&s, 1).await.unwrap_err(), Error::Timeout(Phase::Login));

    s.set_faults(
        2,
        Faults {
            slow_login_ms: 300,
            ..Faults::default()
        },
    );
    assert!(plain(&s, 2).await.is_ok(), "300 ms is inside the login deadline");
    s.set_faults(
        2,
        Faults {
            slow_login_ms: 2_000,
            ..Faults::default()
        },
    );
    assert_eq!(plain(&s, 2).await.unwrap_err(), Error::Timeout(Phase::Login));

    s.set_faults(
        3,
        Faults {
            auth_fail: true,
            ..Faults::default()
        },
    );
    assert!(matches!(plain(&s, 3).await, Err(Error::AuthFailed(_))));

    s.set_faults(
        4,
        Faults {
            max_sessions: Some(1),
            ..Faults::default()
        },
    );
    let first = plain(&s, 4).await.unwrap();
    assert!(plain(&s, 4).await.is_err(), "the second session is over the cap");
    assert!(first.print("/system/identity", &[], &[]).await.is_ok());

    s.set_faults(
        5,
        Faults {
            offline_until: Some(s.clock().now() + 3_600.0),
            ..Faults::default()
        },
    );
    assert!(plain(&s, 5).await.is_err());
}

#[tokio::test]
async fn reply_faults_latency_splitting_long_words_cuts_and_control_bytes() {
    let s = sim(10, false).await;
    s.set_faults(
        0,
        Faults {
            latency_ms: 400,
            ..Faults::default()
        },
    );
    let c = plain(&s, 0).await.unwrap();
    let r = c
        .command_within(Sentence::command("/system/resource/print"), Duration::from_millis(100))
        .await;
    assert_eq!(r, Err(Error::Timeout(Phase::Command)));
    s.set_faults(0, Faults::default());
    // No desync: the next command gets its own reply, not the late one.
    let id = c.print("/system/identity", &["name"], &[]).await.unwrap();
    assert_eq!(id[0].get("name").as_deref(), Some(s.world().devices[0].name.as_str()));

    s.set_faults(
        1,
        Faults {
            split_replies: true,
            long_comment_bytes: 0x4000,
            ..Faults::default()
        },
    );
    let c = plain(&s, 1).await.unwrap();
    let rows = c.print("/interface", &[], &[]).await.unwrap();
    assert_eq!(rows[0].get("comment").unwrap().len(), 0x4000);

    s.set_faults(
        2,
        Faults {
            disconnect_mid_reply: true,
            ..Faults::default()
        },
    );
    let router = plain(&s, 2).await.unwrap();
    let cut = router.print("/interface", &[], &[]).await;
    assert!(matches!(cut, Err(Error::Closed(_))), "{cut:?}");
    assert_eq!(cut.unwrap_err().class(), FailureClass::Session);

    s.set_faults(
        3,
        Faults {
            control_byte: true,
            ..Faults::default()
        },
    );
    let c = plain(&s, 3).await.unwrap();
    assert!(matches!(
        c.print("/system/resource", &[], &[]).await,
        Err(Error::Protocol(_))
    ));
}

#[tokio::test]
async fn reboot_drops_sessions_and_resets_uptime_and_counters() {
    let s = sim(10, false).await;
    let c = plain(&s, 0).await.unwrap();
    let before = c.print("/interface", &["rx-byte"], &[]).await.unwrap()[0]
        .get("rx-byte")
        .unwrap()
        .parse::<u64>()
        .unwrap();
    s.reboot(0);
    assert!(
        c.print("/system/identity", &[], &[]).await.is_err(),
        "the session died with the reboot"
    );
    let c = plain(&s, 0).await.unwrap();
    let after = c.print("/interface", &["rx-byte"], &[]).await.unwrap()[0]
        .get("rx-byte")
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(after < before, "{after} < {before}");
    let up = c.print("/system/resource", &["uptime"], &[]).await.unwrap()[0]
        .get("uptime")
        .unwrap()
        .into_owned();
    assert!(
        tod_core::routeros::parse_duration(&up).unwrap().unwrap() < Duration::from_secs(60),
        "{up}"
    );
}

#[tokio::test]
async fn a_package_switch_changes_the_wireless_menu() {
    let s = sim(200, false).await;
    let ap = find(&s, |d| d.role == Role::Ap && d.package == Package::Wireless);
    s.switch_package(ap, Package::Wifi);
    let c = plain(&s, ap).await.unwrap();
    assert!(matches!(
        c.print("/interface/wireless/registration-table", &[], &[]).await,
        Err(Error::Trap(_))
    ));
    assert!(c.print("/interface/wifi/registration-table", &[], &[]).await.is_ok());
    let pkgs = c.print("/system/package", &["name"], &[]).await.unwrap();
    assert!(pkgs.iter().any(|r| r.get("name").as_deref() == Some("wifi-qcom")));
}

#[tokio::test]
async fn many_concurrent_commands_on_one_session() {
    let s = sim(30, false).await;
    let c = plain(&s, 0).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let menu = if i % 2 == 0 { "/system/identity" } else { "/interface" };
            (i, c.print(menu, &["name"], &[]).await.unwrap())
        }));
    }
    for t in tasks {
        let (i, rows) = t.await.unwrap();
        if i % 2 == 0 {
            assert_eq!(rows.len(), 1);
        } else {
            assert!(
                rows.iter()
                    .all(|r| r.get("name").unwrap().starts_with("ether") || r.get("name").unwrap().starts_with("w"))
            );
        }
    }
    assert_eq!(s.state(0).stats.snapshot().commands, 100);
}

#[tokio::test]
async fn commands_before_login_are_fatal() {
    use bytes::BytesMut;
    use tod_agent::routeros::codec::Decoder;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = sim(3, false).await;
    let mut tcp = tokio::net::TcpStream::connect(s.ports(0).plain).await.unwrap();
    let mut out = Vec::new();
    Sentence::command("/system/resource/print").encode(&mut out);
    tcp.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let mut dec = Decoder::default();
    let words = loop {
        assert!(tcp.read_buf(&mut buf).await.unwrap() > 0);
        if let Some(w) = dec.decode(&mut buf).unwrap() {
            break w;
        }
    };
    let s = Sentence::from_words(&words).unwrap();
    assert_eq!(s.kind, tod_agent::routeros::Kind::Fatal);
    assert_eq!(&s.extra[0][..], b"not logged in");
}

#[tokio::test]
async fn one_loopback_address_per_device() {
    let first = std::net::Ipv4Addr::new(127, 0, 9, 1);
    let s = Simulator::start(SimConfig {
        seed: 3,
        devices: 5,
        ip_per_device: Some(first),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    for i in 0..5 {
        assert_eq!(
            s.ports(i).plain.ip(),
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 9, 1 + i as u8))
        );
    }
    let c = Client::connect(s.ports(4).plain, "127.0.9.5", &Transport::Plain, &admin(), quick())
        .await
        .unwrap();
    assert_eq!(
        c.print("/system/identity", &[], &[]).await.unwrap()[0]
            .get("name")
            .as_deref(),
        Some(s.world().devices[4].name.as_str())
    );
    let outside = Simulator::start(SimConfig {
        devices: 3,
        ip_per_device: Some(std::net::Ipv4Addr::new(127, 255, 255, 254)),
        ..SimConfig::default()
    })
    .await;
    assert!(outside.is_err(), "addresses may not leave 127.0.0.0/8");
}

#[cfg(feature = "openssl")]
#[tokio::test]
async fn anonymous_dh_for_routers_without_a_certificate() {
    let s = Simulator::start(SimConfig {
        seed: 4,
        devices: 3,
        tls_base_port: Some(0),
        anonymous_tls: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let addr = s.ports(1).tls.unwrap();
    let c = Client::connect(
        addr,
        "127.0.0.1",
        &Transport::Tls(TlsMode::Anonymous),
        &admin(),
        quick(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.print("/system/identity", &[], &[]).await.unwrap()[0]
            .get("name")
            .as_deref(),
        Some(s.world().devices[1].name.as_str())
    );
    // rustls has no anonymous suites: a certificate-checking client cannot talk to such a router.
    let r = Client::connect(addr, "127.0.0.1", &Transport::Tls(TlsMode::Insecure), &admin(), quick()).await;
    assert!(matches!(r, Err(Error::Tls(_))), "{r:?}");
}

#[tokio::test]
async fn agent_check_tries_every_configured_device_once() {
    let s = sim(30, false).await;
    let ap = find(&s, |d| d.role == Role::Ap);
    s.set_faults(
        2,
        Faults {
            auth_fail: true,
            ..Faults::default()
        },
    );
    let mut toml = String::from(
        "[agent]\nid = \"7f3c2f9e-55c1-4c55-9e4a-0d3a3d6b2f10\"\n[server]\nendpoint = \"127.0.0.1:51820\"\n\
         [[credentials]]\nname = \"sim\"\nusername = \"admin\"\npassword = \"admin\"\n",
    );
    for i in [ap, 2] {
        toml.push_str(&format!(
            "[[devices]]\nid = \"00000000-0000-0000-0000-{:012}\"\nhost = \"127.0.0.1\"\nport = {}\ntransport = \"plain\"\ncredentials = \"sim\"\n",
            i + 1,
            s.ports(i).plain.port()
        ));
    }
    let cfg = std::sync::Arc::new(tod_agent::config::AgentConfig::parse(&toml).unwrap());
    let rows = tod_agent::check::check_all(cfg, quick()).await;
    let found = rows[0].outcome.as_ref().unwrap();
    assert_eq!(found.radios, s.world().devices[ap].radios.len());
    assert!(
        found
            .version
            .starts_with(&s.world().devices[ap].version.to_string()[..3])
    );
    assert!(rows[1].outcome.as_ref().unwrap_err().contains("Auth"));
    let text = tod_agent::check::table(&rows);
    assert!(
        text.contains("ok: RouterOS") && text.contains("FAILED: authentication failed"),
        "{text}"
    );
}

/// Where a CPE sits in the world: its AP, the AP's radio, and its slot on that radio.
fn slot_of(s: &Simulator, cpe: usize) -> Option<(usize, usize, usize)> {
    let (ap, r) = s.world().devices[cpe].ap?;
    let k = s.world().devices[ap].radios[r]
        .clients
        .iter()
        .position(|c| c.cpe == Some(cpe))?;
    Some((ap, r, k))
}

/// A CPE with a steady client slot whose AP hears it now at a signal that passes `ok`.
fn steady_cpe(s: &Simulator, ok: impl Fn(i16) -> bool) -> usize {
    let now = s.clock().now();
    find(s, |d| {
        d.role == Role::Cpe
            && slot_of(s, d.index).is_some_and(|(ap, r, k)| {
                let ap_dev = &s.world().devices[ap];
                let c = &ap_dev.radios[r].clients[k];
                c.behaviour == Behaviour::Steady
                    && client_signal(s.world().seed, ap_dev.site, ap, r, k, c, now).is_some_and(&ok)
            })
    })
}

#[tokio::test]
async fn an_access_point_switched_off_leaves_its_clients_hearing_nothing() {
    let s = sim(400, false).await;
    // A CPE whose AP hears it now, on the package both use.
    let cpe = steady_cpe(&s, |_| true);
    let (ap, _) = s.world().devices[cpe].ap.unwrap();
    let menu = format!("{}/registration-table", s.world().devices[cpe].package.menu().unwrap());
    let c = plain(&s, cpe).await.unwrap();
    assert_eq!(c.print(&menu, &[], &[]).await.unwrap().len(), 1, "it hears its AP");
    s.set_faults(
        ap,
        Faults {
            offline_until: Some(s.clock().now() + 3_600.0),
            ..Faults::default()
        },
    );
    assert!(plain(&s, ap).await.is_err(), "the AP is off");
    assert!(
        c.print(&menu, &[], &[]).await.unwrap().is_empty(),
        "a CPE whose AP is off hears nothing"
    );
    s.set_faults(ap, Faults::default());
    assert_eq!(
        c.print(&menu, &[], &[]).await.unwrap().len(),
        1,
        "and hears it again when it is back"
    );
}

#[tokio::test]
async fn a_customer_radio_switched_off_leaves_its_access_points_table() {
    let s = sim(400, false).await;
    s.clock().set_speed(0.0);
    let cpe = steady_cpe(&s, |_| true);
    let (ap, _, k) = slot_of(&s, cpe).unwrap();
    let mac = s.world().devices[ap].radios[s.world().devices[cpe].ap.unwrap().1].clients[k]
        .mac
        .to_string()
        .to_uppercase();
    let menu = format!("{}/registration-table", s.world().devices[ap].package.menu().unwrap());
    let c = plain(&s, ap).await.unwrap();
    let listed = async || {
        let rows = c.print(&menu, &[], &[]).await.unwrap();
        let has = rows
            .iter()
            .any(|r| r.get("mac-address").as_deref() == Some(mac.as_str()));
        (rows.len(), has)
    };
    let (before, heard) = listed().await;
    assert!(heard, "the AP hears its CPE");
    s.set_faults(
        cpe,
        Faults {
            offline_until: Some(s.clock().now() + 60.0),
            ..Faults::default()
        },
    );
    assert_eq!(
        listed().await,
        (before - 1, false),
        "a radio switched off is not associated"
    );
    s.clock().advance(61.0);
    assert_eq!(listed().await, (before, true), "and is again once it is back");
}

/// A registration row's signal, dBm, whatever the package calls it (`-61@HT20-7` or `-61`).
fn signal_of(row: &Sentence) -> i32 {
    let raw = row
        .get("signal-strength")
        .or_else(|| row.get("signal"))
        .expect("a signal field");
    raw.split('@').next().unwrap().parse().expect("a number")
}

#[tokio::test]
async fn a_fade_over_an_access_point_weakens_its_links_both_ways_until_it_ends() {
    let s = sim(400, false).await;
    // Stopped, so the world's per-minute noise stays put while the fade comes and goes.
    s.clock().set_speed(0.0);
    let now = s.clock().now();
    let seed = s.world().seed;
    // A steady client well above the floor, so 12 dB less is still a number, not a clamp.
    let cpe = steady_cpe(&s, |sig| sig > -80);
    let (ap, r, k) = slot_of(&s, cpe).unwrap();
    let ap_dev = &s.world().devices[ap];
    let client = &ap_dev.radios[r].clients[k];
    let cpe_mac = client.mac.to_string().to_uppercase();
    let tables = async || {
        let at_cpe = plain(&s, cpe).await.unwrap();
        let menu = format!("{}/registration-table", s.world().devices[cpe].package.menu().unwrap());
        let seen_by_cpe = at_cpe.print(&menu, &[], &[]).await.unwrap();
        let at_ap = plain(&s, ap).await.unwrap();
        let menu = format!("{}/registration-table", ap_dev.package.menu().unwrap());
        let seen_by_ap = at_ap.print(&menu, &[], &[]).await.unwrap();
        (seen_by_cpe, seen_by_ap)
    };
    let of_cpe = |rows: &[Sentence]| {
        rows.iter()
            .find(|r| r.get("mac-address").as_deref() == Some(cpe_mac.as_str()))
            .map(signal_of)
            .expect("the AP hears the CPE")
    };
    let (cpe_before, ap_before) = tables().await;
    assert_eq!(cpe_before.len(), 1, "the CPE hears its AP");
    let (cpe_dry, ap_dry) = (signal_of(&cpe_before[0]), of_cpe(&ap_before));
    assert_eq!(
        ap_dry,
        i32::from(client_signal(seed, ap_dev.site, ap, r, k, client, now).unwrap()),
        "without a fade the AP hears the world's own signal"
    );

    s.set_faults(
        ap,
        Faults {
            fade_db: 12.0,
            fade_until: Some(now + 600.0),
            ..Faults::default()
        },
    );
    let (cpe_wet, ap_wet) = tables().await;
    assert_eq!(
        signal_of(&cpe_wet[0]),
        cpe_dry - 12,
        "the CPE hears its AP 12 dB weaker"
    );
    assert_eq!(of_cpe(&ap_wet), ap_dry - 12, "and the AP hears the CPE 12 dB weaker");
    assert_eq!(
        ap_wet.len(),
        ap_before.len(),
        "a fade weakens links, it does not cut them"
    );

    // The fade ends at its time, with nothing else changed.
    s.clock().advance(601.0);
    let later = s.clock().now();
    let (cpe_after, ap_after) = tables().await;
    let truth = client_signal(seed, ap_dev.site, ap, r, k, client, later);
    let truth = i32::from(truth.expect("a steady client stays associated"));
    assert_eq!(
        of_cpe(&ap_after),
        truth,
        "after the fade the AP hears the world's own signal"
    );
    assert_eq!(signal_of(&cpe_after[0]), truth - 1, "and so does the CPE");
}

#[tokio::test]
async fn a_fade_on_a_customer_radio_weakens_its_own_link_only() {
    let s = sim(400, false).await;
    s.clock().set_speed(0.0);
    let now = s.clock().now();
    let cpe = steady_cpe(&s, |sig| sig > -80);
    let (ap, r, k) = slot_of(&s, cpe).unwrap();
    let ap_dev = &s.world().devices[ap];
    let client = &ap_dev.radios[r].clients[k];
    let mac = client.mac.to_string().to_uppercase();
    let menu = format!("{}/registration-table", ap_dev.package.menu().unwrap());
    let cpe_menu = format!("{}/registration-table", s.world().devices[cpe].package.menu().unwrap());
    // Every signal the AP hears, by MAC, and the one the CPE hears.
    let tables = async || {
        let at_ap = plain(&s, ap).await.unwrap();
        let heard: std::collections::BTreeMap<String, i32> = at_ap
            .print(&menu, &[], &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("mac-address").unwrap().into_owned(), signal_of(r)))
            .collect();
        let at_cpe = plain(&s, cpe).await.unwrap();
        let own = signal_of(&at_cpe.print(&cpe_menu, &[], &[]).await.unwrap()[0]);
        (heard, own)
    };
    let (before, cpe_before) = tables().await;
    assert!(before.len() >= 2, "the AP has other clients: {before:?}");
    s.set_faults(
        cpe,
        Faults {
            fade_db: 9.0,
            fade_until: Some(now + 600.0),
            ..Faults::default()
        },
    );
    let (during, cpe_during) = tables().await;
    assert_eq!(cpe_during, cpe_before - 9, "the failing radio hears its AP 9 dB weaker");
    for (m, sig) in &before {
        let expected = if *m == mac { sig - 9 } else { *sig };
        assert_eq!(during[m], expected, "{m}: only the failing radio's link is weaker");
    }
    s.clock().advance(601.0);
    let (after, _) = tables().await;
    let truth = client_signal(s.world().seed, ap_dev.site, ap, r, k, client, s.clock().now());
    assert_eq!(
        after[&mac],
        i32::from(truth.expect("a steady client stays associated")),
        "after the fade the AP hears the world's own signal"
    );
}
