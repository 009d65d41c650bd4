//! The report an agent sends, as versioned serde types.
//!
//! One [`Batch`] carries any number of [`DeviceReport`]s from one agent. Every report has a
//! per-device sequence number and the time it was collected at the tower; the batch has an
//! idempotency key so a redelivered batch is recognised and ignored.
//!
//! `Option` fields mean "not collected in this cycle". A collected-but-empty list is
//! information: `registrations: Some(vec![])` says "this AP has no clients now", which is what
//! lets links age to `down` when an AP loses every client (the original dropped empty tables).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use crate::model::{AgentId, DeviceId};

/// The schema version this crate writes. Readers accept [`MIN_SUPPORTED_SCHEMA`]..=this.
pub const SCHEMA_VERSION: u16 = 1;
/// The oldest schema version this crate still reads.
pub const MIN_SUPPORTED_SCHEMA: u16 = 1;
/// Upper bound on reports in one batch; larger batches are rejected, not truncated.
pub const MAX_REPORTS_PER_BATCH: usize = 10_000;
/// Upper bound on registration rows in one report (a sector AP has at most a few hundred clients).
pub const MAX_REGISTRATIONS_PER_REPORT: usize = 4_096;

/// Why a batch was rejected. Nothing in a rejected batch is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    /// The bytes are not a batch (bad JSON, wrong field types, ...).
    #[error("malformed batch: {0}")]
    Malformed(String),
    /// The batch declares a schema this reader does not know.
    #[error("unsupported schema version {found} (supported {MIN_SUPPORTED_SCHEMA}..={SCHEMA_VERSION})")]
    UnsupportedSchema {
        /// The declared version.
        found: u16,
    },
    /// The batch is well-formed but violates an invariant.
    #[error("invalid batch: {0}")]
    Invalid(String),
}

/// A batch of reports from one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Schema version ([`SCHEMA_VERSION`] when written by this crate).
    pub schema: u16,
    /// The sending agent.
    pub agent_id: AgentId,
    /// Unique per batch; redelivery of the same batch carries the same key.
    pub idempotency_key: String,
    /// When the agent assembled the batch (its clock; informational).
    pub sent_at: DateTime<Utc>,
    /// The reports, in collection order.
    pub reports: Vec<DeviceReport>,
    /// Reports the agent's spool has dropped to stay within its bounds (bytes, age), ever: a
    /// running count, so the server sees data was lost when it grows (and none when it does not).
    /// Absent means none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spool_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Everything collected from one device in one poll cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// The device polled.
    pub device_id: DeviceId,
    /// Strictly increasing per device (per agent); lets the server order and de-duplicate.
    pub sequence: u64,
    /// When the poll ran at the tower.
    pub collected_at: DateTime<Utc>,
    /// Reachability as seen by the agent.
    pub status: PollStatus,
    /// Identity and version (sent on connect and when it changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemInfo>,
    /// CPU, memory, disk, temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Interfaces with MACs and counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<Interface>>,
    /// Wireless registration table; `Some(empty)` means "no clients".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrations: Option<Vec<Registration>>,
    /// RF monitor per radio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rf: Option<Vec<RfStats>>,
    /// Byte counters since the previous report, per interface (wraps and reboots handled at the
    /// edge; the raw counters are in `interfaces`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interface_deltas: Vec<CounterDelta>,
    /// Values the agent could not parse (the rest of the report is intact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Bytes moved on one interface since the previous report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterDelta {
    /// Interface name.
    pub interface: String,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Sent bytes.
    pub tx_bytes: u64,
}

impl DeviceReport {
    /// A report with a status and nothing collected.
    pub fn new(device_id: DeviceId, sequence: u64, collected_at: DateTime<Utc>, status: PollStatus) -> Self {
        Self {
            device_id,
            sequence,
            collected_at,
            status,
            system: None,
            resources: None,
            interfaces: None,
            registrations: None,
            rf: None,
            interface_deltas: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// The outcome of polling a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PollStatus {
    /// The device answered.
    Online,
    /// The device did not answer (connect refused, timeout, TLS failure, ...).
    Offline {
        /// Human-readable cause.
        reason: String,
    },
    /// The device answered but refused the credentials; the agent holds back retries.
    AuthFailed {
        /// RouterOS's message.
        reason: String,
    },
}

/// Which wireless menu the device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WirelessPackage {
    /// `/interface/wireless` (v6, and the legacy package on v7).
    Wireless,
    /// `/interface/wifiwave2` (7.x before 7.13).
    Wifiwave2,
    /// `/interface/wifi` (7.13+).
    Wifi,
    /// No wireless package.
    None,
}

/// Identity and version of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// The version string as printed (`7.16.2 (stable)`).
    pub routeros_version: String,
    /// `board-name`.
    pub board_name: Option<String>,
    /// `architecture-name`.
    pub architecture: Option<String>,
    /// RouterBOARD serial number (absent on CHR/x86).
    pub serial_number: Option<String>,
    /// RouterBOARD firmware.
    pub firmware_version: Option<String>,
    /// Uptime in seconds at collection.
    pub uptime_secs: Option<u64>,
    /// The wireless menu the agent chose.
    pub wireless_package: WirelessPackage,
}

