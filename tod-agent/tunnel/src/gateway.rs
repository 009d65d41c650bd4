//! The server's embedded WireGuard gateway: many peers on one UDP socket and one userspace stack
//! that accepts TCP on a fixed set of ports and forwards it to the server's own services.
//!
//! A datagram's MACs are checked (and handshakes rate-limited, with cookies under load) before any
//! Diffie-Hellman work; a handshake names its peer by static key, later packets by session index.
//! Unknown peers, bad MACs, replays and inner packets whose source is not the peer's own tunnel
//! address are dropped and counted. The stack answers only for the gateway's address, so peers
//! cannot reach each other; revoking a peer ([`Gateway::set_peers`]) drops its session and aborts
//! its connections at once.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::stack::{Stack, StackConfig, count_by_remote};
use crate::{Key, PrivateKey, PublicKey, SESSION_LIFETIME, StaticSecret, TICK, TunnelError, smol_now};

/// Handshakes per second before the gateway answers with cookies (WireGuard's load defence).
const HANDSHAKE_RATE_LIMIT: u64 = 100;

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// The gateway's private key.
    pub private_key: PrivateKey,
    /// The gateway's address inside the tunnel.
    pub address: Ipv4Addr,
    /// Prefix length of the tunnel network.
    pub prefix: u8,
    /// Tunnel port → the local service it reaches.
    pub forwards: Vec<(u16, SocketAddr)>,
    /// Stack sizes.
    pub stack: StackConfig,
}

/// A peer the gateway accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Its public key.
    pub key: Key,
    /// Its one address inside the tunnel (its allowed IP).
    pub address: Ipv4Addr,
    /// Who it is, for logs and status (tenant/agent).
    pub label: String,
}

/// One peer as the gateway sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    /// Its public key.
    pub key: Key,
    /// Its tunnel address.
    pub address: Ipv4Addr,
    /// Its label.
    pub label: String,
    /// Where its last authenticated datagram came from.
    pub endpoint: Option<SocketAddr>,
    /// Time since its last completed handshake.
    pub since_handshake: Option<Duration>,
    /// A session younger than WireGuard's reject-after time exists.
    pub up: bool,
    /// Payload bytes sent to it.
    pub tx_bytes: u64,
    /// Payload bytes received from it.
    pub rx_bytes: u64,
    /// Its TCP connections open through the gateway.
    pub connections: usize,
}

/// What the gateway dropped, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Datagrams that are not WireGuard messages.
    pub malformed: u64,
    /// Datagrams with a bad MAC or authentication tag.
    pub bad_mac: u64,
    /// Handshakes from keys that are not peers, and packets for sessions that do not exist.
    pub unknown_peer: u64,
    /// Decrypted packets whose source is not the sending peer's tunnel address.
    pub spoofed: u64,
    /// Other rejections (replays, stale timestamps, wrong state).
    pub rejected: u64,
    /// Packets for a tunnel address with no peer or no known endpoint.
    pub no_route: u64,
    /// Cookie replies sent because handshakes came too fast.
    pub cookies: u64,
    /// Connections refused because a peer held too many.
    pub refused_connections: u64,
}

#[derive(Debug, Default)]
struct Shared {
    peers: Vec<PeerStatus>,
    counters: GatewayCounters,
}

enum Cmd {
    SetPeers(Vec<PeerConfig>, oneshot::Sender<()>),
}

/// A running gateway; dropping it stops it.
#[derive(Debug)]
pub struct Gateway {
    cmds: mpsc::Sender<Cmd>,
    shared: Arc<Mutex<Shared>>,
    local: SocketAddr,
    public_key: Key,
    task: JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gateway {
    /// Binds the UDP socket and starts serving (with no peers until [`Gateway::set_peers`]).
    pub async fn start(config: GatewayConfig) -> Result<Self, TunnelError> {
        let socket = crate::bind_udp(config.listen).await?;
        let local = socket.local_addr()?;
        let (cmds, rx) = mpsc::channel(16);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let public_key = config.private_key.public_key();
        tracing::info!(%local, public_key = %public_key, address = %config.address, "WireGuard gateway listening");
        let task = tokio::spawn(drive(config, socket, rx, shared.clone()));
        Ok(Self {
            cmds,
            shared,
            local,
            public_key,
            task,
        })
    }

    /// The UDP address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Its public key.
    pub fn public_key(&self) -> Key {
        self.public_key
    }

    /// Replaces the peer set. Peers whose key and address are unchanged keep their sessions; the
    /// others' sessions and connections end now. Returns once applied.
    pub async fn set_peers(&self, peers: Vec<PeerConfig>) -> Result<(), TunnelError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::SetPeers(peers, tx))
            .await
            .map_err(|_| TunnelError::Stopped)?;
        rx.await.map_err(|_| TunnelError::Stopped)
    }

    /// Every peer's state (refreshed four times a second).
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.shared.lock().expect("gateway status lock").peers.clone()
    }

    /// The drop counters.
    pub fn counters(&self) -> GatewayCounters {
        self.shared.lock().expect("gateway status lock").counters
    }
}

