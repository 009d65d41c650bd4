//! The agent's tunnel: one WireGuard peer (the server's gateway) dialled out over UDP, with a
//! userspace TCP/IP stack behind it. Applications reach addresses inside the tunnel through local
//! port forwards ([`Tunnel::forward`]) or in-process streams ([`Tunnel::connect`]).
//!
//! One task owns the UDP socket, the boringtun session and the stack. boringtun's timers drive
//! handshake retry, rekey and persistent keepalive; on top of that, a tunnel with no handshake for
//! [`STALE_AFTER`] re-resolves the endpoint and takes a fresh source port, so a changed DNS answer,
//! a NAT that forgot the mapping or a gateway that restarted are all recovered from without a restart.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boringtun::noise::{Tunn, TunnResult};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::stack::{Stack, StackConfig, Stream};
use crate::{Key, PrivateKey, SESSION_LIFETIME, TICK, TunnelError, smol_now};

/// A tunnel with no handshake for this long re-resolves its endpoint and rebinds.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// What the agent needs to dial its server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// This agent's private key.
    pub private_key: PrivateKey,
    /// The gateway's public key.
    pub server_key: Key,
    /// The gateway's UDP endpoint, `host:port` (resolved again when the tunnel stalls).
    pub endpoint: String,
    /// This agent's address inside the tunnel.
    pub address: Ipv4Addr,
    /// Prefix length of the tunnel network.
    pub prefix: u8,
    /// Persistent keepalive in seconds, to hold NAT mappings open (25 is the usual value).
    pub keepalive: Option<u16>,
    /// Stack sizes.
    pub stack: StackConfig,
}

/// The tunnel as its owner sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TunnelStatus {
    /// A session exists and is younger than WireGuard's reject-after time.
    pub up: bool,
    /// The endpoint address in use.
    pub endpoint: Option<SocketAddr>,
    /// The local UDP address in use.
    pub local: Option<SocketAddr>,
    /// Time since the last completed handshake.
    pub since_handshake: Option<Duration>,
    /// Payload bytes sent and received through the tunnel.
    pub tx_bytes: u64,
    /// See `tx_bytes`.
    pub rx_bytes: u64,
    /// Datagrams that did not decrypt or verify.
    pub rejected: u64,
    /// TCP connections open inside the tunnel.
    pub connections: usize,
    /// Times the socket was rebound (stalls and explicit rebinds).
    pub rebinds: u64,
}

enum Cmd {
    Connect(SocketAddrV4, Box<dyn StreamBox>),
    Rebind(oneshot::Sender<Result<SocketAddr, TunnelError>>),
}

/// A boxed [`Stream`] (trait objects need one trait).
trait StreamBox: Stream {}
impl<T: Stream> StreamBox for T {}

/// A running tunnel; dropping it stops the tunnel and its forwards.
#[derive(Debug)]
pub struct Tunnel {
    cmds: mpsc::Sender<Cmd>,
    status: Arc<Mutex<TunnelStatus>>,
    task: JoinHandle<()>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A local port forward; dropping it stops accepting.
#[derive(Debug)]
pub struct Forward {
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Forward {
    /// The local address applications connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tunnel {
    /// Starts the tunnel task (inside a tokio runtime). The endpoint is resolved by the task, so a
    /// tower whose backhaul is down at boot starts anyway and connects when it can.
    pub fn start(config: ClientConfig) -> Self {
        let (cmds, rx) = mpsc::channel(64);
        let status = Arc::new(Mutex::new(TunnelStatus::default()));
        let task = tokio::spawn(drive(config, rx, status.clone()));
        Self { cmds, status, task }
    }

    /// The tunnel's state now.
    pub fn status(&self) -> TunnelStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// A stream to `remote` inside the tunnel.
    pub async fn connect(&self, remote: SocketAddrV4) -> Result<tokio::io::DuplexStream, TunnelError> {
        let (app, stack_end) = tokio::io::duplex(64 * 1024);
        self.cmds
            .send(Cmd::Connect(remote, Box::new(stack_end)))
            .await
            .map_err(|_| TunnelError::Stopped)?;
        Ok(app)
    }

    /// Accepts TCP on `listen` (a loopback address) and carries each connection to `remote`.
    pub async fn forward(&self, listen: SocketAddr, remote: SocketAddrV4) -> Result<Forward, TunnelError> {
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let cmds = self.cmds.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        if cmds.send(Cmd::Connect(remote, Box::new(stream))).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %local, "tunnel forward: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tracing::info!(%local, %remote, "tunnel forward listening");
        Ok(Forward { local, task })
    }

    /// Takes a fresh UDP socket (a new source port), as after a change of address; the gateway
    /// follows on the next authenticated packet. Returns the new local address.
    pub async fn rebind(&self) -> Result<SocketAddr, TunnelError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Rebind(tx))
            .await
            .map_err(|_| TunnelError::Stopped)?;
        rx.await.map_err(|_| TunnelError::Stopped)?
    }
}

