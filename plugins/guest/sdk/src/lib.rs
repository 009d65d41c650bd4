//! Write TOD alert plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`] — its [`Metadata`] and one `evaluate` function
//! over a [`Snapshot`] — exported with [`export_plugin!`]. Build it for
//! `wasm32-unknown-unknown` as a `cdylib`; TOD turns the module into a component when it is
//! uploaded. See the README for a complete example.
//!
//! The host gives a plugin three things: the evaluation time ([`now_ms`]), a log ([`log`]) and
//! its own configuration ([`config`], [`config_f64`]). Nothing else — no files, network or clock
//! beyond that — and every call runs on a CPU and memory budget. Ids ([`Id`]) are UUIDs as two
//! 64-bit halves: comparable, hashable, printable, and free to pass.
//!
//! The snapshot crosses into the plugin as columns (`tod:plugin@0.2.0`: a few block copies
//! instead of one write per field); the SDK hands the plugin rows ([`Device`], [`Link`],
//! [`Sector`], [`HistoryPoint`]).

/// The generated bindings of the `tod:plugin` world.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/tod-plugin.wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "tod_plugin_sdk::bindings",
    });
}

use bindings::tod::plugin::types as wit;

pub use bindings::tod::plugin::host::{config, log, now_ms};
pub use wit::{DeviceStatus, Finding, Id, Input, LinkState, LogLevel, Metadata, Severity, Subject};

/// A TOD alert plugin: what it is, and what it finds in a snapshot.
pub trait Plugin {
    /// Name, version and the snapshot parts it reads (only those are sent).
    fn metadata() -> Metadata;
    /// The breaches in `snapshot`, or why it could not judge (this pass then has no verdict).
    fn evaluate(snapshot: Snapshot) -> Result<Vec<Finding>, String>;
}

/// Exports a [`Plugin`] as the plugin's implementation: `export_plugin!(MyRule);`, once per
/// plugin crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        struct __TodPluginExports;

        impl $crate::bindings::Guest for __TodPluginExports {
            fn metadata() -> $crate::Metadata {
                <$plugin as $crate::Plugin>::metadata()
            }

            fn evaluate(
                snapshot: $crate::bindings::tod::plugin::types::Snapshot,
            ) -> ::core::result::Result<$crate::__Findings, ::std::string::String> {
                <$plugin as $crate::Plugin>::evaluate($crate::Snapshot::from_columns(snapshot)?)
            }
        }

        $crate::bindings::export_world!(__TodPluginExports);
    };
}

#[doc(hidden)]
pub type __Findings = Vec<Finding>;

/// One tenant at one instant: the parts the plugin declared (the others are empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The tenant.
    pub tenant: Id,
    /// The evaluation time, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Devices and their latest metrics.
    pub devices: Vec<Device>,
    /// Links from access points to client radios.
    pub links: Vec<Link>,
    /// Sectors' aggregates over recent registrations.
    pub sectors: Vec<Sector>,
    /// Signal samples of links, oldest first (a bounded window).
    pub history: Vec<HistoryPoint>,
}

/// A device and its latest metrics (absent: not measured).
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: Id,
    pub hostname: String,
    pub site: Option<Id>,
    pub sector: Option<Id>,
    pub status: DeviceStatus,
    pub cpu_load: Option<f64>,
    pub memory_used_pct: Option<f64>,
    pub disk_used_pct: Option<f64>,
    pub temperature: Option<f64>,
    pub signal_strength: Option<f64>,
    pub ccq: Option<f64>,
    pub client_count: Option<f64>,
}

/// A link from an access point to a client radio.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub ap: Id,
    pub cpe: Id,
    pub site: Option<Id>,
    pub sector: Option<Id>,
    pub state: LinkState,
    pub signal_dbm: Option<i16>,
    pub tx_ccq: Option<u8>,
    /// Previous week's mean minus last week's, dB (positive: weaker): TOD's own trend, over
    /// the two weeks of whole hours before the evaluation, 0 dBm readings left out. `None`
    /// when either week has fewer than 12 readings.
    pub trend_delta_db: Option<f64>,
}

/// A sector's aggregates over recent registrations.
#[derive(Debug, Clone, PartialEq)]
pub struct Sector {
    pub id: Id,
    pub site: Id,
    pub avg_signal_dbm: Option<f64>,
    pub clients_now: u32,
    pub clients_before: u32,
    pub avg_ccq: Option<f64>,
    pub throughput_bps: Option<f64>,
}

