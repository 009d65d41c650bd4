//! The simulator's truth: what it says really happened agrees with what its routers answered at
//! the time, stays exact for past moments after later changes, lists the world's own schedule
//! as it plays out, and is served by the control surface over real HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tod_agent::routeros::client::{Client, ClientConfig, Credentials, Transport};
use tod_agent::sim::state::Faults;
use tod_agent::sim::truth::{Snapshot, scheduled};
use tod_agent::sim::world::{Behaviour, Role, client_signal, rain_fade};
use tod_agent::sim::{SimConfig, Simulator, control};

async fn stopped_sim(devices: usize) -> Simulator {
    let s = Simulator::start(SimConfig {
        seed: 42,
        devices,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    s.clock().set_speed(0.0);
    s
}

/// The registration table of access point `ap` as its RouterOS API answers it now: MAC (upper
/// case, as RouterOS writes it) → signal.
async fn table(s: &Simulator, ap: usize) -> HashMap<String, i16> {
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    };
    let admin = Credentials {
        username: "admin".into(),
        password: "admin".into(),
    };
    let c = Client::connect(s.ports(ap).plain, "127.0.0.1", &Transport::Plain, &admin, config)
        .await
        .expect("the access point answers");
    let menu = format!(
        "{}/registration-table",
        s.state(ap).runtime().package.menu().expect("an AP has a wireless menu")
    );
    let rows = c.print(&menu, &[], &[]).await.expect("its registration table");
    rows.iter()
        .map(|r| {
            let signal = r
                .get("signal-strength")
                .or_else(|| r.get("signal"))
                .expect("a signal")
                .split('@')
                .next()
                .unwrap()
                .parse()
                .expect("a number");
            (r.get("mac-address").expect("a MAC").into_owned(), signal)
        })
        .collect()
}

/// The associations of access point `ap` in a snapshot, as its table would show them.
fn truth_table(snap: &Snapshot, ap: usize) -> HashMap<String, i16> {
    snap.associations
        .iter()
        .filter(|a| a.ap == ap)
        .filter_map(|a| Some((a.mac.to_uppercase(), a.signal?)))
        .collect()
}

/// The busiest access point: the one with the most managed clients.
fn busiest_ap(s: &Simulator) -> usize {
    s.world()
        .devices
        .iter()
        .filter(|d| d.role == Role::Ap)
        .max_by_key(|d| {
            d.radios
                .iter()
                .flat_map(|r| &r.clients)
                .filter(|c| c.cpe.is_some())
                .count()
        })
        .expect("an access point")
        .index
}

#[tokio::test]
async fn the_truth_is_what_the_access_points_answered_at_the_time() {
    let s = stopped_sim(300).await;
    let ap = busiest_ap(&s);
    let cpe = s.world().devices[ap]
        .radios
        .iter()
        .flat_map(|r| &r.clients)
        .find_map(|c| c.cpe.filter(|_| c.behaviour == Behaviour::Steady))
        .expect("a steady managed client");
    let mut seen: Vec<(f64, HashMap<String, i16>)> = Vec::new();
    // As the world has it; the client's radio off; the AP faded; then three hours on (flaps,
    // roams and rain move on their own schedule).
    seen.push((s.clock().now(), table(&s, ap).await));
    s.clock().advance(1.0);
    s.set_faults(
        cpe,
        Faults {
            offline_until: Some(s.clock().now() + 600.0),
            ..Faults::default()
        },
    );
    s.clock().advance(60.0);
    seen.push((s.clock().now(), table(&s, ap).await));
    // (A change made at the very moment of a read is in force at that moment: step past it.)
    s.clock().advance(1.0);
    s.set_faults(
        ap,
        Faults {
            fade_db: 9.0,
            fade_until: Some(s.clock().now() + 300.0),
            ..Faults::default()
        },
    );
    s.clock().advance(60.0);
    seen.push((s.clock().now(), table(&s, ap).await));
    for _ in 0..6 {
        s.clock().advance(1_800.0);
        seen.push((s.clock().now(), table(&s, ap).await));
    }
    // Later changes do not rewrite the past: each moment's truth is what was answered then.
    let truth = s.truth();
    for (t, answered) in &seen {
        assert_eq!(&truth_table(&truth.at(*t), ap), answered, "at {t}");
    }
    let (t1, t2) = (seen[1].0, seen[2].0);
    let cpe_mac = s.world().devices[cpe]
        .interfaces
        .last()
        .unwrap()
        .mac
        .to_string()
        .to_uppercase();
    assert!(seen[0].1.contains_key(&cpe_mac) && !seen[1].1.contains_key(&cpe_mac));
    let faded_by = |k: usize| {
        seen[k]
            .1
            .iter()
            .filter_map(|(mac, s2)| Some(seen[k - 1].1.get(mac)? - s2))
            .collect::<Vec<_>>()
    };
    assert!(faded_by(2).iter().all(|d| (4..=14).contains(d)), "{:?}", faded_by(2));
    let snap = truth.at(t1);
    let d = &snap.devices[cpe];
    assert!(!d.up && snap.devices[ap].up, "{d:?}");
    assert_eq!(truth.at(t2).devices[ap].fade_db, 9.0);
    assert_eq!(truth.at(t2 + 300.0).devices[ap].fade_db, 0.0, "the fade ran out");
}

/// A drift deepens day by day on the one link it is set on, is journaled once with its rate, and
/// is put right when it ends.
#[tokio::test]
async fn a_drift_weakens_its_link_day_by_day_until_it_is_put_right() {
    let s = stopped_sim(120).await;
    let ap = busiest_ap(&s);
    let (cpe, mac) = s.world().devices[ap]
        .radios
        .iter()
        .flat_map(|r| &r.clients)
        .find_map(|c| {
            Some((
                c.cpe.filter(|_| c.behaviour == Behaviour::Steady)?,
                c.mac.to_string().to_uppercase(),
            ))
        })
        .expect("a steady managed client");
    let t0 = s.clock().now();
    s.set_faults(
        cpe,
        Faults {
            fade_db_per_day: 2.0,
            fade_since: Some(t0),
            fade_until: Some(t0 + 10.0 * 86_400.0),
            ..Faults::default()
        },
    );
    // Three days in, 6 dB weaker than the world alone would have it, and the AP's table agrees.
    s.clock().advance(3.0 * 86_400.0);
    let now = s.clock().now();
    let answered = table(&s, ap).await[&mac];
    let truth = s.truth();
    let (signal, fade) = {
        let snap = truth.at(now);
        let a = snap
            .associations
            .iter()
            .find(|a| a.ap == ap && a.mac.eq_ignore_ascii_case(&mac))
            .expect("the link")
            .clone();
        (a.signal.expect("associated"), snap.devices[cpe].fade_db)
    };
    assert_eq!(answered, signal, "the table is the truth");
    assert!((fade - 6.0).abs() < 0.01, "{fade}");
    let w = s.world();
    let (r, slot, c) = w.devices[ap]
        .radios
        .iter()
        .enumerate()
        .flat_map(|(r, radio)| radio.clients.iter().enumerate().map(move |(k, c)| (r, k, c)))
        .find(|(_, _, c)| c.cpe == Some(cpe))
        .unwrap();
    let clear = client_signal(w.seed, w.devices[ap].site, ap, r, slot, c, now).unwrap();
    assert_eq!(clear - signal, 6, "{clear} {signal}");
    // Put right at its end.
    s.clock().advance(8.0 * 86_400.0);
    let after = s.clock().now();
    let truth = s.truth();
    let snap = truth.at(after);
    assert_eq!(snap.devices[cpe].fade_db, 0.0);
    let clear = client_signal(w.seed, w.devices[ap].site, ap, r, slot, c, after).unwrap();
    assert_eq!(table(&s, ap).await[&mac], clear);
    let drift: Vec<_> = truth
        .events(t0 - 1.0, after)
        .into_iter()
        .filter(|e| e.kind == "drift" && e.source == "injected")
        .collect();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].detail["db_per_day"], -2.0);
    assert_eq!(drift[0].until, Some(t0 + 10.0 * 86_400.0));
}