struct Wire {
    socket: UdpSocket,
    endpoint: SocketAddr,
    opened: Instant,
}

async fn open(endpoint: &str) -> Result<Wire, TunnelError> {
    let addr = tokio::net::lookup_host(endpoint)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{endpoint}: no address")))?;
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = crate::bind_udp(bind).await?;
    socket.connect(addr).await?;
    Ok(Wire {
        socket,
        endpoint: addr,
        opened: Instant::now(),
    })
}

async fn recv(wire: &Option<Wire>, buf: &mut [u8]) -> std::io::Result<usize> {
    match wire {
        Some(w) => w.socket.recv(buf).await,
        None => std::future::pending().await,
    }
}

fn send(wire: &Option<Wire>, packet: &[u8]) {
    if let Some(w) = wire {
        // UDP: a full send buffer drops the datagram, as a congested link would; TCP inside resends.
        if let Err(e) = w.socket.try_send(packet) {
            tracing::trace!(error = %e, "tunnel datagram not sent");
        }
    }
}

struct Driver {
    config: ClientConfig,
    tunn: Tunn,
    stack: Stack,
    wire: Option<Wire>,
    status: Arc<Mutex<TunnelStatus>>,
    out: Vec<u8>,
    rejected: u64,
    rebinds: u64,
    last_open_attempt: Option<Instant>,
    start: std::time::Instant,
}

async fn drive(config: ClientConfig, mut cmds: mpsc::Receiver<Cmd>, status: Arc<Mutex<TunnelStatus>>) {
    let wake = Arc::new(Notify::new());
    let start = std::time::Instant::now();
    let mut index = [0u8; 4];
    let _ = getrandom::fill(&mut index);
    let tunn = Tunn::new(
        config.private_key.secret(),
        config.server_key.public(),
        None,
        config.keepalive,
        u32::from_le_bytes(index) >> 8,
        None,
    );
    let stack = Stack::new(
        config.address,
        config.prefix,
        config.stack,
        wake.clone(),
        smol_now(start),
    );
    let mut d = Driver {
        config,
        tunn,
        stack,
        wire: None,
        status,
        out: vec![0u8; 65_536],
        rejected: 0,
        rebinds: 0,
        last_open_attempt: None,
        start,
    };
    let mut buf = vec![0u8; 65_536];
    let mut next_tick = Instant::now();
    loop {
        d.ensure_wire().await;
        let stack_delay = d.stack.poll_delay(smol_now(start)).unwrap_or(TICK);
        let wait = stack_delay.min(next_tick.saturating_duration_since(Instant::now()));
        tokio::select! {
            r = recv(&d.wire, &mut buf) => match r {
                Ok(n) => {
                    d.datagram(&buf[..n]);
                    // Drain what else has arrived without another trip through the scheduler.
                    for _ in 0..64 {
                        let Some(w) = &d.wire else { break };
                        match w.socket.try_recv(&mut buf) {
                            Ok(n) => d.datagram(&buf[..n]),
                            Err(_) => break,
                        }
                    }
                    // A handshake may have just completed: say so now, not at the next tick.
                    d.publish();
                }
                // An ICMP "port unreachable" answer to an earlier datagram: the gateway is down.
                Err(e) => tracing::debug!(error = %e, "tunnel receive"),
            },
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(Cmd::Connect(remote, stream)) => d.stack.connect(remote, stream),
                Some(Cmd::Rebind(reply)) => {
                    let r = d.reopen().await;
                    let _ = reply.send(r);
                }
            },
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + TICK;
            d.timers().await;
        }
        d.pump();
    }
}