/// Resource usage. Percentages are computed by [`Resources::memory_used_pct`] and friends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Resources {
    /// CPU load, percent.
    pub cpu_load: Option<f64>,
    /// Free memory, bytes.
    pub free_memory: Option<u64>,
    /// Total memory, bytes.
    pub total_memory: Option<u64>,
    /// Free disk, bytes.
    pub free_hdd: Option<u64>,
    /// Total disk, bytes.
    pub total_hdd: Option<u64>,
    /// Board or CPU temperature, °C.
    pub temperature_c: Option<f64>,
}

fn used_pct(free: Option<u64>, total: Option<u64>) -> Option<f64> {
    let (free, total) = (free?, total?);
    if total == 0 || free > total {
        return None;
    }
    let pct = (1.0 - free as f64 / total as f64) * 100.0;
    Some((pct * 10.0).round() / 10.0)
}

impl Resources {
    /// Memory used, percent to one decimal; `None` when unknown or inconsistent.
    pub fn memory_used_pct(&self) -> Option<f64> {
        used_pct(self.free_memory, self.total_memory)
    }
    /// Disk used, percent to one decimal; `None` when unknown or inconsistent.
    pub fn disk_used_pct(&self) -> Option<f64> {
        used_pct(self.free_hdd, self.total_hdd)
    }
}

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name (`wlan1`, `ether1`).
    pub name: String,
    /// MAC, when the interface has one.
    pub mac: Option<MacAddr>,
    /// RouterOS type string (`ether`, `wlan`, `bridge`, ...).
    pub kind: String,
    /// `running`.
    pub running: bool,
    /// Raw byte counters as read.
    pub rx_bytes: Option<u64>,
    /// Raw byte counters as read.
    pub tx_bytes: Option<u64>,
}

/// One client in an AP's registration table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The AP interface the client is registered on.
    pub interface: String,
    /// The client's MAC (canonical form).
    pub mac: MacAddr,
    /// Received signal, dBm (`signal-strength` or v7 `signal`).
    pub signal_dbm: Option<i16>,
    /// The client's view of our signal, dBm.
    pub tx_signal_dbm: Option<i16>,
    /// Transmit CCQ, percent. `None` on packages without CCQ (v7 `wifi`), never 0 as a stand-in.
    pub tx_ccq: Option<u8>,
    /// `tx-rate` as printed.
    pub tx_rate: Option<String>,
    /// `rx-rate` as printed.
    pub rx_rate: Option<String>,
    /// Registration uptime in seconds.
    pub uptime_secs: Option<u64>,
    /// Distance estimate, metres.
    pub distance_m: Option<u32>,
    /// `last-ip`.
    pub last_ip: Option<String>,
    /// Bytes sent to the client.
    pub tx_bytes: Option<u64>,
    /// Bytes received from the client.
    pub rx_bytes: Option<u64>,
}

/// RF monitor for one radio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfStats {
    /// Radio interface.
    pub interface: String,
    /// Noise floor, dBm.
    pub noise_floor_dbm: Option<i16>,
    /// Frequency, MHz.
    pub frequency_mhz: Option<u32>,
    /// Channel width, MHz (a number, not the "20MHz" text that broke the original's schema).
    pub channel_width_mhz: Option<u16>,
    /// Transmit power, dBm.
    pub tx_power_dbm: Option<i16>,
    /// Registered clients.
    pub registered_clients: Option<u32>,
    /// What the radio is: an access point's registration table lists its clients, a station's
    /// lists the AP it is connected to. Absent from agents that predate it (read as unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RadioRole>,
}