#[tokio::test]
async fn a_change_ended_early_ends_its_event_and_the_past_stays_as_it_was() {
    let s = stopped_sim(120).await;
    let ap = busiest_ap(&s);
    let t0 = s.clock().now();
    s.set_faults(
        ap,
        Faults {
            offline_until: Some(t0 + 3_600.0),
            ..Faults::default()
        },
    );
    s.clock().advance(300.0);
    // Rain on top of the power loss: the same power-off continues, a fade begins.
    s.set_faults(
        ap,
        Faults {
            fade_db: 14.0,
            fade_until: Some(t0 + 1_200.0),
            ..s.state(ap).faults()
        },
    );
    s.clock().advance(300.0);
    // Power restored early, fade gone with it.
    s.set_faults(ap, Faults::default());
    s.clock().advance(60.0);
    s.reboot(ap);
    s.note("backhaul_outage", "Tower 01", Some(t0 + 7_200.0));
    // (Times below are compared rounded: a stopped clock advanced in steps adds them in floats.)
    s.clock().advance(60.0);

    let truth = s.truth();
    assert!(!truth.at(t0 + 1.0).devices[ap].up, "off while it was off");
    assert!(truth.at(t0 + 601.0).devices[ap].up, "and on once restored, early");
    assert!(
        truth
            .at(t0 + 1.0)
            .associations
            .iter()
            .filter(|a| a.ap == ap)
            .all(|a| !a.associated)
    );
    assert!(truth.at(t0 + 301.0).devices[ap].fade_db == 14.0);
    assert!((truth.at(t0 + 661.0).devices[ap].booted_at - (t0 + 660.0)).abs() < 1e-6);
    assert!(
        truth.at(t0 + 659.0).devices[ap].booted_at < 0.0,
        "booted before the world began"
    );

    let name = &s.world().devices[ap].name;
    let injected: Vec<(String, f64, Option<f64>)> = truth
        .events(t0, t0 + 3_600.0)
        .into_iter()
        .filter(|e| e.source != "world")
        .map(|e| (e.kind, (e.at - t0).round(), e.until.map(|u| (u - t0).round())))
        .collect();
    assert_eq!(
        injected,
        vec![
            ("power_off".into(), 0.0, Some(600.0)),
            ("fade".into(), 300.0, Some(600.0)),
            ("reboot".into(), 660.0, None),
            ("backhaul_outage".into(), 660.0, Some(7_200.0)),
        ],
    );
    let events = truth.events(t0 + 400.0, t0 + 500.0);
    let ongoing: Vec<&str> = events
        .iter()
        .filter(|e| e.device.as_deref() == Some(name.as_str()))
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(ongoing, ["power_off", "fade"], "events in progress overlap the range");
}

