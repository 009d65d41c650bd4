//! Notifications: alerts sent to the tenant's channels — signed webhooks, Slack-compatible
//! webhooks and e-mail — with retries and a delivery log.
//!
//! One replica at a time (the `notifications` lease) reads each tenant's event stream (the
//! outbox behind SSE) after its own cursor. A firing alert becomes one delivery per channel its
//! rule links, or per fallback channel when the rule links none; a resolution goes to the
//! channels whose last notice for that alert was its firing ([`tod_core::notify`]). Device alerts
//! that fire together are one incident: a channel hears of it once, and of its end once. Deliveries
//! and the new cursor are committed together, so each event is planned once. Due deliveries are
//! then sent; a failure is retried with backoff (or as the receiver's `Retry-After` asks) and
//! given up after [`tod_core::notify::MAX_ATTEMPTS`], and the delivery log keeps the last status
//! and error. A replica that dies mid-send leaves the delivery pending, so it may be sent twice:
//! `X-TOD-Delivery` lets a receiver drop the repeat.
//!
//! Webhook requests carry `X-TOD-Timestamp` (Unix seconds) and, when the channel has a secret,
//! `X-TOD-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tod_core::TenantId;
use tod_core::notify::{Attempt, ChannelKind, Incoming, Notice, NoticeStatus, Verdict, verdict};
use uuid::Uuid;

use crate::store::{AttemptRecord, ChannelRecord, NewDelivery, Routing, Store, StoreError};
use crate::vault::Vault;

/// The vault purpose of channel secrets.
pub const SECRET_PURPOSE: &str = "notification_channel";

/// How long one delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Stream events read per tenant per step.
const BATCH: i64 = 500;
/// Deliveries sent per pass.
const SEND_BATCH: i64 = 200;
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 8;

/// How an e-mail channel reaches its SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct EmailSettings {
    /// SMTP host.
    pub smtp_host: String,
    /// SMTP port.
    pub smtp_port: u16,
    /// SMTP user (with the sealed password), if the server wants a login.
    #[serde(default)]
    pub smtp_user: Option<String>,
    /// `none` (plain, for a relay on the same host), `starttls` or `tls` (implicit TLS).
    pub tls: String,
    /// Sender address.
    pub from_address: String,
    /// Recipients.
    pub to_addresses: Vec<String>,
}

/// How one attempt went, with what the delivery log keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The outcome.
    pub attempt: Attempt,
    /// The HTTP status or SMTP reply code.
    pub status: Option<u16>,
    /// What went wrong.
    pub error: Option<String>,
}