/// The role of a radio interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RadioRole {
    /// Serves clients (`ap-bridge`, `bridge`, `wds-slave`, wifi `ap`).
    AccessPoint,
    /// Connects to an AP (`station*` modes, wifi `station*`).
    Station,
}

impl RadioRole {
    /// From RouterOS's `mode` (wireless) or `configuration.mode` (wifi/wifiwave2); `None` for
    /// anything unrecognised (alignment-only, nstreme-dual-slave, ...).
    pub fn from_mode(mode: &str) -> Option<Self> {
        let m = mode.trim();
        if m.starts_with("station") {
            Some(Self::Station)
        } else if matches!(m, "ap" | "ap-bridge" | "bridge" | "wds-slave") {
            Some(Self::AccessPoint)
        } else {
            None
        }
    }
}

impl Registration {
    /// A registration with only the interface and MAC; every measurement absent.
    pub fn new(interface: impl Into<String>, mac: MacAddr) -> Self {
        Self {
            interface: interface.into(),
            mac,
            signal_dbm: None,
            tx_signal_dbm: None,
            tx_ccq: None,
            tx_rate: None,
            rx_rate: None,
            uptime_secs: None,
            distance_m: None,
            last_ip: None,
            tx_bytes: None,
            rx_bytes: None,
        }
    }
}

impl DeviceReport {
    /// The part of the registration table that lists this device's clients: only an access
    /// point's table does (a station's lists the AP it is connected to). Rows of radios whose
    /// role is `Station` are left out, and a device whose radios are all stations has no such
    /// table. Radios of unknown role (agents that predate roles) count as access points.
    pub fn access_point_registrations(&self) -> Option<Vec<Registration>> {
        let regs = self.registrations.as_ref()?;
        let rf = self.rf.as_deref().unwrap_or_default();
        let station = |iface: &str| {
            rf.iter()
                .any(|s| s.interface == iface && s.role == Some(RadioRole::Station))
        };
        if !rf.is_empty() && rf.iter().all(|s| s.role == Some(RadioRole::Station)) {
            return None;
        }
        Some(regs.iter().filter(|g| !station(&g.interface)).cloned().collect())
    }
}