impl Driver {
    async fn ensure_wire(&mut self) {
        if self.wire.is_some()
            || self
                .last_open_attempt
                .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            return;
        }
        self.last_open_attempt = Some(Instant::now());
        match open(&self.config.endpoint).await {
            Ok(w) => {
                tracing::info!(endpoint = %w.endpoint, "tunnel: dialling the gateway");
                self.wire = Some(w);
                self.initiate();
            }
            Err(e) => tracing::warn!(endpoint = %self.config.endpoint, error = %e, "tunnel: endpoint unreachable"),
        }
    }

    async fn reopen(&mut self) -> Result<SocketAddr, TunnelError> {
        let w = open(&self.config.endpoint).await?;
        let local = w.socket.local_addr()?;
        self.wire = Some(w);
        self.rebinds += 1;
        // A keepalive from the new address lets the gateway roam at once; with no session, a
        // handshake does the same.
        if self.session_age().is_some_and(|age| age < SESSION_LIFETIME) {
            let packet = match self.tunn.encapsulate(&[], &mut self.out) {
                TunnResult::WriteToNetwork(p) => Some(p.to_vec()),
                _ => None,
            };
            if let Some(p) = packet {
                send(&self.wire, &p);
            }
        } else {
            self.initiate();
        }
        Ok(local)
    }

    fn initiate(&mut self) {
        if let TunnResult::WriteToNetwork(p) = self.tunn.format_handshake_initiation(&mut self.out, true) {
            send(&self.wire, p);
        }
    }

    fn session_age(&self) -> Option<Duration> {
        self.tunn.stats().0
    }

    fn datagram(&mut self, data: &[u8]) {
        let from = self.wire.as_ref().map(|w| w.endpoint.ip());
        match self.tunn.decapsulate(from, data, &mut self.out) {
            TunnResult::WriteToNetwork(p) => {
                send(&self.wire, p);
                // Packets queued while the handshake ran go out now.
                while let TunnResult::WriteToNetwork(p) = self.tunn.decapsulate(None, &[], &mut self.out) {
                    send(&self.wire, p);
                }
            }
            TunnResult::WriteToTunnelV4(packet, _) => self.stack.push_packet(packet),
            TunnResult::WriteToTunnelV6(..) | TunnResult::Done => {}
            TunnResult::Err(e) => {
                self.rejected += 1;
                tracing::debug!(error = ?e, "tunnel: datagram rejected");
            }
        }
    }

    async fn timers(&mut self) {
        match self.tunn.update_timers(&mut self.out) {
            TunnResult::WriteToNetwork(p) => send(&self.wire, p),
            TunnResult::Err(e) => tracing::debug!(error = ?e, "tunnel timers"),
            _ => {}
        }
        let stale = match self.session_age() {
            Some(age) => age >= SESSION_LIFETIME,
            None => true,
        };
        let wire_old = self.wire.as_ref().is_some_and(|w| w.opened.elapsed() >= STALE_AFTER);
        if stale && wire_old {
            tracing::info!("tunnel: no handshake lately; resolving the endpoint again on a fresh port");
            if let Err(e) = self.reopen().await {
                tracing::warn!(error = %e, "tunnel: endpoint unreachable");
                self.wire = None;
            }
        }
        self.publish();
    }

    fn pump(&mut self) {
        self.stack.run(smol_now(self.start));
        while let Some(packet) = self.stack.pop_packet() {
            match self.tunn.encapsulate(&packet, &mut self.out) {
                TunnResult::WriteToNetwork(p) => send(&self.wire, p),
                TunnResult::Err(e) => tracing::debug!(error = ?e, "tunnel: packet not sent"),
                _ => {}
            }
        }
    }

    fn publish(&self) {
        let (since, tx, rx, ..) = self.tunn.stats();
        let mut s = self.status.lock().expect("status lock");
        *s = TunnelStatus {
            up: since.is_some_and(|age| age < SESSION_LIFETIME),
            endpoint: self.wire.as_ref().map(|w| w.endpoint),
            local: self.wire.as_ref().and_then(|w| w.socket.local_addr().ok()),
            since_handshake: since,
            tx_bytes: tx as u64,
            rx_bytes: rx as u64,
            rejected: self.rejected,
            connections: self.stack.connections(),
            rebinds: self.rebinds,
        };
    }
}
