//! The HTTP uplink: `POST {endpoint}/api/ingest` with a gzip-compressed JSON batch, the
//! idempotency key in a header too. Plain HTTP/1.1: it runs through the WireGuard tunnel's local
//! port forward, which already encrypts and authenticates.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper_util::rt::TokioIo;
use tod_core::telemetry::Batch;
use tokio::net::TcpStream;

use super::{Uplink, UplinkError};

/// HTTP uplink settings.
#[derive(Debug, Clone)]
pub struct HttpUplink {
    /// `host:port` of the ingest endpoint (the tunnel's local forward).
    pub address: String,
    /// Path of the ingest endpoint.
    pub path: String,
    /// The agent's bearer credential.
    pub token: Option<String>,
    /// Deadline for one delivery.
    pub timeout: Duration,
}

impl HttpUplink {
    /// An uplink to `address` (`host:port`) with the default path and timeout.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            path: "/api/ingest".into(),
            token: None,
            timeout: Duration::from_secs(30),
        }
    }

    async fn post(&self, body: Vec<u8>, key: &str) -> Result<(), UplinkError> {
        let retry = |reason: String| UplinkError::Retry { reason, after: None };
        let tcp = TcpStream::connect(&self.address)
            .await
            .map_err(|e| retry(format!("connect {}: {e}", self.address)))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| retry(format!("HTTP handshake: {e}")))?;
        tokio::spawn(conn);
        let mut req = Request::post(&self.path)
            .header(HOST, &self.address)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "gzip")
            .header("Idempotency-Key", key);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| UplinkError::Rejected(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| retry(format!("HTTP request: {e}")))?;
        let status = resp.status();
        let after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let detail = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        match status.as_u16() {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(UplinkError::Retry {
                reason: format!("HTTP {status}: {detail}"),
                after,
            }),
            _ => Err(UplinkError::Rejected(format!("HTTP {status}: {detail}"))),
        }
    }
}

#[async_trait::async_trait]
impl Uplink for HttpUplink {
    async fn deliver(&self, batch: &Batch) -> Result<(), UplinkError> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&batch.to_json())
            .map_err(|e| UplinkError::Rejected(e.to_string()))?;
        let body = gz.finish().map_err(|e| UplinkError::Rejected(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.post(body, &batch.idempotency_key)).await {
            Ok(r) => r,
            Err(_) => Err(UplinkError::Retry {
                reason: format!("no answer within {:?}", self.timeout),
                after: None,
            }),
        }
    }

    fn name(&self) -> &'static str {
        "http"
    }
}
