//! Alert notifications, without the sending: which events of the live stream become notices, how
//! an alert's notices are keyed so its "resolved" goes exactly where its "firing" went, what a
//! webhook, Slack or e-mail message says, and when a failed delivery is tried again.
//!
//! The server reads its per-tenant event stream (`alert.fired`, `alert.resolved`,
//! `site_alert.raised`, `site_alert.resolved`) with [`Incoming::read`]; a firing becomes a
//! [`Notice`] for the channels of its rule, and a resolution is sent to the channels whose last
//! notice for the same [`Notice::key`] was a firing ([`Notice::resolved`]). An alert that fired
//! while already flapping is not announced (as in the reference), and so neither is its end.
//!
//! Device alerts of one rule at one site that fire together (a mass reboot, rain over a tower)
//! are one incident, and one incident is one notice: its first alert is announced, keyed by the
//! incident; an alert that joins it later is announced only to a channel that has not heard of
//! the incident ([`Incoming::Joined`]); and its end is announced once, when its last open alert
//! resolves. An operator is paged once per cause, not once per radio.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::alerts::Severity;

/// Where a channel delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A JSON `POST`, signed with HMAC-SHA256 when the channel has a secret.
    Webhook,
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
    Slack,
    /// E-mail over SMTP.
    Email,
}

impl ChannelKind {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Email => "email",
        }
    }
}

impl std::str::FromStr for ChannelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "webhook" => Ok(Self::Webhook),
            "slack" => Ok(Self::Slack),
            "email" => Ok(Self::Email),
            _ => Err("channel_type: must be one of: webhook, slack, email".into()),
        }
    }
}

/// Whether a notice announces an alert or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    /// The alert fired (a device alert) or was raised (a site alert).
    Firing,
    /// It ended.
    Resolved,
}

impl NoticeStatus {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert notice, as every channel kind renders it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The stream event it came from (`alert.fired`, `site_alert.resolved`, …).
    pub event: String,
    /// Firing or resolved.
    pub status: NoticeStatus,
    /// The alert's severity.
    pub severity: Severity,
    /// Identifies the alert across its firing and its resolution.
    pub key: String,
    /// The rule (a device rule, a site rule or a plugin assignment), when there is one.
    pub rule_id: Option<Uuid>,
    /// The device, when the alert is about one.
    pub device_id: Option<Uuid>,
    /// Its name.
    pub hostname: Option<String>,
    /// The site, for site alerts.
    pub site_id: Option<Uuid>,
    /// The site alert's kind (`device_offline_percent`, `agent_offline`, `plugin`, …).
    pub kind: Option<String>,
    /// The device rule's metric.
    pub metric: Option<String>,
    /// The measured value.
    pub value: Option<f64>,
    /// The rule's threshold.
    pub threshold: Option<f64>,
    /// What happened, in words.
    pub message: String,
    /// Why it resolved (`cleared`, `manual`, `rule_disabled`, …).
    pub reason: Option<String>,
    /// The incident a device alert opened (the alerts that join it are not announced).
    #[serde(default)]
    pub incident_id: Option<Uuid>,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// A stream event, read for notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// An alert fired: notify the channels of its rule.
    Fired(Box<Notice>),
    /// An alert fired and joined an incident already open: notify only the channels of its rule
    /// that have not heard of the incident (its first alert fired before they existed, say).
    Joined(Box<Notice>),
    /// An alert ended: notify where its firing was sent.
    Resolved {
        /// The alert ([`Notice::key`]).
        key: String,
        /// When.
        at: DateTime<Utc>,
        /// Why, when known.
        reason: Option<String>,
    },
}

fn uuid_at(data: &Value, field: &str) -> Option<Uuid> {
    data.get(field)?.as_str()?.parse().ok()
}

fn text_at(data: &Value, field: &str) -> Option<String> {
    data.get(field)?.as_str().map(str::to_owned)
}

/// The event's severity; warning when it names none (or none known).
fn severity_at(data: &Value) -> Severity {
    data.get("severity")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(Severity::Warning)
}

