//! `/api/vpn/*`: the WireGuard gateway and its peers. A peer is an enrolled agent (one identity
//! for the token and the tunnel); enrolling gives back the agent's `[tunnel]` configuration.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tod_core::AgentId;

use super::{PathParams, QueryParams, TenantQuery, TenantScope, own_tenant};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{TUNNEL_GATEWAY, TUNNEL_PREFIX, TunnelPeer};
use crate::vpn::{API_PORT, Vpn};

fn gateway(st: &AppState) -> Result<&Vpn, ApiError> {
    st.vpn.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the WireGuard gateway is not running (it needs TOD_MASTER_KEY)",
        )
    })
}

/// The gateway as agents see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct GatewayInfo {
    /// Its WireGuard public key (base64).
    public_key: String,
    /// The `host:port` agents dial.
    endpoint: String,
    /// Its address inside the tunnel.
    address: String,
    /// The tunnel network.
    network: String,
    /// Datagrams dropped: not WireGuard, bad MAC, unknown peer, spoofed source, other.
    dropped: Dropped,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Dropped {
    malformed: u64,
    bad_mac: u64,
    unknown_peer: u64,
    spoofed: u64,
    rejected: u64,
}

pub(super) async fn info(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let vpn = gateway(&st)?;
    let c = vpn.counters();
    Ok(Json(GatewayInfo {
        public_key: vpn.public_key().to_string(),
        endpoint: vpn.endpoint().to_owned(),
        address: TUNNEL_GATEWAY.to_string(),
        network: format!("10.99.0.0/{TUNNEL_PREFIX}"),
        dropped: Dropped {
            malformed: c.malformed,
            bad_mac: c.bad_mac,
            unknown_peer: c.unknown_peer,
            spoofed: c.spoofed,
            rejected: c.rejected,
        },
    }))
}

/// A peer with its live tunnel state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct VpnPeer {
    #[serde(flatten)]
    peer: TunnelPeer,
    /// A session younger than WireGuard's reject-after time (180 s) exists.
    up: bool,
    /// Where its last authenticated datagram came from.
    endpoint: Option<String>,
    /// Seconds since its last handshake.
    since_handshake_secs: Option<f64>,
    /// Payload bytes received from it.
    rx_bytes: u64,
    /// Payload bytes sent to it.
    tx_bytes: u64,
}

fn with_state(vpn: &Vpn, peers: Vec<TunnelPeer>) -> Vec<VpnPeer> {
    let live: std::collections::HashMap<_, _> = vpn.peers().into_iter().map(|s| (s.address, s)).collect();
    peers
        .into_iter()
        .map(|peer| {
            let s = live.get(&peer.address);
            VpnPeer {
                up: s.is_some_and(|s| s.up),
                endpoint: s.and_then(|s| s.endpoint).map(|e| e.to_string()),
                since_handshake_secs: s.and_then(|s| s.since_handshake).map(|d| d.as_secs_f64()),
                rx_bytes: s.map_or(0, |s| s.rx_bytes),
                tx_bytes: s.map_or(0, |s| s.tx_bytes),
                peer,
            }
        })
        .collect()
}

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let vpn = gateway(&st)?;
    let peers = st.store.tunnel_peers(Some(t)).await?;
    Ok(Json(with_state(vpn, peers)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EnrolBody {
    /// The agent to make a peer.
    #[schema(value_type = String, format = Uuid)]
    agent_id: AgentId,
    /// Its public key (base64, `wg pubkey`), when the agent generated its own key pair — the
    /// better way: the private key then never leaves the tower. Without it the server generates a
    /// pair and returns the private key in this response only.
    #[serde(default)]
    public_key: Option<String>,
}

/// An enrolled peer and what its agent needs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Enrolled {
    peer: TunnelPeer,
    /// The agent's private key, when the server generated it (shown once, never stored).
    private_key: Option<String>,
    /// The gateway's public key.
    server_public_key: String,
    /// The gateway's `host:port`.
    endpoint: String,
    /// The agent configuration's `[server]` and `[tunnel]` parts.
    agent_config: String,
}

pub(super) async fn enrol(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
    super::Body(body): super::Body<EnrolBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let vpn = gateway(&st)?;
    let (public_key, private_key) = match body.public_key {
        Some(k) => {
            let key: tod_tunnel::Key = k
                .parse()
                .map_err(|e| ApiError::unprocessable(format!("public_key: {e}")))?;
            (key, None)
        }
        None => {
            let private = tod_tunnel::PrivateKey::generate().map_err(|e| ApiError::internal(e.to_string()))?;
            (private.public_key(), Some(private.to_base64()))
        }
    };
    let audit = caller.audit(
        Some(t),
        "vpn.peer.enrolled",
        json!({ "agent_id": body.agent_id, "public_key": public_key.to_string() }),
    );
    let peer = st
        .store
        .enrol_tunnel_peer(t, body.agent_id, &public_key.to_string(), Utc::now(), &audit)
        .await?;
    reload(vpn).await;
    let agent_config = format!(
        "[server]\nendpoint = \"{endpoint}\"\ningest = \"{gw}:{API_PORT}\"\n\n[tunnel]\n{key_line}\nserver_public_key = \"{server}\"\naddress = \"{address}\"\nprefix = {TUNNEL_PREFIX}\n",
        endpoint = vpn.endpoint(),
        gw = TUNNEL_GATEWAY,
        key_line = match &private_key {
            Some(k) => format!("private_key = \"{k}\""),
            None => "private_key_file = \"/etc/tod-agent/wg.key\"   # the key whose public half you enrolled".into(),
        },
        server = vpn.public_key(),
        address = peer.address,
    );
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            peer,
            private_key,
            server_public_key: vpn.public_key().to_string(),
            endpoint: vpn.endpoint().to_owned(),
            agent_config,
        }),
    ))
}

pub(super) async fn remove(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
    PathParams(agent): PathParams<AgentId>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let audit = caller.audit(Some(t), "vpn.peer.removed", json!({ "agent_id": agent }));
    st.store.remove_tunnel_peer(t, agent, Utc::now(), &audit).await?;
    if let Some(vpn) = st.vpn.as_deref() {
        reload(vpn).await;
    }
    Ok(Json(json!({ "status": "removed", "agent_id": agent })))
}

/// Applies a change to the running gateway now (the 30-second refresh would catch it too).
pub(super) async fn reload(vpn: &Vpn) {
    if let Err(e) = vpn.reload().await {
        tracing::warn!(error = %e, "tunnel peers not reloaded; the periodic refresh will retry");
    }
}