impl Sent {
    fn failed(permanent: bool, error: String) -> Self {
        Self {
            attempt: if permanent {
                Attempt::Permanent
            } else {
                Attempt::Transient { retry_after: None }
            },
            status: None,
            error: Some(error),
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Deliveries recorded from new events.
    pub planned: usize,
    /// Delivered.
    pub delivered: usize,
    /// Failed and to be retried.
    pub retrying: usize,
    /// Given up.
    pub failed: usize,
}

/// Sends notices to channels.
#[derive(Clone)]
pub struct Notifier {
    store: Arc<dyn Store>,
    vault: Option<Arc<Vault>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier over the store, opening channel secrets with `vault`.
    pub fn new(store: Arc<dyn Store>, vault: Option<Arc<Vault>>) -> Result<Self, String> {
        // reqwest and lettre are built without a crypto provider of their own: use ring, as the
        // rest of the server does. Another part of the process may have installed it already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tod-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { store, vault, http })
    }

    /// One pass at `now`: plans the deliveries of new events, then sends those that are due.
    pub async fn pass(&self, now: DateTime<Utc>) -> Result<PassReport, StoreError> {
        let mut report = PassReport {
            planned: self.plan(now).await?,
            ..PassReport::default()
        };
        let due = self.store.due_deliveries(now, SEND_BATCH).await?;
        let mut flights = tokio::task::JoinSet::new();
        let mut queue = due.into_iter();
        loop {
            while flights.len() < IN_FLIGHT {
                let Some(d) = queue.next() else { break };
                let me = self.clone();
                flights.spawn(async move {
                    let sent = match serde_json::from_str::<Notice>(&d.notice) {
                        Ok(notice) => me.send(&d.channel, &notice, d.id, now).await,
                        Err(e) => Sent::failed(true, format!("unreadable notice: {e}")),
                    };
                    (d, sent)
                });
            }
            let Some(done) = flights.join_next().await else { break };
            let Ok((d, sent)) = done else { continue };
            let attempts = d.attempts.saturating_add(1);
            let v = verdict(sent.attempt, u32::try_from(attempts).unwrap_or(u32::MAX));
            let (state, next) = match v {
                Verdict::Delivered => ("delivered", now),
                Verdict::RetryIn(wait) => (
                    "pending",
                    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1)),
                ),
                Verdict::GiveUp => ("failed", now),
            };
            match v {
                Verdict::Delivered => report.delivered += 1,
                Verdict::RetryIn(_) => report.retrying += 1,
                Verdict::GiveUp => report.failed += 1,
            }
            if v != Verdict::Delivered {
                tracing::info!(delivery = %d.id, channel = %d.channel.name, attempts, error = ?sent.error, status = ?sent.status, state, "notification not delivered");
            }
            let record = AttemptRecord {
                state,
                attempts,
                next_attempt_at: next,
                status: sent.status.map(i32::from),
                error: sent.error.map(|e| e.chars().take(500).collect()),
                at: now,
            };
            self.store.record_attempt(d.channel.tenant, d.id, &record).await?;
        }
        Ok(report)
    }

    /// Turns new stream events into deliveries; returns how many.
    async fn plan(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut planned_total = 0;
        for (tenant, mut cursor, head) in self.store.notify_pending().await? {
            let routing = self.store.routing(tenant).await?;
            while cursor < head {
                let events = self.store.stream_after(tenant, cursor, BATCH).await?;
                let Some(last) = events.last().map(|e| e.seq) else {
                    break;
                };
                let mut planner = Planner::new(tenant, &routing);
                for e in &events {
                    let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null);
                    if let Some(incoming) = Incoming::read(&e.kind, &data, e.at) {
                        planner.take(self.store.as_ref(), e.seq, &e.kind, incoming).await?;
                    }
                }
                planned_total += planner.planned.len();
                self.store.plan_deliveries(tenant, &planner.planned, last, now).await?;
                cursor = last;
            }
        }
        Ok(planned_total)
    }

    /// Sends one notice to one channel (also used by the channel test).
    pub async fn send(&self, channel: &ChannelRecord, notice: &Notice, delivery: Uuid, now: DateTime<Utc>) -> Sent {
        let secret = match (&channel.sealed, &self.vault) {
            (None, _) => None,
            (Some(blob), Some(v)) => match v.open_secret(channel.tenant, SECRET_PURPOSE, channel.id, blob) {
                Ok(s) => Some(s),
                Err(e) => return Sent::failed(true, format!("channel secret: {e}")),
            },
            (Some(_), None) => return Sent::failed(false, "channel secret: no vault key (TOD_MASTER_KEY)".into()),
        };
        match channel.kind {
            ChannelKind::Webhook => {
                let Some(url) = channel.settings.get("url").and_then(|u| u.as_str()) else {
                    return Sent::failed(true, "webhook without url".into());
                };
                let body = notice.webhook_body().to_string();
                self.post(url, body, notice, delivery, now, secret.as_deref()).await
            }
            ChannelKind::Slack => {
                let Some(url) = secret.as_deref().and_then(|s| std::str::from_utf8(s).ok()) else {
                    return Sent::failed(true, "Slack channel without its webhook URL".into());
                };
                let body = notice.slack_body().to_string();
                self.post(url, body, notice, delivery, now, None).await
            }
            ChannelKind::Email => match serde_json::from_value::<EmailSettings>(channel.settings.clone()) {
                Ok(settings) => {
                    let password = secret.map(|s| String::from_utf8_lossy(&s).into_owned());
                    email(&settings, password, notice, delivery).await
                }
                Err(e) => Sent::failed(true, format!("e-mail settings: {e}")),
            },
        }
    }

    async fn post(
        &self,
        url: &str,
        body: String,
        notice: &Notice,
        delivery: Uuid,
        now: DateTime<Utc>,
        secret: Option<&[u8]>,
    ) -> Sent {
        let timestamp = now.timestamp().to_string();
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-tod-event", notice.event.as_str())
            .header("x-tod-delivery", delivery.to_string())
            .header("x-tod-timestamp", timestamp.as_str());
        if let Some(key) = secret {
            req = req.header("x-tod-signature", signature(key, &timestamp, body.as_bytes()));
        }
        match req.body(body).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, now));
                let attempt = Attempt::of_http(status, retry_after);
                let error = (attempt != Attempt::Delivered).then(|| format!("HTTP {status}"));
                Sent {
                    attempt,
                    status: Some(status),
                    error,
                }
            }
            Err(e) => Sent::failed(false, error_chain(&e)),
        }
    }
}

