//! TOD's userspace WireGuard: the agent's tunnel to tod-server and the server's embedded gateway.
//!
//! boringtun does the Noise IK handshake and the transport; smoltcp is the TCP/IP stack, so TCP
//! connections run inside the tunnel without a TUN device, root or `CAP_NET_ADMIN`. The pieces:
//!
//! - [`stack`]: one smoltcp interface over an in-memory packet queue, and the bridge between its
//!   TCP sockets and tokio streams (a local port forward, an in-process stream, a forwarded service).
//! - [`client`]: the agent's side, one peer (the server), dialled out from behind NAT: local port
//!   forwards (`127.0.0.1:PORT` → tunnel address), handshake retry, rekey and persistent keepalive by
//!   boringtun's timers, re-resolution of the endpoint and a fresh source port when the tunnel stalls.
//! - [`gateway`]: the server's side, many peers on one UDP socket: peers found by their static key
//!   or session index, roaming followed, packets from unknown peers, with bad MACs or with a source
//!   address that is not the peer's own dropped and counted; TCP to a fixed set of ports forwarded to
//!   the server's own services, nothing routed between peers.
//!
//! Interoperates with standard WireGuard (wireguard-go, the kernel module): the tests prove it.

pub mod client;
pub mod gateway;
pub mod stack;

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
pub use boringtun::x25519::{PublicKey, StaticSecret};

/// The inner MTU: 1500 on the wire less the largest WireGuard overhead (IPv6 40 + UDP 8 + 32).
pub const DEFAULT_MTU: usize = 1420;

/// boringtun's timers want a call about every quarter second.
pub(crate) const TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// A session older than this (with no rekey) is no longer usable: WireGuard's REJECT_AFTER_TIME.
pub(crate) const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(180);

/// smoltcp's clock: time since the tunnel task started.
pub(crate) fn smol_now(start: std::time::Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(start.elapsed().as_micros() as i64)
}

/// Kernel buffer asked for on each tunnel UDP socket: many TCP windows in flight at once must not
/// overflow it, or every connection stalls on retransmission timers.
const UDP_BUFFER: usize = 4 << 20;

/// A non-blocking UDP socket on `addr` with large kernel buffers (the kernel may grant less),
/// known to be writable: tokio's `try_send` on a socket whose readiness was never observed fails
/// with `WouldBlock`, which silently dropped a fresh tunnel's first handshake.
pub(crate) async fn bind_udp(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let socket = tokio::net::UdpSocket::from_std(socket.into())?;
    socket.writable().await?;
    Ok(socket)
}

/// What went wrong with the tunnel.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// A key that is not 32 bytes of base64.
    #[error("invalid WireGuard key: {0}")]
    Key(String),
    /// A socket could not be bound or used.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The tunnel task has stopped.
    #[error("the tunnel has stopped")]
    Stopped,
    /// The random source failed.
    #[error("random source: {0}")]
    Random(String),
}

/// A WireGuard private key (Curve25519), shown base64 as `wg` does; never printed by `Debug`.
#[derive(Clone)]
pub struct PrivateKey(StaticSecret);

impl PrivateKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, TunnelError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| TunnelError::Random(e.to_string()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// A key from its 32 bytes (clamped by x25519 when used).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    /// Its public half.
    pub fn public_key(&self) -> Key {
        Key(PublicKey::from(&self.0).to_bytes())
    }

    /// The key, base64.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.to_bytes())
    }

    pub(crate) fn secret(&self) -> StaticSecret {
        self.0.clone()
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public {})", self.public_key())
    }
}

impl FromStr for PrivateKey {
    type Err = TunnelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from_bytes(decode_key(s)?))
    }
}

/// A WireGuard public key, base64 as `wg` shows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    pub(crate) fn public(&self) -> PublicKey {
        PublicKey::from(self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

impl FromStr for Key {
    type Err = TunnelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(decode_key(s)?))
    }
}

fn decode_key(s: &str) -> Result<[u8; 32], TunnelError> {
    let bytes = B64
        .decode(s.trim())
        .map_err(|e| TunnelError::Key(format!("not base64: {e}")))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| TunnelError::Key(format!("{} bytes, want 32", b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_base64_and_reject_wrong_lengths() {
        let k = PrivateKey::generate().unwrap();
        let again: PrivateKey = k.to_base64().parse().unwrap();
        assert_eq!(again.public_key(), k.public_key());
        let public: Key = k.public_key().to_string().parse().unwrap();
        assert_eq!(public, k.public_key());
        assert!("AAAA".parse::<Key>().is_err());
        assert!("not base64!".parse::<Key>().is_err());
        assert!(
            !format!("{k:?}").contains(&k.to_base64()),
            "Debug never shows the secret"
        );
    }

    #[test]
    fn public_key_matches_the_curve25519_test_vector() {
        // RFC 7748 §6.1: Alice's private and public keys.
        let private = hex_bytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = hex_bytes("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(PrivateKey::from_bytes(private).public_key(), Key(public));
    }

    fn hex_bytes(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
