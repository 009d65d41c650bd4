//! Between tod-core's types and the `tod:plugin` world's.

use std::sync::OnceLock;

use tod_core::alerts::{Finding, Severity, Snapshot, Subject};
use tod_core::links::{LinkKey, LinkState};
use tod_core::{DeviceId, DeviceStatus, SectorId, SiteId};
use uuid::Uuid;

use super::{Inputs, Limits, millis, v1, wit};

/// A snapshot in the plugin world's types, converted once and handed to any number of plugins
/// that read the same parts: columns for `tod:plugin@0.2.0`, and rows for `@0.1.0` plugins,
/// derived from the columns the first time one asks.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub(crate) columns: wit::Snapshot,
    rows: OnceLock<v1::Snapshot>,
}

/// What an absent optional value is in a column.
const NO_ID: (u64, u64) = (0, 0);
const NO_DBM: i16 = i16::MIN;
const NO_CCQ: u8 = u8::MAX;

fn push_id(column: &mut Vec<u64>, id: Option<Uuid>) {
    let (hi, lo) = id.map_or(NO_ID, |u| u.as_u64_pair());
    column.extend([hi, lo]);
}

fn opt_f64(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

impl Prepared {
    /// Converts the parts of `snapshot` that `inputs` name (the rest are left out).
    pub fn new(snapshot: &Snapshot, inputs: Inputs) -> Self {
        let devices = (inputs.devices && !snapshot.devices.is_empty()).then(|| {
            let n = snapshot.devices.len();
            let mut t = wit::Devices {
                id: Vec::with_capacity(2 * n),
                hostnames: String::new(),
                hostname_end: Vec::with_capacity(n),
                site: Vec::with_capacity(2 * n),
                sector: Vec::with_capacity(2 * n),
                status: Vec::with_capacity(n),
                cpu_load: Vec::with_capacity(n),
                memory_used_pct: Vec::with_capacity(n),
                disk_used_pct: Vec::with_capacity(n),
                temperature: Vec::with_capacity(n),
                signal_strength: Vec::with_capacity(n),
                ccq: Vec::with_capacity(n),
                client_count: Vec::with_capacity(n),
            };
            for d in &snapshot.devices {
                push_id(&mut t.id, Some(d.id.0));
                t.hostnames.push_str(&d.hostname);
                t.hostname_end
                    .push(u32::try_from(t.hostnames.len()).unwrap_or(u32::MAX));
                push_id(&mut t.site, d.site.map(|s| s.0));
                push_id(&mut t.sector, d.sector.map(|s| s.0));
                t.status.push(match d.status {
                    DeviceStatus::Unknown => 0,
                    DeviceStatus::Online => 1,
                    DeviceStatus::Offline => 2,
                    DeviceStatus::Unreachable => 3,
                });
                let m = &d.metrics;
                t.cpu_load.push(opt_f64(m.cpu_load));
                t.memory_used_pct.push(opt_f64(m.memory_used_pct));
                t.disk_used_pct.push(opt_f64(m.disk_used_pct));
                t.temperature.push(opt_f64(m.temperature));
                t.signal_strength.push(opt_f64(m.signal_strength));
                t.ccq.push(opt_f64(m.ccq));
                t.client_count.push(opt_f64(m.client_count));
            }
            t
        });
        let links = (inputs.links && !snapshot.links.is_empty()).then(|| {
            let n = snapshot.links.len();
            let mut t = wit::Links {
                ap: Vec::with_capacity(2 * n),
                cpe: Vec::with_capacity(2 * n),
                site: Vec::with_capacity(2 * n),
                sector: Vec::with_capacity(2 * n),
                state: Vec::with_capacity(n),
                signal_dbm: Vec::with_capacity(n),
                tx_ccq: Vec::with_capacity(n),
                trend_delta_db: Vec::with_capacity(n),
            };
            for l in &snapshot.links {
                push_id(&mut t.ap, Some(l.key.ap.0));
                push_id(&mut t.cpe, Some(l.key.cpe.0));
                push_id(&mut t.site, l.site.map(|s| s.0));
                push_id(&mut t.sector, l.sector.map(|s| s.0));
                t.state.push(match l.state {
                    LinkState::Discovered => 0,
                    LinkState::Active => 1,
                    LinkState::Degraded => 2,
                    LinkState::Down => 3,
                    LinkState::Stale => 4,
                });
                // The sentinels are outside what a radio reports; a value on one is moved off it.
                t.signal_dbm.push(l.signal_dbm.map_or(NO_DBM, |v| v.max(NO_DBM + 1)));
                t.tx_ccq.push(l.tx_ccq.map_or(NO_CCQ, |v| v.min(NO_CCQ - 1)));
                t.trend_delta_db.push(opt_f64(l.trend_delta_db));
            }
            t
        });
        let sectors = (inputs.sectors && !snapshot.sectors.is_empty()).then(|| {
            let n = snapshot.sectors.len();
            let mut t = wit::Sectors {
                id: Vec::with_capacity(2 * n),
                site: Vec::with_capacity(2 * n),
                avg_signal_dbm: Vec::with_capacity(n),
                clients_now: Vec::with_capacity(n),
                clients_before: Vec::with_capacity(n),
                avg_ccq: Vec::with_capacity(n),
                throughput_bps: Vec::with_capacity(n),
            };
            for s in &snapshot.sectors {
                push_id(&mut t.id, Some(s.id.0));
                push_id(&mut t.site, Some(s.site.0));
                t.avg_signal_dbm.push(opt_f64(s.avg_signal_dbm));
                t.clients_now.push(s.clients_now);
                t.clients_before.push(s.clients_before);
                t.avg_ccq.push(opt_f64(s.avg_ccq));
                t.throughput_bps.push(opt_f64(s.throughput_bps));
            }
            t
        });
        let history = (inputs.history && !snapshot.history.is_empty()).then(|| {
            let n = snapshot.history.len();
            let mut t = wit::History {
                ap: Vec::with_capacity(2 * n),
                cpe: Vec::with_capacity(2 * n),
                at_ms: Vec::with_capacity(n),
                dbm: Vec::with_capacity(n),
            };
            for h in &snapshot.history {
                push_id(&mut t.ap, Some(h.link.ap.0));
                push_id(&mut t.cpe, Some(h.link.cpe.0));
                t.at_ms.push(millis(h.at));
                t.dbm.push(h.dbm);
            }
            t
        });
        Self {
            columns: wit::Snapshot {
                tenant: id(snapshot.tenant.0),
                at_ms: millis(snapshot.at),
                devices,
                links,
                sectors,
                history,
            },
            rows: OnceLock::new(),
        }
    }

    /// The snapshot as a `tod:plugin@0.1.0` plugin takes it: a list of records per part.
    pub(crate) fn rows(&self) -> &v1::Snapshot {
        self.rows.get_or_init(|| rows(&self.columns))
    }
}

/// Row `i`'s id in an id column (`None` for the nil UUID).
fn id_at(column: &[u64], i: usize) -> Option<v1::Id> {
    let (hi, lo) = (column[2 * i], column[2 * i + 1]);
    ((hi, lo) != NO_ID).then_some(v1::Id { hi, lo })
}

fn f64_at(column: &[f64], i: usize) -> Option<f64> {
    Some(column[i]).filter(|v| !v.is_nan())
}

fn rows(c: &wit::Snapshot) -> v1::Snapshot {
    let no_id = v1::Id { hi: 0, lo: 0 };
    let devices = c.devices.as_ref().map_or_else(Vec::new, |t| {
        let mut start = 0;
        (0..t.status.len())
            .map(|i| {
                let end = t.hostname_end[i] as usize;
                let hostname = t.hostnames[start..end].to_owned();
                start = end;
                v1::Device {
                    id: id_at(&t.id, i).unwrap_or(no_id),
                    hostname,
                    site: id_at(&t.site, i),
                    sector: id_at(&t.sector, i),
                    status: match t.status[i] {
                        1 => v1::DeviceStatus::Online,
                        2 => v1::DeviceStatus::Offline,
                        3 => v1::DeviceStatus::Unreachable,
                        _ => v1::DeviceStatus::Unknown,
                    },
                    cpu_load: f64_at(&t.cpu_load, i),
                    memory_used_pct: f64_at(&t.memory_used_pct, i),
                    disk_used_pct: f64_at(&t.disk_used_pct, i),
                    temperature: f64_at(&t.temperature, i),
                    signal_strength: f64_at(&t.signal_strength, i),
                    ccq: f64_at(&t.ccq, i),
                    client_count: f64_at(&t.client_count, i),
                }
            })
            .collect()
    });
    let links = c.links.as_ref().map_or_else(Vec::new, |t| {
        (0..t.state.len())
            .map(|i| v1::Link {
                ap: id_at(&t.ap, i).unwrap_or(no_id),
                cpe: id_at(&t.cpe, i).unwrap_or(no_id),
                site: id_at(&t.site, i),
                sector: id_at(&t.sector, i),
                state: match t.state[i] {
                    0 => v1::LinkState::Discovered,
                    1 => v1::LinkState::Active,
                    2 => v1::LinkState::Degraded,
                    3 => v1::LinkState::Down,
                    _ => v1::LinkState::Stale,
                },
                signal_dbm: Some(t.signal_dbm[i]).filter(|&v| v != NO_DBM),
                tx_ccq: Some(t.tx_ccq[i]).filter(|&v| v != NO_CCQ),
                trend_delta_db: f64_at(&t.trend_delta_db, i),
            })
            .collect()
    });
    let sectors = c.sectors.as_ref().map_or_else(Vec::new, |t| {
        (0..t.clients_now.len())
            .map(|i| v1::Sector {
                id: id_at(&t.id, i).unwrap_or(no_id),
                site: id_at(&t.site, i).unwrap_or(no_id),
                avg_signal_dbm: f64_at(&t.avg_signal_dbm, i),
                clients_now: t.clients_now[i],
                clients_before: t.clients_before[i],
                avg_ccq: f64_at(&t.avg_ccq, i),
                throughput_bps: f64_at(&t.throughput_bps, i),
            })
            .collect()
    });
    let history = c.history.as_ref().map_or_else(Vec::new, |t| {
        (0..t.dbm.len())
            .map(|i| v1::HistoryPoint {
                ap: id_at(&t.ap, i).unwrap_or(no_id),
                cpe: id_at(&t.cpe, i).unwrap_or(no_id),
                at_ms: t.at_ms[i],
                dbm: t.dbm[i],
            })
            .collect()
    });
    v1::Snapshot {
        tenant: v1::Id {
            hi: c.tenant.hi,
            lo: c.tenant.lo,
        },
        at_ms: c.at_ms,
        devices,
        links,
        sectors,
        history,
    }
}

/// An id as plugins see it.
fn id(u: Uuid) -> wit::Id {
    let (hi, lo) = u.as_u64_pair();
    wit::Id { hi, lo }
}

fn uuid(i: &wit::Id) -> Uuid {
    Uuid::from_u64_pair(i.hi, i.lo)
}

/// A `tod:plugin@0.1.0` finding in the current world's types (the record did not change).
pub(crate) fn finding_v1(f: v1::Finding) -> wit::Finding {
    let id = |i: v1::Id| wit::Id { hi: i.hi, lo: i.lo };
    wit::Finding {
        subject: match f.subject {
            v1::Subject::Device(d) => wit::Subject::Device(id(d)),
            v1::Subject::Link((ap, cpe)) => wit::Subject::Link((id(ap), id(cpe))),
            v1::Subject::Site(s) => wit::Subject::Site(id(s)),
            v1::Subject::Sector(s) => wit::Subject::Sector(id(s)),
        },
        severity: match f.severity {
            v1::Severity::Info => wit::Severity::Info,
            v1::Severity::Warning => wit::Severity::Warning,
            v1::Severity::Critical => wit::Severity::Critical,
        },
        message: f.message,
        value: f.value,
        evidence: f.evidence,
    }
}

/// A plugin's finding, checked against the limits.
pub(crate) fn finding(f: wit::Finding, limits: &Limits) -> Result<Finding, String> {
    let subject = match &f.subject {
        wit::Subject::Device(d) => Subject::Device(DeviceId(uuid(d))),
        wit::Subject::Link((ap, cpe)) => Subject::Link(LinkKey {
            ap: DeviceId(uuid(ap)),
            cpe: DeviceId(uuid(cpe)),
        }),
        wit::Subject::Site(s) => Subject::Site(SiteId(uuid(s))),
        wit::Subject::Sector(s) => Subject::Sector(SectorId(uuid(s))),
    };
    if f.message.chars().count() > limits.max_message_chars {
        return Err(format!(
            "returned a message of {} characters; the limit is {}",
            f.message.chars().count(),
            limits.max_message_chars
        ));
    }
    if f.evidence.len() > limits.max_evidence {
        return Err(format!(
            "returned {} evidence pairs on one finding; the limit is {}",
            f.evidence.len(),
            limits.max_evidence
        ));
    }
    if f.value.is_some_and(|v| !v.is_finite()) {
        return Err("returned a value that is not a finite number".into());
    }
    let clip = |s: String| -> String { s.chars().take(limits.max_message_chars).collect() };
    Ok(Finding {
        subject,
        severity: match f.severity {
            wit::Severity::Info => Severity::Info,
            wit::Severity::Warning => Severity::Warning,
            wit::Severity::Critical => Severity::Critical,
        },
        message: f.message,
        value: f.value,
        evidence: f.evidence.into_iter().map(|(k, v)| (clip(k), clip(v))).collect(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use tod_core::alerts::{DeviceView, HistoryPoint, LinkView, Metrics, SectorView};
    use tod_core::{SectorId, TenantId};

    use super::*;

    fn dev(n: u128) -> DeviceId {
        DeviceId::from_u128(n)
    }

    fn v1_id(u: Uuid) -> v1::Id {
        let (hi, lo) = u.as_u64_pair();
        v1::Id { hi, lo }
    }

    #[test]
    fn rows_for_older_plugins_are_the_columns_read_back_absent_values_included() {
        let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let mut s = Snapshot::empty(TenantId::from_u128(9), at);
        let site = SiteId::from_u128(5);
        let sector = SectorId::from_u128(6);
        s.devices = vec![
            DeviceView {
                id: dev(1),
                hostname: "mást-1".into(),
                site: Some(site),
                sector: Some(sector),
                groups: Vec::new(),
                status: DeviceStatus::Offline,
                metrics: Metrics {
                    temperature: Some(41.5),
                    ..Metrics::default()
                },
            },
            DeviceView {
                id: dev(2),
                hostname: "cpe".into(),
                site: None,
                sector: None,
                groups: Vec::new(),
                status: DeviceStatus::Unknown,
                metrics: Metrics::default(),
            },
        ];
        let link = |cpe, signal, ccq| LinkView {
            key: LinkKey {
                ap: dev(1),
                cpe: dev(cpe),
            },
            site: Some(site),
            sector: None,
            state: LinkState::Down,
            signal_dbm: signal,
            tx_ccq: ccq,
            trend_delta_db: None,
        };
        // The sentinels' own values are moved one step off them: i16::MIN dBm is no radio's.
        s.links = vec![
            link(2, Some(-70), Some(88)),
            link(3, None, None),
            link(4, Some(i16::MIN), Some(255)),
        ];
        s.sectors = vec![SectorView {
            id: sector,
            site,
            avg_signal_dbm: Some(-66.5),
            clients_now: 3,
            clients_before: 0,
            avg_ccq: None,
            throughput_bps: Some(1e6),
        }];
        s.history = vec![HistoryPoint {
            link: LinkKey {
                ap: dev(1),
                cpe: dev(2),
            },
            at,
            dbm: -71,
        }];
        let prepared = Prepared::new(&s, Inputs::ALL);
        let none = Metrics::default();
        let expected = v1::Snapshot {
            tenant: v1_id(s.tenant.0),
            at_ms: millis(at),
            devices: vec![
                v1::Device {
                    id: v1_id(dev(1).0),
                    hostname: "mást-1".into(),
                    site: Some(v1_id(site.0)),
                    sector: Some(v1_id(sector.0)),
                    status: v1::DeviceStatus::Offline,
                    cpu_load: none.cpu_load,
                    memory_used_pct: None,
                    disk_used_pct: None,
                    temperature: Some(41.5),
                    signal_strength: None,
                    ccq: None,
                    client_count: None,
                },
                v1::Device {
                    id: v1_id(dev(2).0),
                    hostname: "cpe".into(),
                    site: None,
                    sector: None,
                    status: v1::DeviceStatus::Unknown,
                    cpu_load: None,
                    memory_used_pct: None,
                    disk_used_pct: None,
                    temperature: None,
                    signal_strength: None,
                    ccq: None,
                    client_count: None,
                },
            ],
            links: [
                (2, Some(-70), Some(88)),
                (3, None, None),
                (4, Some(i16::MIN + 1), Some(254)),
            ]
            .into_iter()
            .map(|(cpe, signal_dbm, tx_ccq)| v1::Link {
                ap: v1_id(dev(1).0),
                cpe: v1_id(dev(cpe).0),
                site: Some(v1_id(site.0)),
                sector: None,
                state: v1::LinkState::Down,
                signal_dbm,
                tx_ccq,
                trend_delta_db: None,
            })
            .collect(),
            sectors: vec![v1::Sector {
                id: v1_id(sector.0),
                site: v1_id(site.0),
                avg_signal_dbm: Some(-66.5),
                clients_now: 3,
                clients_before: 0,
                avg_ccq: None,
                throughput_bps: Some(1e6),
            }],
            history: vec![v1::HistoryPoint {
                ap: v1_id(dev(1).0),
                cpe: v1_id(dev(2).0),
                at_ms: millis(at),
                dbm: -71,
            }],
        };
        assert_eq!(format!("{:?}", prepared.rows()), format!("{expected:?}"));

        // Parts not asked for, or with no rows, are left out of the columns altogether.
        let links_only = Prepared::new(
            &s,
            Inputs {
                links: true,
                ..Inputs::default()
            },
        );
        assert!(links_only.columns.devices.is_none() && links_only.columns.history.is_none());
        assert_eq!(links_only.columns.links.as_ref().map(|l| l.state.len()), Some(3));
        let empty = Prepared::new(&Snapshot::empty(s.tenant, at), Inputs::ALL);
        assert!(empty.columns.links.is_none() && empty.columns.sectors.is_none());
        assert!(empty.rows().links.is_empty());
    }
}
