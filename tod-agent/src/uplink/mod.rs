//! Uplinks: how batches leave the tower. One trait, one implementation per transport.
//!
//! An uplink either delivers a batch (the server committed it), fails in a way worth retrying
//! (network, 5xx, 429 — with the server's `Retry-After` when it gives one), or is told the batch
//! is unacceptable (4xx other than 429), which no retry can fix.

pub mod http;
pub mod mqtt;
pub mod nats;

use std::time::Duration;

use tod_core::telemetry::Batch;

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UplinkError {
    /// Try again later.
    #[error("delivery failed, will retry: {reason}")]
    Retry {
        /// What happened.
        reason: String,
        /// The server's `Retry-After`, when given.
        after: Option<Duration>,
    },
    /// The server refused the batch; retrying cannot help.
    #[error("batch rejected: {0}")]
    Rejected(String),
}

/// A way to deliver batches.
#[async_trait::async_trait]
pub trait Uplink: Send + Sync {
    /// Delivers one batch; `Ok` only once the server has committed it.
    async fn deliver(&self, batch: &Batch) -> Result<(), UplinkError>;

    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
}