fn part(id: Option<Uuid>) -> String {
    id.map_or_else(|| "-".to_owned(), |u| u.to_string())
}

impl Incoming {
    /// Reads one event of the tenant's stream. `None` for events that are not alerts, for an
    /// alert that fired while already flapping, and for bodies that lack what identifies the alert.
    pub fn read(kind: &str, data: &Value, at: DateTime<Utc>) -> Option<Self> {
        match kind {
            "alert.fired" => {
                if data.get("status").and_then(Value::as_str) == Some("flapping") {
                    return None;
                }
                let (device, rule) = (uuid_at(data, "device_id")?, uuid_at(data, "rule_id")?);
                let incident = uuid_at(data, "incident_id");
                let joined = incident.is_some() && data.get("joined").and_then(Value::as_bool) == Some(true);
                let notice = Box::new(Notice {
                    event: kind.into(),
                    status: NoticeStatus::Firing,
                    severity: severity_at(data),
                    key: alert_key(device, rule, incident),
                    rule_id: Some(rule),
                    device_id: Some(device),
                    hostname: text_at(data, "hostname"),
                    site_id: None,
                    kind: None,
                    metric: text_at(data, "metric"),
                    value: data.get("value").and_then(Value::as_f64),
                    threshold: data.get("threshold").and_then(Value::as_f64),
                    message: text_at(data, "message").unwrap_or_default(),
                    reason: None,
                    incident_id: incident,
                    at,
                });
                Some(if joined {
                    Self::Joined(notice)
                } else {
                    Self::Fired(notice)
                })
            }
            "alert.resolved" => {
                // An incident ends with its last open alert.
                if data.get("incident_open").and_then(Value::as_bool) == Some(true) {
                    return None;
                }
                Some(Self::Resolved {
                    key: alert_key(
                        uuid_at(data, "device_id")?,
                        uuid_at(data, "rule_id")?,
                        uuid_at(data, "incident_id"),
                    ),
                    at,
                    reason: text_at(data, "reason"),
                })
            }
            "site_alert.raised" => {
                let key = site_key(data)?;
                Some(Self::Fired(Box::new(Notice {
                    event: kind.into(),
                    status: NoticeStatus::Firing,
                    severity: severity_at(data),
                    key,
                    rule_id: uuid_at(data, "rule_id"),
                    device_id: uuid_at(data, "device_id"),
                    hostname: text_at(data, "hostname"),
                    site_id: uuid_at(data, "site_id"),
                    kind: text_at(data, "kind"),
                    metric: None,
                    value: None,
                    threshold: None,
                    message: text_at(data, "message").unwrap_or_default(),
                    reason: None,
                    incident_id: None,
                    at,
                })))
            }
            "site_alert.resolved" => Some(Self::Resolved {
                key: site_key(data)?,
                at,
                reason: text_at(data, "reason"),
            }),
            _ => None,
        }
    }
}

/// A device alert's notices are its incident's, when it belongs to one (events written before
/// incidents were recorded name none, and are the alert's own).
fn alert_key(device: Uuid, rule: Uuid, incident: Option<Uuid>) -> String {
    match incident {
        Some(incident) => format!("incident:{incident}"),
        None => format!("alert:{device}:{rule}"),
    }
}

/// A site alert is its rule's finding about one subject; one without a rule (an agent gone
/// silent, a link's signal trend) is its kind at the site, about its subject.
fn site_key(data: &Value) -> Option<String> {
    let site = uuid_at(data, "site_id")?;
    let subject = format!(
        "{}:{}",
        part(uuid_at(data, "device_id")),
        part(uuid_at(data, "ap_device_id"))
    );
    Some(match uuid_at(data, "rule_id") {
        Some(rule) => format!("site:{rule}:{site}:{subject}"),
        None => format!("site:{}:{site}:{subject}", data.get("kind")?.as_str()?),
    })
}

