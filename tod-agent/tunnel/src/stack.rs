//! The userspace TCP/IP side of a tunnel: one smoltcp interface whose "wire" is a pair of packet
//! queues (IP packets decrypted from WireGuard in, IP packets to encrypt out), and the bridge that
//! joins each of its TCP sockets to a tokio stream.
//!
//! The stack reads no clock and owns no socket: its owner passes `now`, feeds it packets, drains
//! the packets it emits and asks it when to run next. Each bridged stream gets two small tasks
//! that move bytes over bounded channels; they wake the owner through one [`Notify`], and the
//! stack reads from an application only while its socket has room and writes to one only while
//! its channel has room, so a slow side slows the TCP window instead of growing a buffer.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

/// A byte stream a tunnel connection can be joined to.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// How many chunks may wait in each direction of one bridged stream.
const CHANNEL_CHUNKS: usize = 4;
/// The largest chunk moved at once.
const CHUNK: usize = 16 * 1024;
/// Packets waiting to be encrypted before the stack stops emitting (the owner drains after each run).
const TX_QUEUE_LIMIT: usize = 4096;

/// The in-memory link under smoltcp.
#[derive(Debug, Default)]
struct Link {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0u8; len];
        let r = f(&mut packet);
        self.0.push_back(packet);
        r
    }
}