impl Batch {
    /// Builds a batch in the current schema.
    pub fn new(
        agent_id: AgentId,
        idempotency_key: impl Into<String>,
        sent_at: DateTime<Utc>,
        reports: Vec<DeviceReport>,
    ) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            agent_id,
            idempotency_key: idempotency_key.into(),
            sent_at,
            reports,
            spool_dropped: 0,
        }
    }

    /// Decodes and validates a JSON batch. The schema version is checked before the body, so a
    /// newer agent gets "unsupported schema", not a confusing field error.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TelemetryError> {
        #[derive(Deserialize)]
        struct Probe {
            schema: Option<u16>,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| TelemetryError::Malformed(e.to_string()))?;
        match probe.schema {
            None => return Err(TelemetryError::Malformed("missing field `schema`".into())),
            Some(v) if !(MIN_SUPPORTED_SCHEMA..=SCHEMA_VERSION).contains(&v) => {
                return Err(TelemetryError::UnsupportedSchema { found: v });
            }
            Some(_) => {}
        }
        let batch: Batch = serde_json::from_slice(bytes).map_err(|e| TelemetryError::Malformed(e.to_string()))?;
        batch.validate()?;
        Ok(batch)
    }

    /// Encodes as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("telemetry types always serialise")
    }

    /// Checks the invariants a receiver relies on: a non-empty idempotency key of sane length,
    /// bounded sizes, and sequence numbers that strictly increase per device within the batch.
    pub fn validate(&self) -> Result<(), TelemetryError> {
        let invalid = |m: String| Err(TelemetryError::Invalid(m));
        if !(MIN_SUPPORTED_SCHEMA..=SCHEMA_VERSION).contains(&self.schema) {
            return Err(TelemetryError::UnsupportedSchema { found: self.schema });
        }
        let key = self.idempotency_key.trim();
        if key.is_empty() || key.len() > 128 {
            return invalid("idempotency_key must be 1..=128 characters".into());
        }
        if self.reports.len() > MAX_REPORTS_PER_BATCH {
            return invalid(format!(
                "{} reports exceed the limit of {MAX_REPORTS_PER_BATCH}",
                self.reports.len()
            ));
        }
        let mut last_seq: HashMap<DeviceId, u64> = HashMap::new();
        for (i, r) in self.reports.iter().enumerate() {
            if let Some(prev) = last_seq.insert(r.device_id, r.sequence)
                && r.sequence <= prev
            {
                return invalid(format!(
                    "report {i}: sequence {} for device {} does not increase (previous {prev})",
                    r.sequence, r.device_id
                ));
            }
            if let Some(regs) = &r.registrations
                && regs.len() > MAX_REGISTRATIONS_PER_REPORT
            {
                return invalid(format!(
                    "report {i}: {} registrations exceed the limit of {MAX_REGISTRATIONS_PER_REPORT}",
                    regs.len()
                ));
            }
            if r.status != PollStatus::Online
                && (r.registrations.is_some() || r.interfaces.is_some() || r.resources.is_some())
            {
                return invalid(format!(
                    "report {i}: device {} is not online but carries collected data",
                    r.device_id
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn radio_roles_come_from_both_mode_spellings() {
        assert_eq!(RadioRole::from_mode("ap-bridge"), Some(RadioRole::AccessPoint));
        assert_eq!(RadioRole::from_mode("ap"), Some(RadioRole::AccessPoint));
        assert_eq!(RadioRole::from_mode("station-bridge"), Some(RadioRole::Station));
        assert_eq!(RadioRole::from_mode("station"), Some(RadioRole::Station));
        assert_eq!(RadioRole::from_mode("alignment-only"), None);
    }
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    fn report(device: u128, seq: u64) -> DeviceReport {
        DeviceReport {
            resources: Some(Resources {
                cpu_load: Some(12.0),
                free_memory: Some(25),
                total_memory: Some(100),
                ..Resources::default()
            }),
            registrations: Some(vec![]),
            ..DeviceReport::new(DeviceId::from_u128(device), seq, t(seq as i64 * 60), PollStatus::Online)
        }
    }

    #[test]
    fn batches_round_trip_and_keep_empty_registration_tables() {
        let batch = Batch::new(AgentId::from_u128(1), "k-1", t(0), vec![report(7, 1)]);
        let json = batch.to_json();
        let back = Batch::from_json(&json).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.reports[0].registrations, Some(vec![]));
        assert!(String::from_utf8(json).unwrap().contains("\"registrations\":[]"));
    }

    #[test]
    fn unsupported_schema_is_reported_before_field_errors() {
        let json = br#"{"schema": 99, "agent_id": 5}"#;
        assert_eq!(
            Batch::from_json(json),
            Err(TelemetryError::UnsupportedSchema { found: 99 })
        );
        assert!(matches!(Batch::from_json(b"{}"), Err(TelemetryError::Malformed(_))));
        assert!(matches!(
            Batch::from_json(b"not json"),
            Err(TelemetryError::Malformed(_))
        ));
    }

    #[test]
    fn invalid_batches_are_rejected_whole() {
        let mut b = Batch::new(AgentId::from_u128(1), "", t(0), vec![report(7, 1)]);
        assert!(matches!(b.validate(), Err(TelemetryError::Invalid(m)) if m.contains("idempotency")));
        b.idempotency_key = "k".into();
        b.reports.push(report(7, 1));
        assert!(matches!(b.validate(), Err(TelemetryError::Invalid(m)) if m.contains("does not increase")));
        b.reports[1].sequence = 2;
        assert_eq!(b.validate(), Ok(()));
        b.reports[1].status = PollStatus::Offline {
            reason: "timeout".into(),
        };
        assert!(matches!(b.validate(), Err(TelemetryError::Invalid(m)) if m.contains("not online")));
    }

    #[test]
    fn bad_macs_inside_a_batch_are_malformed() {
        let mut b = Batch::new(AgentId::from_u128(1), "k", t(0), vec![report(7, 1)]);
        b.reports[0].registrations = Some(vec![Registration {
            signal_dbm: Some(-60),
            ..Registration::new("wlan1", MacAddr::from_u64(1))
        }]);
        let json = String::from_utf8(b.to_json())
            .unwrap()
            .replace("00:00:00:00:00:01", "zz");
        assert!(matches!(Batch::from_json(json.as_bytes()), Err(TelemetryError::Malformed(m)) if m.contains("MAC")));
    }

    #[test]
    fn usage_percentages_are_rounded_and_guarded() {
        let r = Resources {
            free_memory: Some(1),
            total_memory: Some(3),
            free_hdd: Some(5),
            total_hdd: Some(0),
            ..Resources::default()
        };
        assert_eq!(r.memory_used_pct(), Some(66.7));
        assert_eq!(r.disk_used_pct(), None);
    }
}