#[tokio::test]
async fn the_worlds_schedule_is_when_clients_really_come_and_go() {
    let s = stopped_sim(2_000).await;
    let w = s.world();
    let day = 86_400.0;
    let events = scheduled(w, 0.0, day);
    let mut checked: HashMap<&str, usize> = HashMap::new();
    for ap in w.devices.iter().filter(|d| d.role == Role::Ap) {
        for (r, radio) in ap.radios.iter().enumerate() {
            for (slot, c) in radio.clients.iter().enumerate() {
                let mac = c.mac.to_string();
                let away: Vec<(f64, f64)> = events
                    .iter()
                    .filter(|e| {
                        e.link
                            .as_ref()
                            .is_some_and(|l| l.ap == ap.name && l.radio == r && l.mac == mac)
                    })
                    .filter(|e| e.kind != "drift")
                    .map(|e| (e.at, e.until.unwrap_or(f64::INFINITY)))
                    .collect();
                // Every minute of the day: associated exactly when no event has it away.
                for minute in 0..1_440 {
                    let t = minute as f64 * 60.0 + 30.0;
                    let here = client_signal(w.seed, ap.site, ap.index, r, slot, c, t).is_some();
                    let gone = away.iter().any(|(a, b)| t >= *a && t < *b);
                    assert_eq!(
                        here, !gone,
                        "{} radio {r} slot {slot} ({:?}) at {t}",
                        ap.name, c.behaviour
                    );
                }
                let kind = match c.behaviour {
                    Behaviour::Flapping => "flapping",
                    Behaviour::Roaming { .. } => "roaming",
                    Behaviour::Dying => "dying",
                    Behaviour::Degrading => "degrading",
                    Behaviour::Steady => "steady",
                };
                *checked.entry(kind).or_default() += 1;
            }
        }
    }
    for kind in ["flapping", "roaming", "dying", "degrading", "steady"] {
        assert!(checked.get(kind).is_some_and(|n| *n > 0), "{checked:?}");
    }
    // Rain: raining on a site exactly inside its rain events.
    for site in 1..=w.sites {
        let wet: Vec<(f64, f64)> = events
            .iter()
            .filter(|e| e.kind == "rain" && e.site == Some(site))
            .map(|e| (e.at, e.until.unwrap()))
            .collect();
        for minute in 0..1_440 {
            let t = minute as f64 * 60.0 + 30.0;
            let raining = rain_fade(w.seed, site, t) > 0.0;
            assert_eq!(
                raining,
                wet.iter().any(|(a, b)| t >= *a && t < *b),
                "site {site} at {t}"
            );
        }
    }
    assert!(
        events.iter().any(|e| e.kind == "rain"),
        "a day of 2 000 devices has rain somewhere"
    );
    assert!(events.windows(2).all(|p| p[0].at <= p[1].at), "by time");
}

