//! The device event log's domain: what changed about a device between two reports — its
//! reachability, a reboot (uptime went backwards), its RouterOS version. [`DeviceLog`] holds what
//! was last seen of a device and turns each newer report into [`DeviceChange`]s; older reports
//! (a backlog arriving out of order) change nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::telemetry::{DeviceReport, PollStatus};

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeviceChange {
    /// Reachability changed (`unknown`, `online`, `offline`, `auth_failed`, ...).
    Status {
        /// Before (`None`: never seen).
        from: Option<String>,
        /// After.
        to: String,
    },
    /// Uptime went backwards: the device restarted between the two reports.
    Reboot {
        /// Uptime before, seconds.
        uptime_before: u64,
        /// Uptime after, seconds.
        uptime_after: u64,
    },
    /// The RouterOS version changed (an upgrade or a downgrade).
    Version {
        /// Before.
        from: String,
        /// After.
        to: String,
    },
}

impl DeviceChange {
    /// The event kind: `status`, `reboot` or `version`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Status { .. } => "status",
            Self::Reboot { .. } => "reboot",
            Self::Version { .. } => "version",
        }
    }

    /// `(from, to)` as text.
    pub fn values(&self) -> (Option<String>, String) {
        match self {
            Self::Status { from, to } => (from.clone(), to.clone()),
            Self::Reboot {
                uptime_before,
                uptime_after,
            } => (Some(uptime_before.to_string()), uptime_after.to_string()),
            Self::Version { from, to } => (Some(from.clone()), to.clone()),
        }
    }

    /// What an operator reads, about the named device.
    pub fn message(&self, device: &str) -> String {
        match self {
            Self::Status { from: Some(from), to } => format!("{device} is {to} (was {from})"),
            Self::Status { from: None, to } => format!("{device} is {to}"),
            Self::Reboot {
                uptime_before,
                uptime_after,
            } => format!(
                "{device} restarted (uptime {} before, {} after)",
                human(*uptime_before),
                human(*uptime_after)
            ),
            Self::Version { from, to } => format!("{device} runs RouterOS {to} (was {from})"),
        }
    }
}

fn human(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else {
        format!("{m}m{}s", secs % 60)
    }
}

/// The stored name of a poll outcome.
pub const fn status_name(s: &PollStatus) -> &'static str {
    match s {
        PollStatus::Online => "online",
        PollStatus::Offline { .. } => "offline",
        PollStatus::AuthFailed { .. } => "auth_failed",
    }
}

/// What was last seen of a device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceLog {
    /// Status as stored (`unknown` before the first report).
    pub status: Option<String>,
    /// When the newest report so far was collected.
    pub last_seen: Option<DateTime<Utc>>,
    /// RouterOS version last reported.
    pub version: Option<String>,
    /// Uptime last reported.
    pub uptime_secs: Option<u64>,
}

impl DeviceLog {
    /// Takes in a report and returns what it changed; a report older than the newest seen
    /// changes nothing (and is not compared: uptimes out of order would look like reboots).
    pub fn observe(&mut self, r: &DeviceReport) -> Vec<DeviceChange> {
        if self.last_seen.is_some_and(|t| r.collected_at < t) {
            return Vec::new();
        }
        self.last_seen = Some(r.collected_at);
        let mut out = Vec::new();
        let status = status_name(&r.status);
        if self.status.as_deref() != Some(status) {
            out.push(DeviceChange::Status {
                from: self.status.clone(),
                to: status.to_owned(),
            });
            self.status = Some(status.to_owned());
        }
        if let Some(sys) = &r.system {
            if let (Some(before), Some(after)) = (self.uptime_secs, sys.uptime_secs)
                && after < before
            {
                out.push(DeviceChange::Reboot {
                    uptime_before: before,
                    uptime_after: after,
                });
            }
            if sys.uptime_secs.is_some() {
                self.uptime_secs = sys.uptime_secs;
            }
            let version = sys.routeros_version.trim();
            if !version.is_empty() {
                if let Some(before) = self.version.as_deref()
                    && before != version
                {
                    out.push(DeviceChange::Version {
                        from: before.to_owned(),
                        to: version.to_owned(),
                    });
                }
                self.version = Some(version.to_owned());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::DeviceId;
    use crate::telemetry::{SystemInfo, WirelessPackage};

    fn report(min: i64, status: PollStatus, uptime: Option<u64>, version: &str) -> DeviceReport {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap() + Duration::minutes(min);
        let mut r = DeviceReport::new(DeviceId::from_u128(1), min as u64, at, status);
        if matches!(r.status, PollStatus::Online) {
            r.system = Some(SystemInfo {
                routeros_version: version.into(),
                board_name: None,
                architecture: None,
                serial_number: None,
                firmware_version: None,
                uptime_secs: uptime,
                wireless_package: WirelessPackage::Wireless,
            });
        }
        r
    }

    fn offline() -> PollStatus {
        PollStatus::Offline {
            reason: "timeout".into(),
        }
    }

    #[test]
    fn status_reboot_and_version_changes_are_seen_once() {
        let mut log = DeviceLog {
            status: Some("unknown".into()),
            ..DeviceLog::default()
        };
        let first = log.observe(&report(0, PollStatus::Online, Some(86_400), "7.15"));
        assert_eq!(
            first,
            [DeviceChange::Status {
                from: Some("unknown".into()),
                to: "online".into()
            }]
        );
        assert!(
            log.observe(&report(1, PollStatus::Online, Some(86_460), "7.15"))
                .is_empty()
        );
        assert_eq!(
            log.observe(&report(2, offline(), None, "")),
            [DeviceChange::Status {
                from: Some("online".into()),
                to: "offline".into()
            }]
        );
        let back = log.observe(&report(5, PollStatus::Online, Some(90), "7.16"));
        assert_eq!(
            back.iter().map(DeviceChange::kind).collect::<Vec<_>>(),
            ["status", "reboot", "version"]
        );
        assert_eq!(
            back[1].message("ap-1"),
            "ap-1 restarted (uptime 1d0h before, 1m30s after)"
        );
        assert_eq!(back[2].message("ap-1"), "ap-1 runs RouterOS 7.16 (was 7.15)");
        assert_eq!(back[0].values(), (Some("offline".into()), "online".into()));
    }

    #[test]
    fn an_older_report_changes_nothing() {
        let mut log = DeviceLog::default();
        log.observe(&report(10, PollStatus::Online, Some(1_000), "7.16"));
        assert!(log.observe(&report(3, offline(), None, "")).is_empty());
        assert!(
            log.observe(&report(4, PollStatus::Online, Some(500), "7.15"))
                .is_empty()
        );
        assert_eq!(log.status.as_deref(), Some("online"));
        assert_eq!(log.uptime_secs, Some(1_000));
    }
}
