//! Agent tunnel ↔ embedded gateway over loopback UDP: data both ways, roaming, a gateway restart,
//! revocation, and what the gateway drops (unknown peers, bad MACs, spoofed sources, junk).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tod_tunnel::client::{ClientConfig, Tunnel};
use tod_tunnel::gateway::{Gateway, GatewayConfig, PeerConfig};
use tod_tunnel::stack::StackConfig;
use tod_tunnel::{Key, PrivateKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const ECHO_PORT: u16 = 7;

/// A TCP echo service on loopback, and how many connections it holds open.
async fn echo_service() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let counter = open.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = counter.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, open)
}

async fn gateway(listen: SocketAddr, key: &PrivateKey, echo: SocketAddr) -> Gateway {
    Gateway::start(GatewayConfig {
        listen,
        private_key: key.clone(),
        address: GATEWAY_IP,
        prefix: 16,
        forwards: vec![(ECHO_PORT, echo)],
        stack: StackConfig::default(),
    })
    .await
    .unwrap()
}

fn client(key: &PrivateKey, server: Key, endpoint: SocketAddr, address: Ipv4Addr) -> Tunnel {
    Tunnel::start(ClientConfig {
        private_key: key.clone(),
        server_key: server,
        endpoint: endpoint.to_string(),
        address,
        prefix: 16,
        keepalive: Some(25),
        stack: StackConfig::default(),
    })
}

/// Sends `len` patterned bytes through `stream` and checks the echo, with a deadline.
async fn round_trip(mut stream: TcpStream, len: usize, within: Duration) -> anyhow::Result<()> {
    let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let (mut r, mut w) = stream.split();
    let send = async {
        w.write_all(&payload).await?;
        anyhow::Ok(())
    };
    let recv = async {
        let mut got = vec![0u8; len];
        r.read_exact(&mut got).await?;
        anyhow::Ok(got)
    };
    let (sent, got) = tokio::time::timeout(within, async { tokio::join!(send, recv) }).await?;
    sent?;
    anyhow::ensure!(got? == payload, "echo differs");
    Ok(())
}

