//! The embedded WireGuard gateway as the server runs it: its key derived from the master key (so
//! nothing about it is stored), its peers the enrolled agents of every tenant, re-read after each
//! change through the API and every 30 s (changes made by another replica), and its forwards the
//! server's own services: the API on tunnel port 80, NATS on 4222 and MQTT on 1883 when configured.
//! Nothing else inside the tunnel answers, and peers cannot reach each other.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tod_tunnel::gateway::{Gateway, GatewayConfig, GatewayCounters, PeerConfig, PeerStatus};
use tod_tunnel::{Key, PrivateKey};

use crate::settings::Settings;
use crate::store::Store;
use crate::store::{TUNNEL_GATEWAY, TUNNEL_PREFIX};

/// Tunnel port of the API (HTTP ingest, the device list).
pub const API_PORT: u16 = 80;
/// Tunnel port of NATS, when the server consumes from NATS.
pub const NATS_PORT: u16 = 4222;
/// Tunnel port of MQTT, when the server consumes from MQTT.
pub const MQTT_PORT: u16 = 1883;

/// The running gateway.
pub struct Vpn {
    gateway: Gateway,
    endpoint: String,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Vpn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vpn")
            .field("gateway", &self.gateway)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Vpn {
    /// Starts the gateway, forwarding tunnel port 80 to the API at `api`. Without a master key
    /// there is no gateway key, so no gateway (logged).
    pub async fn start(
        settings: &Settings,
        vault: Option<&crate::vault::Vault>,
        store: Arc<dyn Store>,
        api: SocketAddr,
    ) -> Result<Option<Arc<Self>>, String> {
        let Some(vault) = vault else {
            tracing::warn!("no TOD_MASTER_KEY: the WireGuard gateway is off");
            return Ok(None);
        };
        let private_key = PrivateKey::from_bytes(vault.derive(b"wireguard-gateway"));
        let mut forwards = vec![(API_PORT, loopback_if_unspecified(api))];
        for (port, url) in [(NATS_PORT, &settings.nats_url), (MQTT_PORT, &settings.mqtt_url)] {
            let Some(url) = url else { continue };
            let hostport = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let addr = tokio::net::lookup_host(hostport)
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("{url}: cannot resolve it for the tunnel forward"))?;
            forwards.push((port, addr));
        }
        let gateway = Gateway::start(GatewayConfig {
            listen: settings.wireguard_listen,
            private_key,
            address: TUNNEL_GATEWAY,
            prefix: TUNNEL_PREFIX,
            forwards,
            stack: Default::default(),
        })
        .await
        .map_err(|e| {
            format!(
                "wireguard_listen (TOD_WIREGUARD_LISTEN) {}: {e}",
                settings.wireguard_listen
            )
        })?;
        let endpoint = settings
            .wireguard_endpoint
            .clone()
            .unwrap_or_else(|| gateway.local_addr().to_string());
        let vpn = Arc::new(Self {
            gateway,
            endpoint,
            store,
        });
        vpn.reload().await.map_err(|e| format!("tunnel peers: {e}"))?;
        let weak = Arc::downgrade(&vpn);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let Some(vpn) = weak.upgrade() else { return };
                if let Err(e) = vpn.reload().await {
                    tracing::warn!(error = %e, "tunnel peers not refreshed");
                }
            }
        });
        Ok(Some(vpn))
    }

    /// Re-reads the peers from the store and applies them (revoked agents drop out at once).
    pub async fn reload(&self) -> Result<(), String> {
        let peers = self.store.tunnel_peers(None).await.map_err(|e| e.to_string())?;
        let configs = peers
            .into_iter()
            .filter_map(|p| match p.public_key.parse::<Key>() {
                Ok(key) => Some(PeerConfig {
                    key,
                    address: p.address,
                    label: format!("{}/{}", p.tenant_id, p.name),
                }),
                Err(e) => {
                    tracing::warn!(agent = %p.agent_id, error = %e, "tunnel peer with an unusable key skipped");
                    None
                }
            })
            .collect();
        self.gateway.set_peers(configs).await.map_err(|e| e.to_string())
    }

    /// The gateway's public key.
    pub fn public_key(&self) -> Key {
        self.gateway.public_key()
    }

    /// The `host:port` agents dial.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The UDP address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.gateway.local_addr()
    }

    /// Every peer's live state.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.gateway.peers()
    }

    /// What it dropped.
    pub fn counters(&self) -> GatewayCounters {
        self.gateway.counters()
    }
}

fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        (Ipv4Addr::LOCALHOST, addr.port()).into()
    } else {
        addr
    }
}
