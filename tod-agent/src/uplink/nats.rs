//! The NATS JetStream uplink: each batch is one message on `<subject prefix>.<agent id>`,
//! gzip-compressed JSON, published with `Nats-Msg-Id` set to the batch's idempotency key so the
//! stream drops redeliveries inside its duplicate window, and counted as delivered only when
//! JetStream acknowledges it (stored). The stream is created with explicit byte and age limits —
//! the original ran its broker out of memory without them.

use std::io::Write;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use tod_core::telemetry::Batch;

use super::{Uplink, UplinkError};

/// JetStream settings.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port` (the tunnel's local forward).
    pub url: String,
    /// Stream name.
    pub stream: String,
    /// Subjects are `<prefix>.<agent id>`.
    pub subject_prefix: String,
    /// Stream byte limit.
    pub max_bytes: i64,
    /// Stream age limit.
    pub max_age: Duration,
    /// How long the stream remembers message ids for de-duplication.
    pub duplicate_window: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream: "TOD_TELEMETRY".into(),
            subject_prefix: "tod.telemetry".into(),
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(7 * 86_400),
            duplicate_window: Duration::from_secs(3_600),
        }
    }
}

/// A JetStream uplink.
pub struct NatsUplink {
    config: NatsConfig,
    /// Set by the first delivery that reaches the broker; the client reconnects by itself after.
    js: tokio::sync::OnceCell<jetstream::Context>,
    subject: String,
}

impl std::fmt::Debug for NatsUplink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsUplink")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl NatsUplink {
    /// An uplink that connects when it first delivers (and again at each delivery until the
    /// broker answers), so an agent whose broker or tunnel is not reachable yet at start still
    /// polls and spools, and delivers once it is.
    pub fn new(config: &NatsConfig, agent: tod_core::AgentId) -> Self {
        Self {
            config: config.clone(),
            js: tokio::sync::OnceCell::new(),
            subject: format!("{}.{agent}", config.subject_prefix),
        }
    }

    /// Connects now and makes sure the stream exists with its limits.
    pub async fn connect(config: &NatsConfig, agent: tod_core::AgentId) -> Result<Self, String> {
        let up = Self::new(config, agent);
        up.context().await?;
        Ok(up)
    }

    /// The JetStream context, connecting and creating the stream first if that has not
    /// succeeded yet.
    async fn context(&self) -> Result<&jetstream::Context, String> {
        self.js
            .get_or_try_init(|| async {
                let config = &self.config;
                let client = async_nats::connect(&config.url)
                    .await
                    .map_err(|e| format!("NATS {}: {e}", config.url))?;
                let js = jetstream::new(client);
                js.get_or_create_stream(stream::Config {
                    name: config.stream.clone(),
                    subjects: vec![format!("{}.>", config.subject_prefix)],
                    max_bytes: config.max_bytes,
                    max_age: config.max_age,
                    duplicate_window: config.duplicate_window.min(config.max_age),
                    discard: stream::DiscardPolicy::Old,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("JetStream stream {}: {e}", config.stream))?;
                Ok(js)
            })
            .await
    }
}

#[async_trait::async_trait]
impl Uplink for NatsUplink {
    async fn deliver(&self, batch: &Batch) -> Result<(), UplinkError> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&batch.to_json())
            .map_err(|e| UplinkError::Rejected(e.to_string()))?;
        let body = gz.finish().map_err(|e| UplinkError::Rejected(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", batch.idempotency_key.as_str());
        headers.insert("Content-Encoding", "gzip");
        let retry = |reason: String| UplinkError::Retry { reason, after: None };
        let ack = self
            .context()
            .await
            .map_err(retry)?
            .publish_with_headers(self.subject.clone(), headers, body.into())
            .await
            .map_err(|e| retry(format!("publish: {e}")))?;
        tokio::time::timeout(Duration::from_secs(10), ack)
            .await
            .map_err(|_| retry("no JetStream acknowledgement within 10 s".into()))?
            .map_err(|e| retry(format!("JetStream: {e}")))?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "nats"
    }
}