impl Notice {
    /// The notice that ends this (firing) one.
    pub fn resolved(&self, at: DateTime<Utc>, reason: Option<String>) -> Notice {
        Notice {
            event: if self.event.starts_with("site_alert") {
                "site_alert.resolved".into()
            } else {
                "alert.resolved".into()
            },
            status: NoticeStatus::Resolved,
            message: format!("Resolved: {}", self.message),
            reason,
            at,
            ..self.clone()
        }
    }

    /// A notice for trying a channel out (`POST …/channels/{id}/test`).
    pub fn test(at: DateTime<Utc>) -> Notice {
        Notice {
            event: "test".into(),
            status: NoticeStatus::Firing,
            severity: Severity::Info,
            key: "test".into(),
            rule_id: None,
            device_id: None,
            hostname: None,
            site_id: None,
            kind: None,
            metric: None,
            value: None,
            threshold: None,
            message: "Test notification from TOD: this channel works.".into(),
            reason: None,
            incident_id: None,
            at,
        }
    }

    /// What it is about: the device's name, else "site {id}", else "TOD".
    pub fn about(&self) -> String {
        match (&self.hostname, self.device_id, self.site_id) {
            (Some(h), _, _) if !h.is_empty() => h.clone(),
            (_, Some(d), _) => format!("device {d}"),
            (_, None, Some(s)) => format!("site {s}"),
            _ => "TOD".into(),
        }
    }

    /// One line: `[CRITICAL] ap-north-1: CPU high: cpu_load = 97 (threshold: gt 90)`, or
    /// `[RESOLVED] …` for a resolution.
    pub fn line(&self) -> String {
        let tag = match self.status {
            NoticeStatus::Firing => self.severity.as_str().to_uppercase(),
            NoticeStatus::Resolved => "RESOLVED".into(),
        };
        format!("[{tag}] {}: {}", self.about(), self.message)
    }

    /// The generic webhook's JSON body (the reference's fields, plus ids and the event name).
    pub fn webhook_body(&self) -> Value {
        json!({
            "event": self.event,
            "status": self.status.as_str(),
            "severity": self.severity.as_str(),
            "alert_name": self.message,
            "message": self.message,
            "device": self.hostname,
            "device_id": self.device_id,
            "site_id": self.site_id,
            "rule_id": self.rule_id,
            "kind": self.kind,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "reason": self.reason,
            "incident_id": self.incident_id,
            "timestamp": self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "text": self.line(),
        })
    }

    /// A Slack-compatible incoming-webhook body: a fallback `text` and one coloured attachment
    /// with a header, the fields that are known and the message (user text escaped for mrkdwn).
    pub fn slack_body(&self) -> Value {
        let color = match (self.status, self.severity) {
            (NoticeStatus::Resolved, _) => "#16a34a",
            (_, Severity::Critical) => "#dc2626",
            (_, Severity::Warning) => "#f59e0b",
            (_, Severity::Info) => "#3b82f6",
        };
        let mut fields = vec![field("Device", &self.about())];
        if let Some(m) = &self.metric {
            fields.push(field("Metric", m));
        }
        if let Some(v) = self.value {
            fields.push(field("Value", &v.to_string()));
        }
        if let Some(t) = self.threshold {
            fields.push(field("Threshold", &t.to_string()));
        }
        if let Some(k) = &self.kind {
            fields.push(field("Kind", k));
        }
        json!({
            "text": slack_escape(&self.line()),
            "attachments": [{
                "color": color,
                "blocks": [
                    { "type": "header", "text": { "type": "plain_text",
                        "text": format!("[{}] {}", self.severity.as_str().to_uppercase(), self.status.as_str().to_uppercase()) } },
                    { "type": "section", "fields": fields },
                    { "type": "section", "text": { "type": "mrkdwn", "text": slack_escape(&self.message) } },
                    { "type": "context", "elements": [{ "type": "mrkdwn",
                        "text": format!("TOD Alert System · {}", self.at.format("%Y-%m-%d %H:%M:%S UTC")) }] },
                ],
            }],
        })
    }

    /// The e-mail subject: `[TOD FIRING] {message} — {device}`.
    pub fn email_subject(&self) -> String {
        let subject = format!(
            "[TOD {}] {} — {}",
            self.status.as_str().to_uppercase(),
            self.message,
            self.about()
        );
        // Header lines stay short and single; the body carries the rest.
        let one_line: String = subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        one_line.chars().take(200).collect()
    }