/// `GET path` on the control surface: the status and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("control surface");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1");
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "sim")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.expect("an answer");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    (status, String::from_utf8(body.to_vec()).expect("UTF-8"))
}

#[tokio::test]
async fn the_control_surface_serves_the_truth_and_its_export() {
    let s = Arc::new(stopped_sim(120).await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = control::router(s.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let ap = busiest_ap(&s);
    // A clock stopped just after the world began, at t0: the power-off from 120 s to 720 s after.
    let t0 = s.clock().now();
    s.clock().advance(120.0);
    let off = s.clock().now();
    s.set_faults(
        ap,
        Faults {
            offline_until: Some(off + 600.0),
            ..Faults::default()
        },
    );
    s.clock().advance(60.0);
    let at = |secs: f64| t0 + secs;

    let (status, body) = get(addr, &format!("/truth?at={}", at(150.0))).await;
    assert_eq!(status, 200, "{body}");
    let snap: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(snap["at"], at(150.0));
    assert_eq!(snap["devices"].as_array().unwrap().len(), 120);
    assert_eq!(snap["devices"][ap]["up"], false);
    let (_, before) = get(addr, &format!("/truth?at={}", at(60.0))).await;
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(before["devices"][ap]["up"], true, "before the power-off");
    assert_eq!(
        snap["associations"].as_array().unwrap().len(),
        s.world()
            .devices
            .iter()
            .map(|d| d.radios.iter().map(|r| r.clients.len()).sum::<usize>())
            .sum::<usize>()
    );

    let (status, body) = get(addr, &format!("/truth/events?from={}&until={}", at(100.0), at(200.0))).await;
    assert_eq!(status, 200, "{body}");
    let events: serde_json::Value = serde_json::from_str(&body).unwrap();
    let power: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "power_off")
        .collect();
    assert_eq!(power.len(), 1, "{events}");
    assert_eq!(power[0]["device"], s.world().devices[ap].name.as_str());
    assert_eq!(power[0]["at"], off);
    assert_eq!(power[0]["until"], off + 600.0);

    let (status, body) = get(
        addr,
        &format!("/truth/export?from={}&until={}&step=60", at(1.0), at(181.0)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let of = |kind: &str| lines.iter().filter(|l| l["type"] == kind).count();
    let per_time = snap["associations"].as_array().unwrap().len();
    assert_eq!((of("device"), of("association")), (3 * 120, 3 * per_time));
    assert!(of("event") >= 1);
    assert_eq!(lines.len(), of("event") + of("device") + of("association"));
    let line_at = |secs: f64| {
        lines
            .iter()
            .find(|l| l["type"] == "device" && l["t"] == at(secs) && l["index"] == ap)
            .unwrap_or_else(|| panic!("the AP's line at {secs} s"))
    };
    assert_eq!(line_at(61.0)["up"], true, "on before 120 s");
    assert_eq!(line_at(121.0)["up"], false, "switched off at 120 s");

    for bad in [
        "/truth/export?from=100&until=50",
        "/truth/export?step=0",
        "/truth/export?from=0&until=100000000&step=1",
        "/truth/events?from=abc",
        "/truth?at=1&nonsense=2",
    ] {
        let (status, body) = get(addr, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{bad}: {body}");
    }
}