impl Device for Link {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((Rx(packet), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        (self.tx.len() < TX_QUEUE_LIMIT).then_some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

/// Where the gateway sends what arrives on one of its ports.
pub type Target = std::net::SocketAddr;

/// A TCP connection in the stack joined to a tokio stream.
struct Conn {
    handle: SocketHandle,
    remote: Ipv4Addr,
    from_app: mpsc::Receiver<Bytes>,
    to_app: Option<mpsc::Sender<Bytes>>,
    pending: Option<Bytes>,
    app_eof: bool,
    fin_sent: bool,
}

/// A port the stack accepts connections on.
struct Listener {
    port: u16,
    target: Target,
    handle: SocketHandle,
}

/// Limits and sizes of a stack.
#[derive(Debug, Clone, Copy)]
pub struct StackConfig {
    /// Inner MTU.
    pub mtu: usize,
    /// Receive and send buffer of each TCP socket (bytes each way).
    pub socket_buffer: usize,
    /// Connections one remote address may hold open at once (accepted side).
    pub max_conns_per_remote: usize,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            mtu: crate::DEFAULT_MTU,
            socket_buffer: 64 * 1024,
            max_conns_per_remote: 32,
        }
    }
}

/// One smoltcp interface and its bridged connections.
pub struct Stack {
    iface: Interface,
    link: Link,
    sockets: SocketSet<'static>,
    conns: Vec<Conn>,
    listeners: Vec<Listener>,
    wake: Arc<Notify>,
    config: StackConfig,
    next_port: u16,
    refused: u64,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("conns", &self.conns.len())
            .field("listeners", &self.listeners.len())
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// A stack with one address (`address/prefix`), woken through `wake`.
    pub fn new(address: Ipv4Addr, prefix: u8, config: StackConfig, wake: Arc<Notify>, now: Instant) -> Self {
        let mut link = Link {
            mtu: config.mtu,
            ..Link::default()
        };
        let mut iface_config = Config::new(HardwareAddress::Ip);
        let mut seed = [0u8; 8];
        // A failing random source only makes initial sequence numbers predictable, not wrong.
        let _ = getrandom::fill(&mut seed);
        iface_config.random_seed = u64::from_le_bytes(seed);
        let mut iface = Interface::new(iface_config, &mut link, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(address), prefix));
        });
        // Everything beyond the prefix is reached through the peer as well.
        let _ = iface.routes_mut().add_default_ipv4_route(address);
        let port_seed = u16::from_le_bytes([seed[0], seed[1]]);
        Self {
            iface,
            link,
            sockets: SocketSet::new(Vec::new()),
            conns: Vec::new(),
            listeners: Vec::new(),
            wake,
            config,
            next_port: 49152 + port_seed % 16384,
            refused: 0,
        }
    }

    /// An IP packet that came out of the tunnel.
    pub fn push_packet(&mut self, packet: &[u8]) {
        self.link.rx.push_back(packet.to_vec());
    }

    /// The next IP packet to encrypt and send.
    pub fn pop_packet(&mut self) -> Option<Vec<u8>> {
        self.link.tx.pop_front()
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Connections refused because their remote held too many already.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    fn new_socket(&mut self) -> tcp::Socket<'static> {
        let size = self.config.socket_buffer;
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; size]),
            tcp::SocketBuffer::new(vec![0; size]),
        );
        socket.set_keep_alive(Some(smoltcp::time::Duration::from_secs(25)));
        socket.set_timeout(Some(smoltcp::time::Duration::from_secs(120)));
        socket.set_nagle_enabled(false);
        socket
    }

    /// Opens a connection to `remote` inside the tunnel and joins it to `stream`.
    pub fn connect(&mut self, remote: std::net::SocketAddrV4, stream: impl Stream) {
        let mut socket = self.new_socket();
        let local_port = self.ephemeral_port();
        let endpoint = IpEndpoint::new(IpAddress::Ipv4(*remote.ip()), remote.port());
        if let Err(e) = socket.connect(self.iface.context(), endpoint, local_port) {
            tracing::warn!(%remote, error = %e, "tunnel connect refused by the stack");
            return;
        }
        let handle = self.sockets.add(socket);
        let (from_app, to_app) = bridge(std::future::ready(Ok(stream)), self.wake.clone());
        self.conns.push(Conn {
            handle,
            remote: *remote.ip(),
            from_app,
            to_app: Some(to_app),
            pending: None,
            app_eof: false,
            fin_sent: false,
        });
    }

    /// Accepts connections on `port` and joins each to a new TCP connection to `target`.
    pub fn listen(&mut self, port: u16, target: Target) {
        let handle = self.listen_socket(port);
        self.listeners.push(Listener { port, target, handle });
    }

    fn listen_socket(&mut self, port: u16) -> SocketHandle {
        let mut socket = self.new_socket();
        socket.listen(port).expect("a fresh socket listens on a non-zero port");
        self.sockets.add(socket)
    }

    fn ephemeral_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port == u16::MAX { 49152 } else { port + 1 };
        port
    }

    /// Aborts every connection with a remote address `drop` selects (a revoked peer).
    pub fn abort_remotes(&mut self, drop: impl Fn(Ipv4Addr) -> bool) {
        for conn in &mut self.conns {
            if drop(conn.remote) {
                self.sockets.get_mut::<tcp::Socket>(conn.handle).abort();
                conn.to_app = None;
            }
        }
    }

    /// When the stack next needs to run, if it has timers pending.
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
    }

    /// Processes queued packets, timers and application data until nothing moves.
    pub fn run(&mut self, now: Instant) {
        for _ in 0..256 {
            let mut changed = false;
            loop {
                match self.iface.poll_ingress_single(now, &mut self.link, &mut self.sockets) {
                    PollIngressSingleResult::None => break,
                    PollIngressSingleResult::PacketProcessed => {}
                    PollIngressSingleResult::SocketStateChanged => {
                        // A SYN turns the listening socket into a connection: listen again before the
                        // next packet so a second client of the same port is not refused.
                        self.accept();
                        changed = true;
                    }
                }
            }
            changed |= self.service();
            changed |= self.iface.poll_egress(now, &mut self.link, &mut self.sockets) == PollResult::SocketStateChanged;
            changed |= self.accept();
            if !changed {
                break;
            }
        }
    }

    /// Turns listening sockets that received a SYN into connections and listens again.
    fn accept(&mut self) -> bool {
        let mut accepted = false;
        for i in 0..self.listeners.len() {
            let handle = self.listeners[i].handle;
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            if socket.state() == tcp::State::Listen {
                continue;
            }
            let remote = match socket.remote_endpoint().map(|e| e.addr) {
                Some(IpAddress::Ipv4(a)) => a,
                _ => Ipv4Address::UNSPECIFIED,
            };
            let fresh = self.listen_socket(self.listeners[i].port);
            self.listeners[i].handle = fresh;
            accepted = true;
            let held = self.conns.iter().filter(|c| c.remote == remote).count();
            if held >= self.config.max_conns_per_remote {
                self.sockets.get_mut::<tcp::Socket>(handle).abort();
                self.refused += 1;
                tracing::warn!(%remote, held, "tunnel connection refused: too many from this peer");
                // The aborted socket sends its RST on the next egress, then is removed with no conn.
                self.conns.push(closed_conn(handle, remote));
                continue;
            }
            let target = self.listeners[i].target;
            let port = self.listeners[i].port;
            tracing::debug!(%remote, port, %target, "tunnel connection accepted");
            let (from_app, to_app) = bridge(tokio::net::TcpStream::connect(target), self.wake.clone());
            self.conns.push(Conn {
                handle,
                remote,
                from_app,
                to_app: Some(to_app),
                pending: None,
                app_eof: false,
                fin_sent: false,
            });
        }
        accepted
    }

    /// Moves bytes between sockets and applications; closes and removes finished connections.
    fn service(&mut self) -> bool {
        let mut moved = false;
        let sockets = &mut self.sockets;
        for conn in &mut self.conns {
            let socket = sockets.get_mut::<tcp::Socket>(conn.handle);
            // Application → tunnel, only as far as the socket has room.
            loop {
                if conn.pending.is_none() && !conn.app_eof {
                    match conn.from_app.try_recv() {
                        Ok(chunk) => conn.pending = Some(chunk),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => conn.app_eof = true,
                    }
                }
                let Some(chunk) = conn.pending.as_mut() else { break };
                if !socket.may_send() {
                    if !socket.is_open() {
                        conn.pending = None;
                    }
                    break;
                }
                match socket.send_slice(chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        chunk.advance(n);
                        moved = true;
                        if chunk.is_empty() {
                            conn.pending = None;
                        }
                    }
                }
            }
            if conn.app_eof && conn.pending.is_none() && !conn.fin_sent && socket.is_open() {
                socket.close();
                conn.fin_sent = true;
                moved = true;
            }
            // Tunnel → application, only as far as the application keeps up.
            if let Some(tx) = &conn.to_app {
                let mut app_gone = false;
                while socket.can_recv() {
                    match tx.try_reserve() {
                        Ok(permit) => {
                            let mut buf = BytesMut::zeroed(socket.recv_queue().min(CHUNK));
                            let n = socket.recv_slice(&mut buf).unwrap_or(0);
                            buf.truncate(n);
                            permit.send(buf.freeze());
                            moved = true;
                        }
                        Err(mpsc::error::TrySendError::Full(())) => break,
                        Err(mpsc::error::TrySendError::Closed(())) => {
                            socket.abort();
                            app_gone = true;
                            moved = true;
                            break;
                        }
                    }
                }
                if app_gone {
                    conn.to_app = None;
                    continue;
                }
                let remote_closed = matches!(
                    socket.state(),
                    tcp::State::CloseWait
                        | tcp::State::LastAck
                        | tcp::State::Closing
                        | tcp::State::TimeWait
                        | tcp::State::Closed
                );
                if remote_closed && !socket.can_recv() {
                    // Dropping the sender ends the application's write side after what it holds.
                    conn.to_app = None;
                    moved = true;
                }
            }
        }
        let before = self.conns.len();
        self.conns.retain(|conn| {
            let socket = sockets.get::<tcp::Socket>(conn.handle);
            let done = conn.to_app.is_none() && matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait);
            if done {
                sockets.remove(conn.handle);
            }
            !done
        });
        moved || self.conns.len() != before
    }
}