    /// The e-mail's plain-text body.
    pub fn email_text(&self) -> String {
        let mut lines = vec![
            self.line(),
            String::new(),
            format!("Status:    {}", self.status.as_str()),
            format!("Severity:  {}", self.severity.as_str()),
            format!("Device:    {}", self.about()),
        ];
        for (name, value) in [
            ("Metric:    ", self.metric.clone()),
            ("Value:     ", self.value.map(|v| v.to_string())),
            ("Threshold: ", self.threshold.map(|t| t.to_string())),
            ("Kind:      ", self.kind.clone()),
            ("Reason:    ", self.reason.clone()),
        ] {
            if let Some(v) = value {
                lines.push(format!("{name}{v}"));
            }
        }
        lines.push(format!("Time:      {}", self.at.format("%Y-%m-%d %H:%M:%S UTC")));
        lines.push(String::new());
        lines.push("— TOD Alert System".into());
        lines.join("\n")
    }
}

fn field(name: &str, value: &str) -> Value {
    json!({ "type": "mrkdwn", "text": format!("*{name}*\n{}", slack_escape(value)) })
}

/// Slack's mrkdwn control characters, escaped as Slack documents.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// How one delivery attempt went, as the sender saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Taken.
    Delivered,
    /// Not now: a timeout, a refused connection, a 5xx, a 429 (with its `Retry-After`).
    Transient {
        /// What the receiver asked for, if anything.
        retry_after: Option<Duration>,
    },
    /// Never: the receiver refused the request itself (most 4xx, a permanent SMTP reply).
    Permanent,
}

impl Attempt {
    /// An HTTP answer: 2xx delivered; 408, 425, 429 and 5xx transient; everything else (other
    /// 4xx, an unfollowed 3xx) permanent.
    pub fn of_http(status: u16, retry_after: Option<Duration>) -> Self {
        match status {
            200..=299 => Self::Delivered,
            408 | 425 | 429 | 500..=599 => Self::Transient { retry_after },
            _ => Self::Permanent,
        }
    }
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Done.
    Delivered,
    /// Try again after this long.
    RetryIn(Duration),
    /// Give up (the delivery log keeps the last error).
    GiveUp,
}

/// Attempts per delivery before it is given up: with [`retry_delay`]'s schedule, a little over
/// an hour of trying.
pub const MAX_ATTEMPTS: u32 = 8;

/// The wait after the `n`th failed attempt (from 1): 30 s doubling to at most an hour.
pub fn retry_delay(n: u32) -> Duration {
    let secs = 30u64.saturating_mul(1u64 << n.saturating_sub(1).min(20));
    Duration::from_secs(secs.min(3600))
}