struct Peer {
    config: PeerConfig,
    tunn: Tunn,
    endpoint: Option<SocketAddr>,
}

struct Driver {
    secret: StaticSecret,
    public: PublicKey,
    socket: UdpSocket,
    stack: Stack,
    limiter: Arc<RateLimiter>,
    peers: HashMap<u32, Peer>,
    by_key: HashMap<[u8; 32], u32>,
    by_address: HashMap<Ipv4Addr, u32>,
    next_index: u32,
    counters: GatewayCounters,
    out: Vec<u8>,
    start: std::time::Instant,
}

async fn drive(config: GatewayConfig, socket: UdpSocket, mut cmds: mpsc::Receiver<Cmd>, shared: Arc<Mutex<Shared>>) {
    let wake = Arc::new(Notify::new());
    let start = std::time::Instant::now();
    let mut stack = Stack::new(
        config.address,
        config.prefix,
        config.stack,
        wake.clone(),
        smol_now(start),
    );
    for (port, target) in &config.forwards {
        stack.listen(*port, *target);
    }
    let secret = config.private_key.secret();
    let public = PublicKey::from(&secret);
    let mut seed = [0u8; 4];
    let _ = getrandom::fill(&mut seed);
    let mut d = Driver {
        limiter: Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT)),
        secret,
        public,
        socket,
        stack,
        peers: HashMap::new(),
        by_key: HashMap::new(),
        by_address: HashMap::new(),
        next_index: u32::from_le_bytes(seed) >> 8,
        counters: GatewayCounters::default(),
        out: vec![0u8; 65_536],
        start,
    };
    let mut buf = vec![0u8; 65_536];
    let mut next_tick = Instant::now();
    let mut next_reset = Instant::now() + Duration::from_secs(1);
    loop {
        let stack_delay = d.stack.poll_delay(smol_now(start)).unwrap_or(TICK);
        let wait = stack_delay.min(next_tick.saturating_duration_since(Instant::now()));
        tokio::select! {
            r = d.socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    d.datagram(from, &buf[..n]);
                    for _ in 0..64 {
                        match d.socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => d.datagram(from, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "gateway receive"),
            },
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(Cmd::SetPeers(peers, done)) => {
                    d.set_peers(peers);
                    d.publish(&shared);
                    let _ = done.send(());
                }
            },
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + TICK;
            d.timers();
            d.publish(&shared);
        }
        if now >= next_reset {
            next_reset = now + Duration::from_secs(1);
            d.limiter.reset_count();
        }
        d.pump();
    }
}

fn send(socket: &UdpSocket, to: SocketAddr, packet: &[u8]) {
    if let Err(e) = socket.try_send_to(packet, to) {
        tracing::trace!(error = %e, %to, "gateway datagram not sent");
    }
}

impl Driver {
    fn set_peers(&mut self, wanted: Vec<PeerConfig>) {
        let mut keep: HashMap<u32, Peer> = HashMap::new();
        let mut by_key = HashMap::new();
        let mut by_address = HashMap::new();
        for config in wanted {
            if by_address.contains_key(&config.address) || by_key.contains_key(&config.key.0) {
                tracing::warn!(peer = %config.label, "gateway: duplicate peer key or address ignored");
                continue;
            }
            let existing = self
                .by_key
                .get(&config.key.0)
                .copied()
                .filter(|i| self.peers.get(i).is_some_and(|p| p.config.address == config.address));
            let (index, peer) = match existing.and_then(|i| self.peers.remove(&i).map(|p| (i, p))) {
                Some((i, mut p)) => {
                    p.config.label = config.label;
                    (i, p)
                }
                None => {
                    let index = self.next_index & 0x00ff_ffff;
                    self.next_index = self.next_index.wrapping_add(1);
                    let tunn = Tunn::new(
                        self.secret.clone(),
                        config.key.public(),
                        None,
                        None,
                        index,
                        Some(self.limiter.clone()),
                    );
                    tracing::info!(peer = %config.label, address = %config.address, "gateway: peer added");
                    (
                        index,
                        Peer {
                            config,
                            tunn,
                            endpoint: None,
                        },
                    )
                }
            };
            by_key.insert(peer.config.key.0, index);
            by_address.insert(peer.config.address, index);
            keep.insert(index, peer);
        }
        let removed: Vec<Ipv4Addr> = self.peers.values().map(|p| p.config.address).collect();
        for p in self.peers.values() {
            tracing::info!(peer = %p.config.label, "gateway: peer removed; its connections end");
        }
        if !removed.is_empty() {
            self.stack.abort_remotes(|ip| removed.contains(&ip));
        }
        self.peers = keep;
        self.by_key = by_key;
        self.by_address = by_address;
    }