/// One signal sample of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    pub ap: Id,
    pub cpe: Id,
    pub at_ms: i64,
    pub dbm: i16,
}

/// How many rows a table has: every column's length is checked against it.
struct Columns {
    rows: usize,
}

impl Columns {
    fn check<T>(&self, name: &str, column: &[T], per_row: usize) -> Result<(), String> {
        if column.len() == self.rows * per_row {
            Ok(())
        } else {
            Err(format!(
                "malformed snapshot: column {name} has {} values for {} rows",
                column.len(),
                self.rows
            ))
        }
    }
}

/// An id column's ids, in order.
fn ids(column: &[u64]) -> impl Iterator<Item = Id> + '_ {
    column.chunks_exact(2).map(|p| Id { hi: p[0], lo: p[1] })
}

/// An optional-id column's ids, in order.
fn opt_ids(column: &[u64]) -> impl Iterator<Item = Option<Id>> + '_ {
    ids(column).map(|id| Some(id).filter(|id| (id.hi, id.lo) != (0, 0)))
}

fn opt_f64(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

impl Snapshot {
    /// The rows of the columns the host sent; an error names a column whose length does not fit.
    #[doc(hidden)]
    pub fn from_columns(c: wit::Snapshot) -> Result<Self, String> {
        let mut s = Snapshot {
            tenant: c.tenant,
            at_ms: c.at_ms,
            devices: Vec::new(),
            links: Vec::new(),
            sectors: Vec::new(),
            history: Vec::new(),
        };
        if let Some(t) = c.devices {
            let n = Columns { rows: t.status.len() };
            n.check("devices.id", &t.id, 2)?;
            n.check("devices.hostname-end", &t.hostname_end, 1)?;
            n.check("devices.site", &t.site, 2)?;
            n.check("devices.sector", &t.sector, 2)?;
            for (name, column) in [
                ("devices.cpu-load", &t.cpu_load),
                ("devices.memory-used-pct", &t.memory_used_pct),
                ("devices.disk-used-pct", &t.disk_used_pct),
                ("devices.temperature", &t.temperature),
                ("devices.signal-strength", &t.signal_strength),
                ("devices.ccq", &t.ccq),
                ("devices.client-count", &t.client_count),
            ] {
                n.check(name, column, 1)?;
            }
            // Each column cut to exactly its rows, so the loop below indexes without checks.
            let rows = n.rows;
            let (ends, status) = (&t.hostname_end[..rows], &t.status[..rows]);
            let (cpu, mem, disk) = (
                &t.cpu_load[..rows],
                &t.memory_used_pct[..rows],
                &t.disk_used_pct[..rows],
            );
            let (temp, signal) = (&t.temperature[..rows], &t.signal_strength[..rows]);
            let (ccq, clients) = (&t.ccq[..rows], &t.client_count[..rows]);
            let mut start = 0;
            s.devices.reserve(rows);
            let places = ids(&t.id).zip(opt_ids(&t.site)).zip(opt_ids(&t.sector));
            for (i, ((id, site), sector)) in places.enumerate() {
                let end = ends[i] as usize;
                let hostname = t
                    .hostnames
                    .get(start..end)
                    .ok_or_else(|| format!("malformed snapshot: hostname {i} ends at {end}"))?
                    .to_owned();
                start = end;
                s.devices.push(Device {
                    id,
                    hostname,
                    site,
                    sector,
                    status: match status[i] {
                        1 => DeviceStatus::Online,
                        2 => DeviceStatus::Offline,
                        3 => DeviceStatus::Unreachable,
                        _ => DeviceStatus::Unknown,
                    },
                    cpu_load: opt_f64(cpu[i]),
                    memory_used_pct: opt_f64(mem[i]),
                    disk_used_pct: opt_f64(disk[i]),
                    temperature: opt_f64(temp[i]),
                    signal_strength: opt_f64(signal[i]),
                    ccq: opt_f64(ccq[i]),
                    client_count: opt_f64(clients[i]),
                });
            }
        }
        if let Some(t) = c.links {
            let n = Columns { rows: t.state.len() };
            n.check("links.ap", &t.ap, 2)?;
            n.check("links.cpe", &t.cpe, 2)?;
            n.check("links.site", &t.site, 2)?;
            n.check("links.sector", &t.sector, 2)?;
            n.check("links.signal-dbm", &t.signal_dbm, 1)?;
            n.check("links.tx-ccq", &t.tx_ccq, 1)?;
            n.check("links.trend-delta-db", &t.trend_delta_db, 1)?;
            s.links = ids(&t.ap)
                .zip(ids(&t.cpe))
                .zip(opt_ids(&t.site).zip(opt_ids(&t.sector)))
                .zip(t.state.iter().zip(&t.signal_dbm))
                .zip(t.tx_ccq.iter().zip(&t.trend_delta_db))
                .map(
                    |((((ap, cpe), (site, sector)), (&state, &signal)), (&ccq, &trend))| Link {
                        ap,
                        cpe,
                        site,
                        sector,
                        state: match state {
                            0 => LinkState::Discovered,
                            1 => LinkState::Active,
                            2 => LinkState::Degraded,
                            3 => LinkState::Down,
                            _ => LinkState::Stale,
                        },
                        signal_dbm: (signal != i16::MIN).then_some(signal),
                        tx_ccq: (ccq != u8::MAX).then_some(ccq),
                        trend_delta_db: opt_f64(trend),
                    },
                )
                .collect();
        }
        if let Some(t) = c.sectors {
            let n = Columns {
                rows: t.clients_now.len(),
            };
            n.check("sectors.id", &t.id, 2)?;
            n.check("sectors.site", &t.site, 2)?;
            n.check("sectors.avg-signal-dbm", &t.avg_signal_dbm, 1)?;
            n.check("sectors.clients-before", &t.clients_before, 1)?;
            n.check("sectors.avg-ccq", &t.avg_ccq, 1)?;
            n.check("sectors.throughput-bps", &t.throughput_bps, 1)?;
            s.sectors = ids(&t.id)
                .zip(ids(&t.site))
                .zip(t.avg_signal_dbm.iter().zip(&t.avg_ccq))
                .zip(t.clients_now.iter().zip(&t.clients_before))
                .zip(&t.throughput_bps)
                .map(
                    |((((id, site), (&signal, &ccq)), (&now, &before)), &throughput)| Sector {
                        id,
                        site,
                        avg_signal_dbm: opt_f64(signal),
                        clients_now: now,
                        clients_before: before,
                        avg_ccq: opt_f64(ccq),
                        throughput_bps: opt_f64(throughput),
                    },
                )
                .collect();
        }
        if let Some(t) = c.history {
            let n = Columns { rows: t.dbm.len() };
            n.check("history.ap", &t.ap, 2)?;
            n.check("history.cpe", &t.cpe, 2)?;
            n.check("history.at-ms", &t.at_ms, 1)?;
            s.history = ids(&t.ap)
                .zip(ids(&t.cpe))
                .zip(t.at_ms.iter().zip(&t.dbm))
                .map(|((ap, cpe), (&at_ms, &dbm))| HistoryPoint { ap, cpe, at_ms, dbm })
                .collect();
        }
        Ok(s)
    }
}

/// Shorthand for a finding.
pub fn finding(subject: Subject, severity: Severity, message: impl Into<String>, value: Option<f64>) -> Finding {
    Finding {
        subject,
        severity,
        message: message.into(),
        value,
        evidence: Vec::new(),
    }
}

/// A configuration value, or `default` when it is absent or not a number.
pub fn config_f64(key: &str, default: f64) -> f64 {
    config()
        .into_iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A configuration value as text.
pub fn config_str(key: &str) -> Option<String> {
    config().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The median of `values` (`None` when empty); NaNs sort last.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

impl Id {
    /// The id as one number (the UUID's 128 bits).
    pub fn as_u128(&self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        (self.hi, self.lo) == (other.hi, other.lo)
    }
}

impl Eq for Id {}

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.hi, self.lo).hash(state);
    }
}

impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Id {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.hi, self.lo).cmp(&(other.hi, other.lo))
    }
}

/// The UUID form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.as_u128();
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            v >> 96,
            (v >> 80) & 0xffff,
            (v >> 64) & 0xffff,
            (v >> 48) & 0xffff,
            v & 0xffff_ffff_ffff
        )
    }
}
