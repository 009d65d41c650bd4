//! The userspace WireGuard tunnel over loopback: bulk TCP throughput agent → gateway → service
//! (one connection and eight at once), beside plain loopback TCP to the same service in the same
//! run as the physical reference, and the time from start to the first byte through a fresh tunnel
//! (handshake included).
//!
//! Run: `cargo bench -p tod-benches --bench tunnel` (`TOD_BENCH_TUNNEL_MIB=64` per run, 5 runs).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use tod_tunnel::PrivateKey;
use tod_tunnel::client::{ClientConfig, Tunnel};
use tod_tunnel::gateway::{Gateway, GatewayConfig, PeerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const SINK_PORT: u16 = 9;

/// A TCP sink that counts bytes and answers with the count as 8 bytes when the sender closes.
async fn sink() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut n: u64 = 0;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k as u64,
                    }
                }
                let _ = s.write_all(&n.to_le_bytes()).await;
            });
        }
    });
    addr
}

/// Sends `bytes` through `streams` connections to `to` at once; MiB/s of acknowledged bytes.
async fn push(to: SocketAddr, streams: usize, bytes: u64) -> f64 {
    let start = Instant::now();
    let per = bytes / streams as u64;
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(to).await.unwrap();
                let chunk = vec![0x5au8; 64 * 1024];
                let mut sent = 0;
                while sent < per {
                    let k = chunk.len().min((per - sent) as usize);
                    s.write_all(&chunk[..k]).await.unwrap();
                    sent += k as u64;
                }
                s.shutdown().await.unwrap();
                let mut count = [0u8; 8];
                s.read_exact(&mut count).await.unwrap();
                assert_eq!(u64::from_le_bytes(count), per, "every byte arrived");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per * streams as u64) as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mib: u64 = std::env::var("TOD_BENCH_TUNNEL_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64);
        let bytes = mib << 20;
        let service = sink().await;
        let gw_key = PrivateKey::generate().unwrap();
        let agent_key = PrivateKey::generate().unwrap();
        let agent_ip = Ipv4Addr::new(10, 99, 1, 2);
        let gw = Gateway::start(GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            private_key: gw_key,
            address: GATEWAY_IP,
            prefix: 16,
            forwards: vec![(SINK_PORT, service)],
            stack: Default::default(),
        })
        .await
        .unwrap();
        gw.set_peers(vec![PeerConfig {
            key: agent_key.public_key(),
            address: agent_ip,
            label: "bench".into(),
        }])
        .await
        .unwrap();

        let started = Instant::now();
        let tunnel = Tunnel::start(ClientConfig {
            private_key: agent_key,
            server_key: gw.public_key(),
            endpoint: gw.local_addr().to_string(),
            address: agent_ip,
            prefix: 16,
            keepalive: Some(25),
            stack: Default::default(),
        });
        let fwd = tunnel
            .forward("127.0.0.1:0".parse().unwrap(), SocketAddrV4::new(GATEWAY_IP, SINK_PORT))
            .await
            .unwrap();
        let through = fwd.local_addr();
        // First byte through a fresh tunnel: the handshake, the TCP handshake and one round trip.
        push(through, 1, 1).await;
        let first = started.elapsed();

        println!("tunnel over loopback, {mib} MiB per run, 5 runs (medians)");
        println!("first byte through a fresh tunnel: {:.2} ms", first.as_secs_f64() * 1000.0);
        for streams in [1usize, 8] {
            let mut plain = Vec::new();
            let mut tunneled = Vec::new();
            for _ in 0..5 {
                plain.push(push(service, streams, bytes).await);
                tunneled.push(push(through, streams, bytes).await);
            }
            let (p, t) = (median(plain), median(tunneled));
            println!(
                "{streams} connection(s): plain loopback TCP {p:.0} MiB/s, through the tunnel {t:.0} MiB/s ({:.1} Mbit/s), ratio {:.3}",
                t * 8.0 * 1.048_576,
                t / p
            );
        }
        let s = tunnel.status();
        println!(
            "tunnel status: up {}, {} bytes out, {} rejected, {} rebinds",
            s.up, s.tx_bytes, s.rejected, s.rebinds
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
}