/// The verdict after `attempts` attempts (counting this one) ended as `attempt`. A receiver's
/// `Retry-After` is followed when it is within an hour (longer is capped at an hour).
pub fn verdict(attempt: Attempt, attempts: u32) -> Verdict {
    match attempt {
        Attempt::Delivered => Verdict::Delivered,
        Attempt::Permanent => Verdict::GiveUp,
        Attempt::Transient { .. } if attempts >= MAX_ATTEMPTS => Verdict::GiveUp,
        Attempt::Transient { retry_after } => Verdict::RetryIn(retry_after.map_or_else(
            || retry_delay(attempts),
            |d| d.clamp(Duration::from_secs(1), Duration::from_secs(3600)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 4, 0, 0).unwrap()
    }

    #[test]
    fn device_alert_firing_and_resolution_share_a_key_and_flapping_fires_are_not_announced() {
        let (d, r) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let fired = json!({"device_id": d, "hostname": "cpe-7", "rule_id": r, "status": "firing",
            "severity": "critical", "metric": "cpu_load", "value": 97.0, "threshold": 90.0,
            "message": "CPU high: cpu_load = 97 (threshold: gt 90)"});
        let Some(Incoming::Fired(n)) = Incoming::read("alert.fired", &fired, at()) else {
            panic!("a firing alert is a notice")
        };
        assert_eq!(n.severity, Severity::Critical);
        assert_eq!(n.line(), "[CRITICAL] cpe-7: CPU high: cpu_load = 97 (threshold: gt 90)");
        let resolved = json!({"device_id": d, "hostname": "cpe-7", "rule_id": r, "reason": "cleared"});
        let Some(Incoming::Resolved { key, reason, .. }) = Incoming::read("alert.resolved", &resolved, at()) else {
            panic!("a resolution is read")
        };
        assert_eq!(key, n.key);
        assert_eq!(reason.as_deref(), Some("cleared"));
        let end = n.resolved(at(), reason);
        assert_eq!(end.status, NoticeStatus::Resolved);
        assert_eq!(end.event, "alert.resolved");
        assert!(end.line().starts_with("[RESOLVED] cpe-7: Resolved: CPU high"));

        let mut flapping = fired.clone();
        flapping["status"] = json!("flapping");
        assert_eq!(Incoming::read("alert.fired", &flapping, at()), None);
        assert_eq!(Incoming::read("device.status", &fired, at()), None, "not an alert");
        assert_eq!(
            Incoming::read("alert.fired", &json!({"rule_id": r}), at()),
            None,
            "no device"
        );
    }

    #[test]
    fn an_incident_is_announced_by_its_first_alert_and_ended_by_its_last() {
        let (r, incident) = (Uuid::from_u128(2), Uuid::from_u128(9));
        let fired = |device: u128, joined: bool| {
            json!({"device_id": Uuid::from_u128(device), "hostname": format!("cpe-{device}"), "rule_id": r,
                "status": "firing", "severity": "critical", "message": "Device offline",
                "incident_id": incident, "joined": joined})
        };
        let Some(Incoming::Fired(first)) = Incoming::read("alert.fired", &fired(1, false), at()) else {
            panic!("the incident's first alert is announced")
        };
        assert_eq!(first.key, format!("incident:{incident}"));
        assert_eq!(first.incident_id, Some(incident));
        assert_eq!(first.webhook_body()["incident_id"], json!(incident));
        let Some(Incoming::Joined(second)) = Incoming::read("alert.fired", &fired(2, true), at()) else {
            panic!("one that joins it is read as joining")
        };
        assert_eq!(second.key, first.key, "the same incident");
        let resolved = |device: u128, open: bool| {
            json!({"device_id": Uuid::from_u128(device), "rule_id": r, "reason": "cleared",
                "incident_id": incident, "incident_open": open})
        };
        assert_eq!(
            Incoming::read("alert.resolved", &resolved(1, true), at()),
            None,
            "the first resolving while another is open ends nothing"
        );
        let Some(Incoming::Resolved { key, .. }) = Incoming::read("alert.resolved", &resolved(2, false), at()) else {
            panic!("the last one ends the incident")
        };
        assert_eq!(key, first.key, "and its end goes where its firing went");
    }

    #[test]
    fn site_alerts_are_keyed_by_rule_and_subject_or_by_kind_when_ruleless() {
        let (s, r, d) = (Uuid::from_u128(3), Uuid::from_u128(4), Uuid::from_u128(5));
        let raised = json!({"event_id": Uuid::from_u128(9), "site_id": s, "rule_id": r, "kind": "signal_degradation",
            "device_id": d, "ap_device_id": null, "severity": "warning", "message": "link fading"});
        let resolved =
            json!({"site_id": s, "rule_id": r, "kind": "signal_degradation", "device_id": d, "ap_device_id": null});
        let Some(Incoming::Fired(n)) = Incoming::read("site_alert.raised", &raised, at()) else {
            panic!()
        };
        let Some(Incoming::Resolved { key, .. }) = Incoming::read("site_alert.resolved", &resolved, at()) else {
            panic!()
        };
        assert_eq!(n.key, key);
        assert_eq!(n.resolved(at(), None).event, "site_alert.resolved");
        // Another device of the same rule is another alert.
        let mut other = resolved.clone();
        other["device_id"] = json!(Uuid::from_u128(6));
        let Some(Incoming::Resolved { key: k2, .. }) = Incoming::read("site_alert.resolved", &other, at()) else {
            panic!()
        };
        assert_ne!(k2, n.key);
        // An agent going silent has no rule: its kind at the site identifies it.
        let a = json!({"event_id": Uuid::from_u128(7), "site_id": s, "kind": "agent_offline", "severity": "critical", "message": "silent"});
        let b = json!({"event_id": Uuid::from_u128(7), "site_id": s, "kind": "agent_offline"});
        let Some(Incoming::Fired(fa)) = Incoming::read("site_alert.raised", &a, at()) else {
            panic!()
        };
        let Some(Incoming::Resolved { key: kb, .. }) = Incoming::read("site_alert.resolved", &b, at()) else {
            panic!()
        };
        assert_eq!(fa.key, kb);
        assert_eq!(fa.about(), format!("site {s}"));
    }

    #[test]
    fn renderings_carry_the_facts_and_escape_user_text() {
        let mut n = Notice::test(at());
        n.hostname = Some("ap<1>&co".into());
        n.metric = Some("signal_strength".into());
        n.value = Some(-81.5);
        n.threshold = Some(-75.0);
        n.severity = Severity::Warning;
        n.message = "Signal <low>".into();
        let w = n.webhook_body();
        assert_eq!(w["status"], "firing");
        assert_eq!(w["value"], -81.5);
        assert_eq!(w["timestamp"], "2026-11-28T04:00:00Z");
        assert_eq!(w["text"], "[WARNING] ap<1>&co: Signal <low>");
        let s = n.slack_body().to_string();
        assert!(s.contains("#f59e0b"));
        assert!(s.contains("Signal &lt;low&gt;") && !s.contains("Signal <low>"), "{s}");
        assert!(s.contains("ap&lt;1&gt;&amp;co"));
        assert!(s.contains("*Threshold*\\n-75"));
        n.message = "two\nlines".into();
        assert_eq!(n.email_subject(), "[TOD FIRING] two lines — ap<1>&co");
        assert!(n.email_text().contains("Value:     -81.5"));
        assert!(!n.email_text().contains("Kind:"), "unknown fields are left out");
    }

    #[test]
    fn retries_back_off_honour_retry_after_and_give_up() {
        assert_eq!(Attempt::of_http(204, None), Attempt::Delivered);
        assert_eq!(Attempt::of_http(404, None), Attempt::Permanent);
        assert_eq!(Attempt::of_http(301, None), Attempt::Permanent);
        let t = Attempt::of_http(503, None);
        assert_eq!(t, Attempt::Transient { retry_after: None });
        assert_eq!(verdict(t, 1), Verdict::RetryIn(Duration::from_secs(30)));
        assert_eq!(verdict(t, 2), Verdict::RetryIn(Duration::from_secs(60)));
        assert_eq!(verdict(t, 7), Verdict::RetryIn(Duration::from_secs(1920)));
        assert_eq!(verdict(t, MAX_ATTEMPTS), Verdict::GiveUp);
        assert_eq!(retry_delay(40), Duration::from_secs(3600), "capped, no overflow");
        let slow = Attempt::of_http(429, Some(Duration::from_secs(120)));
        assert_eq!(verdict(slow, 1), Verdict::RetryIn(Duration::from_secs(120)));
        let huge = Attempt::of_http(429, Some(Duration::from_secs(86_400)));
        assert_eq!(verdict(huge, 1), Verdict::RetryIn(Duration::from_secs(3600)));
        assert_eq!(verdict(Attempt::Permanent, 1), Verdict::GiveUp);
        assert_eq!(verdict(Attempt::Delivered, 3), Verdict::Delivered);
        let total: u64 = (1..MAX_ATTEMPTS).map(|n| retry_delay(n).as_secs()).sum();
        assert!(
            (3600..=7200).contains(&total),
            "a little over an hour of trying: {total} s"
        );
    }
}
