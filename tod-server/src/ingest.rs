//! The one ingest pipeline every input feeds: decode (optionally gzip) JSON into a
//! `tod_core::telemetry::Batch`, check it belongs to the agent that sent it, store it in one
//! transaction. The HTTP endpoint maps the outcome to status codes; the broker consumers to
//! acknowledgements and dead letters.

use std::io::Read;

use chrono::{DateTime, Utc};
use serde_json::json;
use tod_core::telemetry::{Batch, TelemetryError};

use crate::store::{Agent, Audit, Ingested, Store, StoreError};

/// The largest batch accepted, decompressed.
pub const MAX_BATCH_BYTES: u64 = 64 << 20;

/// Why a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// Not a batch: bad gzip or JSON, wrong field types (HTTP 400; dead letter).
    #[error("{0}")]
    Malformed(String),
    /// Larger than [`MAX_BATCH_BYTES`] decompressed (HTTP 413; dead letter).
    #[error("batch larger than 64 MiB")]
    TooLarge,
    /// Well-formed but refused: unknown schema, broken invariant, another agent's batch, a device
    /// of another site (HTTP 422 or 403; dead letter). Refusals of a valid agent are audited.
    #[error("{0}")]
    Refused(String),
    /// The batch names another agent than the one that sent it.
    #[error("{0}")]
    WrongAgent(String),
    /// Storage failed; the sender should retry (HTTP 5xx; negative acknowledgement).
    #[error("{0}")]
    Store(StoreError),
}

/// Decodes a batch body (`gzip` when the sender said so).
pub fn decode(body: &[u8], gzip: bool) -> Result<Batch, IngestError> {
    let inflated;
    let json = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(MAX_BATCH_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| IngestError::Malformed(format!("gzip: {e}")))?;
        inflated = out;
        &inflated[..]
    } else {
        body
    };
    if json.len() as u64 > MAX_BATCH_BYTES {
        return Err(IngestError::TooLarge);
    }
    Batch::from_json(json).map_err(|e| match e {
        TelemetryError::Malformed(m) => IngestError::Malformed(format!("malformed batch: {m}")),
        other => IngestError::Refused(other.to_string()),
    })
}

/// Decodes and stores one delivery from `agent`; refusals of a decodable batch are audited in
/// the agent's tenant.
pub async fn process(
    store: &dyn Store,
    agent: &Agent,
    body: &[u8],
    gzip: bool,
    now: DateTime<Utc>,
) -> Result<Ingested, IngestError> {
    let batch = decode(body, gzip)?;
    let refused = |detail: &str| Audit {
        chain: agent.tenant_id,
        actor_user: None,
        actor_api_key: None,
        action: "ingest.rejected".into(),
        resource_type: Some("agent".into()),
        resource_id: Some(agent.id.to_string()),
        details: json!({ "idempotency_key": batch.idempotency_key, "reason": detail }),
        ip: None,
    };
    if batch.agent_id != agent.id {
        let detail = format!("the batch names agent {}, not the sender", batch.agent_id);
        store
            .append_audit(&refused(&detail), now)
            .await
            .map_err(IngestError::Store)?;
        return Err(IngestError::WrongAgent(detail));
    }
    match store.ingest(agent, &batch, now).await {
        Ok(done) => Ok(done),
        Err(StoreError::Invalid(detail)) => {
            store
                .append_audit(&refused(&detail), now)
                .await
                .map_err(IngestError::Store)?;
            Err(IngestError::Refused(detail))
        }
        Err(e) => Err(IngestError::Store(e)),
    }
}