fn closed_conn(handle: SocketHandle, remote: Ipv4Addr) -> Conn {
    let (_, from_app) = mpsc::channel(1);
    Conn {
        handle,
        remote,
        from_app,
        to_app: None,
        pending: None,
        app_eof: true,
        fin_sent: true,
    }
}

/// Joins a stream (once `open` yields it) to a pair of channels: what the application sends comes
/// out of the first, what is sent into the second goes to the application. Either side failing or
/// finishing closes its channel, which the stack turns into a FIN or an RST.
fn bridge<S, F>(open: F, wake: Arc<Notify>) -> (mpsc::Receiver<Bytes>, mpsc::Sender<Bytes>)
where
    S: Stream,
    F: std::future::Future<Output = std::io::Result<S>> + Send + 'static,
{
    let (from_app_tx, from_app_rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let (to_app_tx, mut to_app_rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        let stream = match open.await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "tunnel connection: the local end did not open");
                drop((from_app_tx, to_app_rx));
                wake.notify_one();
                return;
            }
        };
        let (mut reader, mut writer) = tokio::io::split(stream);
        let wake_reader = wake.clone();
        let read = async move {
            loop {
                let mut buf = BytesMut::with_capacity(CHUNK);
                match reader.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if from_app_tx.send(buf.freeze()).await.is_err() {
                            break;
                        }
                        wake_reader.notify_one();
                    }
                }
            }
            drop(from_app_tx);
            wake_reader.notify_one();
        };
        let write = async move {
            while let Some(chunk) = to_app_rx.recv().await {
                // Room in the channel again: the stack may read more from its socket.
                wake.notify_one();
                if writer.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
            drop(to_app_rx);
            wake.notify_one();
        };
        tokio::join!(read, write);
    });
    (from_app_rx, to_app_tx)
}

