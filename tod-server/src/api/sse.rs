//! Server-Sent Events: `GET /api/sse/events` — the tenant's live changes (device status, reboots,
//! versions, link states, device and site alerts, agents' lost data) as they commit, numbered per tenant. A client
//! that reconnects with `Last-Event-ID` (or `?last_event_id=`) gets everything after that number
//! that is still retained (24 hours); without one it starts from now. The stream is read from
//! the database's outbox ([`crate::store::StreamStore`]), so any replica serves any client and
//! sees every replica's writes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tod_core::TenantId;

use super::{QueryParams, TenantScope, own_tenant};
use crate::app::AppState;
use crate::error::ApiError;

/// Every event name the stream carries.
pub const KINDS: [&str; 9] = [
    "device.status",
    "device.reboot",
    "device.version",
    "link.state",
    "alert.fired",
    "alert.resolved",
    "site_alert.raised",
    "site_alert.resolved",
    "agent.data_lost",
];

/// How often an idle stream looks for new events.
const POLL: Duration = Duration::from_millis(500);
/// Events read per look.
const BATCH: i64 = 200;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SseQuery {
    /// The tenant (super admins only).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    tenant_id: Option<TenantId>,
    /// Resume after this event number (the `Last-Event-ID` header wins).
    #[serde(default)]
    last_event_id: Option<i64>,
    /// Only these event names, comma-separated (default all).
    #[serde(default)]
    kinds: Option<String>,
}

struct Reader {
    st: AppState,
    stop: tokio::sync::watch::Receiver<bool>,
    tenant: TenantId,
    cursor: i64,
    kinds: Option<Vec<String>>,
    pending: VecDeque<Event>,
}

impl Reader {
    /// Waits, or less if the server starts shutting down.
    async fn pause(&mut self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.wait_for(|s| *s) => {}
        }
    }
}

pub(super) async fn events(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<SseQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let tenant = own_tenant(scope, q.tenant_id)?;
    let kinds = match q.kinds.as_deref() {
        None => None,
        Some(list) => {
            let kinds: Vec<String> = list.split(',').map(|k| k.trim().to_owned()).collect();
            if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
                return Err(ApiError::unprocessable(format!(
                    "kinds: {bad:?} is not one of {}",
                    KINDS.join(", ")
                )));
            }
            Some(kinds)
        }
    };
    let header = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID: an event number"))?,
        ),
    };
    if q.last_event_id.is_some_and(|n| n < 0) {
        return Err(ApiError::unprocessable("last_event_id: 0 or more"));
    }
    let cursor = match header.or(q.last_event_id) {
        Some(n) => n,
        None => st.store.stream_head(tenant).await?,
    };
    let reader = Reader {
        stop: st.stopping.subscribe(),
        st,
        tenant,
        cursor,
        kinds,
        pending: VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(reader, |mut r| async move {
        loop {
            if let Some(e) = r.pending.pop_front() {
                return Some((Ok(e), r));
            }
            // The server is shutting down: end the stream (the client reconnects elsewhere).
            if *r.stop.borrow() {
                return None;
            }
            match r.st.store.stream_after(r.tenant, r.cursor, BATCH).await {
                Ok(rows) if !rows.is_empty() => {
                    for row in rows {
                        r.cursor = row.seq;
                        if r.kinds.as_ref().is_none_or(|k| k.contains(&row.kind)) {
                            r.pending
                                .push_back(Event::default().id(row.seq.to_string()).event(row.kind).data(row.data));
                        }
                    }
                }
                Ok(_) => r.pause(POLL).await,
                Err(e) => {
                    tracing::warn!(tenant = %r.tenant, error = %e, "event stream read failed; retrying");
                    r.pause(POLL * 4).await;
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