/// The signature header's value: `sha256=` and the hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub fn signature(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v.trim()).ok()?.with_timezone(&Utc);
    (at - now).to_std().ok()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

async fn email(settings: &EmailSettings, password: Option<String>, notice: &Notice, delivery: Uuid) -> Sent {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let mut message = Message::builder()
        .subject(notice.email_subject())
        .message_id(Some(format!("<{delivery}@tod>")))
        .header(ContentType::TEXT_PLAIN);
    match settings.from_address.parse() {
        Ok(from) => message = message.from(from),
        Err(e) => return Sent::failed(true, format!("from_address: {e}")),
    }
    for to in &settings.to_addresses {
        match to.parse() {
            Ok(to) => message = message.to(to),
            Err(e) => return Sent::failed(true, format!("to_addresses: {to}: {e}")),
        }
    }
    let message = match message.body(notice.email_text()) {
        Ok(m) => m,
        Err(e) => return Sent::failed(true, format!("message: {e}")),
    };
    let host = settings.smtp_host.as_str();
    let builder = match settings.tls.as_str() {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
        _ => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)),
    };
    let mut builder = match builder {
        Ok(b) => b.port(settings.smtp_port).timeout(Some(ATTEMPT_TIMEOUT)),
        Err(e) => return Sent::failed(true, format!("SMTP {host}: {e}")),
    };
    if let Some(user) = &settings.smtp_user {
        builder = builder.credentials(Credentials::new(user.clone(), password.unwrap_or_default()));
    }
    match builder.build().send(message).await {
        Ok(resp) => Sent {
            attempt: Attempt::Delivered,
            status: Some(u16::from(resp.code())),
            error: None,
        },
        Err(e) => Sent {
            attempt: if e.is_permanent() {
                Attempt::Permanent
            } else {
                Attempt::Transient { retry_after: None }
            },
            status: e.status().map(u16::from),
            error: Some(error_chain(&e)),
        },
    }
}

/// Plans one batch of a tenant's events.
struct Planner<'a> {
    tenant: TenantId,
    routing: &'a Routing,
    enabled: HashSet<Uuid>,
    /// Per (channel, alert): the firing last sent there, or `None` when its last notice was a
    /// resolution. Filled as the batch is planned and, for an alert the batch resolves, from the
    /// delivery log.
    last: HashMap<(Uuid, String), Option<Notice>>,
    looked_up: HashSet<String>,
    planned: Vec<NewDelivery>,
}

impl<'a> Planner<'a> {
    fn new(tenant: TenantId, routing: &'a Routing) -> Self {
        Self {
            tenant,
            routing,
            enabled: routing.channels.iter().map(|(id, _)| *id).collect(),
            last: HashMap::new(),
            looked_up: HashSet::new(),
            planned: Vec::new(),
        }
    }