async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_gateway_carry_tcp_both_ways_and_survive_roaming_and_a_gateway_restart() {
    let (echo, echo_open) = echo_service().await;
    let gw_key = PrivateKey::generate().unwrap();
    let agent_key = PrivateKey::generate().unwrap();
    let agent_ip = Ipv4Addr::new(10, 99, 1, 2);
    let gw = gateway("127.0.0.1:0".parse().unwrap(), &gw_key, echo).await;
    let gw_addr = gw.local_addr();
    let peers = vec![PeerConfig {
        key: agent_key.public_key(),
        address: agent_ip,
        label: "tenant-a/agent-1".into(),
    }];
    gw.set_peers(peers.clone()).await.unwrap();

    let tunnel = client(&agent_key, gw.public_key(), gw_addr, agent_ip);
    let fwd = tunnel
        .forward("127.0.0.1:0".parse().unwrap(), SocketAddrV4::new(GATEWAY_IP, ECHO_PORT))
        .await
        .unwrap();

    // 1 MiB each way through one connection.
    let s = TcpStream::connect(fwd.local_addr()).await.unwrap();
    round_trip(s, 1 << 20, Duration::from_secs(30)).await.unwrap();
    // Both ends' status is refreshed four times a second.
    wait_for("the agent's byte counts", Duration::from_secs(2), || {
        let s = tunnel.status();
        s.up && s.tx_bytes > 1 << 20 && s.rx_bytes > 1 << 20
    })
    .await;
    wait_for("the gateway's byte counts", Duration::from_secs(2), || {
        gw.peers()[0].up && gw.peers()[0].rx_bytes > 1 << 20
    })
    .await;
    let status = tunnel.status();
    let peer = &gw.peers()[0];
    assert_eq!(peer.endpoint.map(|e| e.port()), status.local.map(|l| l.port()));

    // The agent's address changes (a new source port): the gateway follows.
    let new_local = tunnel.rebind().await.unwrap();
    let s = TcpStream::connect(fwd.local_addr()).await.unwrap();
    round_trip(s, 64 * 1024, Duration::from_secs(30)).await.unwrap();
    wait_for("the gateway to follow the roam", Duration::from_secs(5), || {
        gw.peers()[0].endpoint.map(|e| e.port()) == Some(new_local.port())
    })
    .await;

    // A port the gateway does not forward is refused, not hung.
    let mut s = TcpStream::connect(fwd.local_addr()).await.unwrap();
    drop(fwd);
    let mut other = tunnel.connect(SocketAddrV4::new(GATEWAY_IP, 9999)).await.unwrap();
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), other.read(&mut byte))
        .await
        .expect("a refused connection ends promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing comes back from an unforwarded port");
    let _ = s.shutdown().await;

    // The gateway restarts on the same address with the same key; the agent recovers by itself.
    drop(gw);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gw = gateway(gw_addr, &gw_key, echo).await;
    gw.set_peers(peers).await.unwrap();
    let fwd = tunnel
        .forward("127.0.0.1:0".parse().unwrap(), SocketAddrV4::new(GATEWAY_IP, ECHO_PORT))
        .await
        .unwrap();
    let s = TcpStream::connect(fwd.local_addr()).await.unwrap();
    round_trip(s, 256 * 1024, Duration::from_secs(60))
        .await
        .expect("the tunnel comes back after a gateway restart");
    wait_for(
        "the restarted gateway to show the peer up",
        Duration::from_secs(2),
        || gw.peers()[0].up,
    )
    .await;

    // Revocation ends the session and cuts the peer's open connection to the service at once.
    let mut open = TcpStream::connect(fwd.local_addr()).await.unwrap();
    open.write_all(b"ping").await.unwrap();
    let mut pong = [0u8; 4];
    open.read_exact(&mut pong).await.unwrap();
    assert!(echo_open.load(Ordering::SeqCst) >= 1);
    gw.set_peers(Vec::new()).await.unwrap();
    wait_for(
        "the revoked peer's service connection to close",
        Duration::from_secs(5),
        || echo_open.load(Ordering::SeqCst) == 0,
    )
    .await;
    assert!(gw.peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_drops_and_counts_unknown_peers_bad_macs_spoofed_sources_and_junk() {
    let (echo, _) = echo_service().await;
    let gw_key = PrivateKey::generate().unwrap();
    let gw = gateway("127.0.0.1:0".parse().unwrap(), &gw_key, echo).await;
    let known = PrivateKey::generate().unwrap();
    gw.set_peers(vec![PeerConfig {
        key: known.public_key(),
        address: Ipv4Addr::new(10, 99, 1, 2),
        label: "known".into(),
    }])
    .await
    .unwrap();

    // Junk and a handshake-sized datagram with a wrong MAC.
    let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    raw.send_to(b"hello", gw.local_addr()).await.unwrap();
    let mut forged = vec![0u8; 148];
    forged[0] = 1;
    raw.send_to(&forged, gw.local_addr()).await.unwrap();
    wait_for("junk and bad MAC counted", Duration::from_secs(5), || {
        let c = gw.counters();
        c.malformed >= 1 && c.bad_mac >= 1
    })
    .await;

    // A stranger's handshake: a valid MAC (it knows the gateway's public key) but no peer.
    let stranger = client(
        &PrivateKey::generate().unwrap(),
        gw.public_key(),
        gw.local_addr(),
        Ipv4Addr::new(10, 99, 1, 9),
    );
    wait_for("the stranger counted", Duration::from_secs(5), || {
        gw.counters().unknown_peer >= 1
    })
    .await;
    assert!(!stranger.status().up);

    // A known key claiming another tunnel address: its packets are decrypted and dropped.
    let liar = client(&known, gw.public_key(), gw.local_addr(), Ipv4Addr::new(10, 99, 1, 3));
    let _attempt = liar.connect(SocketAddrV4::new(GATEWAY_IP, ECHO_PORT)).await.unwrap();
    wait_for("the spoofed source counted", Duration::from_secs(10), || {
        gw.counters().spoofed >= 1
    })
    .await;
    assert_eq!(
        gw.peers()[0].connections,
        0,
        "nothing from a spoofed source reaches a service"
    );
}
