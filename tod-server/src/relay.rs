//! The event relay: when NATS is configured, every tenant's event stream (the outbox behind SSE)
//! is published to JetStream as `{prefix}.{tenant}.{event}` — e.g.
//! `tod.events.<tenant>.alert.fired` — in order, each with `Nats-Msg-Id: {tenant}:{number}`, so
//! other systems (billing, ticketing, a NOC wall) can follow TOD without polling it. One replica
//! publishes at a time (a database lease); the published position is stored per tenant and only
//! advanced after JetStream acknowledged, and JetStream's duplicate window absorbs the replay of
//! a publish whose position was not yet stored when a replica stopped.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::store::{Store, StoreError};

/// Where and how the relay publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsRelayConfig {
    /// `nats://host:port`.
    pub url: String,
    /// The JetStream stream that keeps the events.
    pub stream: String,
    /// Subjects are `{subject_prefix}.{tenant}.{event}`.
    pub subject_prefix: String,
    /// How often it looks for new events.
    pub every: Duration,
}

impl NatsRelayConfig {
    /// The defaults: stream `TOD_EVENTS`, subjects `tod.events.>`, every second.
    pub fn at(url: &str) -> Self {
        Self {
            url: url.into(),
            stream: "TOD_EVENTS".into(),
            subject_prefix: "tod.events".into(),
            every: Duration::from_secs(1),
        }
    }
}

/// Events published per tenant per read.
const BATCH: i64 = 500;

/// A running relay.
#[derive(Debug)]
pub struct NatsRelay {
    task: tokio::task::JoinHandle<()>,
}

impl NatsRelay {
    /// Connects, makes sure the stream exists with explicit limits (a day of events, 256 MiB,
    /// oldest dropped), and starts relaying from `store`.
    pub async fn start(config: NatsRelayConfig, store: Arc<dyn Store>) -> Result<Self, String> {
        let client = async_nats::connect(&config.url)
            .await
            .map_err(|e| format!("NATS {}: {e}", config.url))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            max_bytes: 256 << 20,
            max_age: Duration::from_secs(86_400),
            duplicate_window: Duration::from_secs(600),
            discard: stream::DiscardPolicy::Old,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("JetStream stream {}: {e}", config.stream))?;
        let me = uuid::Uuid::new_v4();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(config.every);
            let ttl = chrono::Duration::from_std(config.every * 10).unwrap_or(chrono::Duration::seconds(10));
            loop {
                tick.tick().await;
                match store.try_lease("event-relay", me, chrono::Utc::now(), ttl).await {
                    Ok(true) => {
                        if let Err(e) = relay_once(store.as_ref(), &js, &config.subject_prefix).await {
                            tracing::warn!(error = %e, "event relay pass failed; retrying");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "event relay lease failed"),
                }
            }
        });
        Ok(Self { task })
    }

    /// Stops relaying (another replica's relay takes the lease over).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// The relay's task, for a server that stops its background work together.
    pub fn into_task(self) -> tokio::task::JoinHandle<()> {
        self.task
    }
}

/// Why a relay pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// JetStream did not take or acknowledge an event.
    #[error("publish: {0}")]
    Publish(String),
}

/// Publishes every tenant's unpublished events once; returns how many it published.
pub async fn relay_once(store: &dyn Store, js: &jetstream::Context, prefix: &str) -> Result<usize, RelayError> {
    let mut published = 0;
    for (tenant, mut cursor, head) in store.relay_pending().await? {
        while cursor < head {
            let events = store.stream_after(tenant, cursor, BATCH).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                break;
            };
            let mut acks = Vec::with_capacity(events.len());
            for e in events {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("{tenant}:{}", e.seq).as_str());
                headers.insert("Tod-Seq", e.seq.to_string().as_str());
                headers.insert("Tod-Event", e.kind.as_str());
                let ack = js
                    .publish_with_headers(format!("{prefix}.{tenant}.{}", e.kind), headers, e.data.into())
                    .await
                    .map_err(|e| RelayError::Publish(e.to_string()))?;
                acks.push(ack);
            }
            for ack in acks {
                ack.await.map_err(|e| RelayError::Publish(e.to_string()))?;
                published += 1;
            }
            store.set_relay_cursor(tenant, last).await?;
            cursor = last;
        }
    }
    Ok(published)
}