    /// The channels a firing goes to: its rule's (the enabled ones), or the fallback channels
    /// when the rule links none or there is no rule.
    fn targets(&self, notice: &Notice) -> Vec<Uuid> {
        let links = if notice.event.starts_with("site_alert") {
            &self.routing.site_links
        } else {
            &self.routing.device_links
        };
        let linked: Vec<Uuid> = notice.rule_id.map_or_else(Vec::new, |rule| {
            links.iter().filter(|(r, _)| *r == rule).map(|(_, c)| *c).collect()
        });
        if linked.is_empty() {
            self.routing
                .channels
                .iter()
                .filter(|(_, fallback)| *fallback)
                .map(|(id, _)| *id)
                .collect()
        } else {
            linked.into_iter().filter(|c| self.enabled.contains(c)).collect()
        }
    }

    /// Loads what each channel was last told about `key`, once per pass.
    async fn recall(&mut self, store: &dyn Store, key: &str) -> Result<(), StoreError> {
        if self.looked_up.insert(key.to_owned()) {
            for l in store.last_notices(self.tenant, key).await? {
                let fired = serde_json::from_str::<Notice>(&l.notice)
                    .ok()
                    .filter(|n| n.status == NoticeStatus::Firing);
                self.last.entry((l.channel_id, key.to_owned())).or_insert(fired);
            }
        }
        Ok(())
    }

    async fn take(&mut self, store: &dyn Store, seq: i64, kind: &str, incoming: Incoming) -> Result<(), StoreError> {
        match incoming {
            Incoming::Fired(notice) => {
                for channel in self.targets(&notice) {
                    self.push(channel, seq, kind, &notice);
                    self.last.insert((channel, notice.key.clone()), Some((*notice).clone()));
                }
            }
            Incoming::Joined(notice) => {
                // Each channel hears of an incident once.
                self.recall(store, &notice.key).await?;
                for channel in self.targets(&notice) {
                    let slot = (channel, notice.key.clone());
                    if matches!(self.last.get(&slot), Some(Some(_))) {
                        continue;
                    }
                    self.push(channel, seq, kind, &notice);
                    self.last.insert(slot, Some((*notice).clone()));
                }
            }
            Incoming::Resolved { key, at, reason } => {
                self.recall(store, &key).await?;
                let mut ends = Vec::new();
                for ((channel, k), last) in &mut self.last {
                    if *k == key
                        && let Some(fired) = last.take()
                    {
                        ends.push((*channel, fired.resolved(at, reason.clone())));
                    }
                }
                ends.sort_by_key(|(c, _)| *c);
                for (channel, notice) in ends {
                    self.push(channel, seq, kind, &notice);
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, channel: Uuid, seq: i64, kind: &str, notice: &Notice) {
        self.planned.push(NewDelivery {
            channel,
            event_seq: seq,
            event: kind.to_owned(),
            key: notice.key.clone(),
            notice: serde_json::to_value(notice).unwrap_or_default(),
        });
    }
}

/// The dispatcher: a pass every `every` by whichever replica holds the `notifications` lease.
pub fn spawn(notifier: Notifier, every: Duration) -> tokio::task::JoinHandle<()> {
    let me = Uuid::new_v4();
    let ttl = chrono::Duration::from_std(every * 10).unwrap_or(chrono::Duration::seconds(30));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let now = Utc::now();
            match notifier.store.try_lease("notifications", me, now, ttl).await {
                Ok(true) => match notifier.pass(now).await {
                    Ok(r) if r != PassReport::default() => tracing::info!(
                        planned = r.planned,
                        delivered = r.delivered,
                        retrying = r.retrying,
                        failed = r.failed,
                        "notifications"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "notification pass failed"),
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "notifications lease"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_hmac_of_timestamp_dot_body() {
        // Computed independently with Python's hmac module.
        assert_eq!(
            signature(b"Jefe", "1764302400", br#"{"status":"firing"}"#),
            "sha256=497a4638f8c446ac279576c0d607df6c108efb9bcc96f98e1e194f574cc10918"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T04:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sat, 28 Nov 2026 04:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(retry_after("Sat, 28 Nov 2026 03:00:00 GMT", now), None, "past");
        assert_eq!(retry_after("soon", now), None);
    }
}
