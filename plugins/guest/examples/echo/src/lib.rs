//! Says back what it was given: one finding per row of every part (devices, links, sectors,
//! history, in that order), each field as an evidence pair in its Rust debug form. The host's
//! tests check with it that every field crosses the boundary intact, absent values included.

use tod_plugin_sdk::*;

struct Echo;

fn row(subject: Subject, fields: Vec<(&str, String)>) -> Finding {
    let mut f = finding(subject, Severity::Info, "echo", None);
    f.evidence = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    f
}

impl Plugin for Echo {
    fn metadata() -> Metadata {
        Metadata {
            name: "Echo".into(),
            version: "1.0.0".into(),
            inputs: vec![Input::Devices, Input::Links, Input::Sectors, Input::History],
        }
    }

    fn evaluate(s: Snapshot) -> Result<Vec<Finding>, String> {
        let mut out = Vec::new();
        for d in s.devices {
            out.push(row(
                Subject::Device(d.id),
                vec![
                    ("hostname", format!("{:?}", d.hostname)),
                    ("site", format!("{:?}", d.site.map(|i| i.to_string()))),
                    ("sector", format!("{:?}", d.sector.map(|i| i.to_string()))),
                    (
                        "status",
                        match d.status {
                            DeviceStatus::Unknown => "unknown",
                            DeviceStatus::Online => "online",
                            DeviceStatus::Offline => "offline",
                            DeviceStatus::Unreachable => "unreachable",
                        }
                        .to_owned(),
                    ),
                    ("cpu_load", format!("{:?}", d.cpu_load)),
                    ("memory_used_pct", format!("{:?}", d.memory_used_pct)),
                    ("disk_used_pct", format!("{:?}", d.disk_used_pct)),
                    ("temperature", format!("{:?}", d.temperature)),
                    ("signal_strength", format!("{:?}", d.signal_strength)),
                    ("ccq", format!("{:?}", d.ccq)),
                    ("client_count", format!("{:?}", d.client_count)),
                ],
            ));
        }
        for l in s.links {
            out.push(row(
                Subject::Link((l.ap, l.cpe)),
                vec![
                    ("site", format!("{:?}", l.site.map(|i| i.to_string()))),
                    ("sector", format!("{:?}", l.sector.map(|i| i.to_string()))),
                    (
                        "state",
                        match l.state {
                            LinkState::Discovered => "discovered",
                            LinkState::Active => "active",
                            LinkState::Degraded => "degraded",
                            LinkState::Down => "down",
                            LinkState::Stale => "stale",
                        }
                        .to_owned(),
                    ),
                    ("signal_dbm", format!("{:?}", l.signal_dbm)),
                    ("tx_ccq", format!("{:?}", l.tx_ccq)),
                    ("trend_delta_db", format!("{:?}", l.trend_delta_db)),
                ],
            ));
        }
        for x in s.sectors {
            out.push(row(
                Subject::Sector(x.id),
                vec![
                    ("site", x.site.to_string()),
                    ("avg_signal_dbm", format!("{:?}", x.avg_signal_dbm)),
                    ("clients_now", x.clients_now.to_string()),
                    ("clients_before", x.clients_before.to_string()),
                    ("avg_ccq", format!("{:?}", x.avg_ccq)),
                    ("throughput_bps", format!("{:?}", x.throughput_bps)),
                ],
            ));
        }
        for h in s.history {
            out.push(row(
                Subject::Link((h.ap, h.cpe)),
                vec![("at_ms", h.at_ms.to_string()), ("dbm", h.dbm.to_string())],
            ));
        }
        out.push(row(
            Subject::Site(s.tenant),
            vec![("tenant", s.tenant.to_string()), ("at_ms", s.at_ms.to_string())],
        ));
        Ok(out)
    }
}

export_plugin!(Echo);
