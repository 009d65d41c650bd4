//! Between tod-core's types and the `tod:plugin` world's.

use tod_core::alerts::{Finding, Severity, Snapshot, Subject};
use tod_core::links::{LinkKey, LinkState};
use tod_core::{DeviceId, DeviceStatus, SectorId, SiteId};
use uuid::Uuid;

use super::{Inputs, Limits, millis, wit};

/// A snapshot in the plugin world's types, converted once and handed to any number of plugins
/// that read the same parts.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub(crate) snapshot: wit::Snapshot,
}

impl Prepared {
    /// Converts the parts of `snapshot` that `inputs` name (the rest stay empty).
    pub fn new(snapshot: &Snapshot, inputs: Inputs) -> Self {
        let devices = if inputs.devices {
            snapshot
                .devices
                .iter()
                .map(|d| wit::Device {
                    id: id(d.id.0),
                    hostname: d.hostname.clone(),
                    site: d.site.map(|s| id(s.0)),
                    sector: d.sector.map(|s| id(s.0)),
                    status: match d.status {
                        DeviceStatus::Unknown => wit::DeviceStatus::Unknown,
                        DeviceStatus::Online => wit::DeviceStatus::Online,
                        DeviceStatus::Offline => wit::DeviceStatus::Offline,
                        DeviceStatus::Unreachable => wit::DeviceStatus::Unreachable,
                    },
                    cpu_load: d.metrics.cpu_load,
                    memory_used_pct: d.metrics.memory_used_pct,
                    disk_used_pct: d.metrics.disk_used_pct,
                    temperature: d.metrics.temperature,
                    signal_strength: d.metrics.signal_strength,
                    ccq: d.metrics.ccq,
                    client_count: d.metrics.client_count,
                })
                .collect()
        } else {
            Vec::new()
        };
        let links = if inputs.links {
            snapshot
                .links
                .iter()
                .map(|l| wit::Link {
                    ap: id(l.key.ap.0),
                    cpe: id(l.key.cpe.0),
                    site: l.site.map(|s| id(s.0)),
                    sector: l.sector.map(|s| id(s.0)),
                    state: match l.state {
                        LinkState::Discovered => wit::LinkState::Discovered,
                        LinkState::Active => wit::LinkState::Active,
                        LinkState::Degraded => wit::LinkState::Degraded,
                        LinkState::Down => wit::LinkState::Down,
                        LinkState::Stale => wit::LinkState::Stale,
                    },
                    signal_dbm: l.signal_dbm,
                    tx_ccq: l.tx_ccq,
                    trend_delta_db: l.trend_delta_db,
                })
                .collect()
        } else {
            Vec::new()
        };
        let sectors = if inputs.sectors {
            snapshot
                .sectors
                .iter()
                .map(|s| wit::Sector {
                    id: id(s.id.0),
                    site: id(s.site.0),
                    avg_signal_dbm: s.avg_signal_dbm,
                    clients_now: s.clients_now,
                    clients_before: s.clients_before,
                    avg_ccq: s.avg_ccq,
                    throughput_bps: s.throughput_bps,
                })
                .collect()
        } else {
            Vec::new()
        };
        let history = if inputs.history {
            snapshot
                .history
                .iter()
                .map(|h| wit::HistoryPoint {
                    ap: id(h.link.ap.0),
                    cpe: id(h.link.cpe.0),
                    at_ms: millis(h.at),
                    dbm: h.dbm,
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            snapshot: wit::Snapshot {
                tenant: id(snapshot.tenant.0),
                at_ms: millis(snapshot.at),
                devices,
                links,
                sectors,
                history,
            },
        }
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