/// Per-remote connection counts (for status pages).
pub fn count_by_remote(stack: &Stack) -> HashMap<Ipv4Addr, usize> {
    let mut counts = HashMap::new();
    for conn in &stack.conns {
        *counts.entry(conn.remote).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stacks wired back to back (no WireGuard): a connection through them carries bytes both
    /// ways and closes cleanly.
    #[tokio::test]
    async fn two_stacks_back_to_back_carry_a_tcp_echo() {
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let wake = Arc::new(Notify::new());
        let start = std::time::Instant::now();
        let now = || Instant::from_micros(start.elapsed().as_micros() as i64);
        let mut client = Stack::new(
            Ipv4Addr::new(10, 99, 1, 2),
            16,
            StackConfig::default(),
            wake.clone(),
            now(),
        );
        let mut server = Stack::new(
            Ipv4Addr::new(10, 99, 0, 1),
            16,
            StackConfig::default(),
            wake.clone(),
            now(),
        );
        server.listen(80, echo_addr);
        let (app, stack_end) = tokio::io::duplex(64 * 1024);
        client.connect("10.99.0.1:80".parse().unwrap(), stack_end);

        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expect = payload.clone();
        let io = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(app);
            let writer = async move {
                w.write_all(&payload).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let reader = async move {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                got
            };
            let ((), got) = tokio::join!(writer, reader);
            got
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !io.is_finished() {
            client.run(now());
            server.run(now());
            let mut moved = false;
            while let Some(p) = client.pop_packet() {
                server.push_packet(&p);
                moved = true;
            }
            while let Some(p) = server.pop_packet() {
                client.push_packet(&p);
                moved = true;
            }
            if !moved {
                let _ = tokio::time::timeout(Duration::from_millis(5), wake.notified()).await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "echo through two stacks timed out"
            );
        }
        assert_eq!(io.await.unwrap(), expect);
    }
}