    fn datagram(&mut self, from: SocketAddr, data: &[u8]) {
        // MACs first (cheap), and cookies instead of work when handshakes flood in.
        let packet = match self.limiter.verify_packet(Some(from.ip()), data, &mut self.out) {
            Ok(p) => p,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                self.counters.cookies += 1;
                send(&self.socket, from, cookie);
                return;
            }
            Err(TunnResult::Err(WireGuardError::InvalidMac)) => {
                self.counters.bad_mac += 1;
                return;
            }
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        let index = match &packet {
            Packet::HandshakeInit(p) => parse_handshake_anon(&self.secret, &self.public, p)
                .ok()
                .and_then(|h| self.by_key.get(&h.peer_static_public).copied()),
            Packet::HandshakeResponse(p) => Some(p.receiver_idx >> 8),
            Packet::PacketCookieReply(p) => Some(p.receiver_idx >> 8),
            Packet::PacketData(p) => Some(p.receiver_idx >> 8),
        };
        let is_data = matches!(packet, Packet::PacketData(_));
        let Some(peer) = index.and_then(|i| self.peers.get_mut(&i)) else {
            self.counters.unknown_peer += 1;
            return;
        };
        match peer.tunn.decapsulate(Some(from.ip()), data, &mut self.out) {
            TunnResult::WriteToNetwork(p) => {
                peer.endpoint = Some(from);
                send(&self.socket, from, p);
                while let TunnResult::WriteToNetwork(p) = peer.tunn.decapsulate(None, &[], &mut self.out) {
                    send(&self.socket, from, p);
                }
            }
            TunnResult::WriteToTunnelV4(inner, source) => {
                if source == peer.config.address {
                    peer.endpoint = Some(from);
                    self.stack.push_packet(inner);
                } else {
                    self.counters.spoofed += 1;
                    tracing::debug!(peer = %peer.config.label, %source, "gateway: spoofed source dropped");
                }
            }
            TunnResult::WriteToTunnelV6(..) => self.counters.spoofed += 1,
            TunnResult::Done => {
                // An authenticated keepalive: the peer may have roamed.
                if is_data {
                    peer.endpoint = Some(from);
                }
            }
            TunnResult::Err(WireGuardError::InvalidMac | WireGuardError::InvalidAeadTag) => self.counters.bad_mac += 1,
            TunnResult::Err(WireGuardError::WrongIndex | WireGuardError::NoCurrentSession) => {
                self.counters.unknown_peer += 1
            }
            TunnResult::Err(e) => {
                self.counters.rejected += 1;
                tracing::debug!(peer = %peer.config.label, error = ?e, "gateway: datagram rejected");
            }
        }
    }

    fn timers(&mut self) {
        for peer in self.peers.values_mut() {
            if let TunnResult::WriteToNetwork(p) = peer.tunn.update_timers(&mut self.out)
                && let Some(to) = peer.endpoint
            {
                send(&self.socket, to, p);
            }
        }
    }

    fn pump(&mut self) {
        self.stack.run(smol_now(self.start));
        while let Some(packet) = self.stack.pop_packet() {
            let Some(dst) = ipv4_destination(&packet) else { continue };
            let Some(peer) = self.by_address.get(&dst).and_then(|i| self.peers.get_mut(i)) else {
                self.counters.no_route += 1;
                continue;
            };
            let Some(to) = peer.endpoint else {
                self.counters.no_route += 1;
                continue;
            };
            if let TunnResult::WriteToNetwork(p) = peer.tunn.encapsulate(&packet, &mut self.out) {
                send(&self.socket, to, p);
            }
        }
    }

    fn publish(&self, shared: &Mutex<Shared>) {
        let conns = count_by_remote(&self.stack);
        let mut peers: Vec<PeerStatus> = self
            .peers
            .values()
            .map(|p| {
                let (since, tx, rx, ..) = p.tunn.stats();
                PeerStatus {
                    key: p.config.key,
                    address: p.config.address,
                    label: p.config.label.clone(),
                    endpoint: p.endpoint,
                    since_handshake: since,
                    up: since.is_some_and(|s| s < SESSION_LIFETIME),
                    tx_bytes: tx as u64,
                    rx_bytes: rx as u64,
                    connections: conns.get(&p.config.address).copied().unwrap_or(0),
                }
            })
            .collect();
        peers.sort_by_key(|p| p.address);
        let mut s = shared.lock().expect("gateway status lock");
        s.peers = peers;
        s.counters = GatewayCounters {
            refused_connections: self.stack.refused(),
            ..self.counters
        };
    }
}

fn ipv4_destination(packet: &[u8]) -> Option<Ipv4Addr> {
    (packet.len() >= 20 && packet[0] >> 4 == 4).then(|| Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]))
}
