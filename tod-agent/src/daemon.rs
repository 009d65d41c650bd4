//! `tod-agent run` and `tod-agent status`: the pipeline with its operational surface — a status
//! file rewritten every few seconds, a Prometheus `/metrics` endpoint on loopback, and a graceful
//! stop that flushes the spool.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tod_core::DeviceId;

use crate::clock::Clock;
use crate::config::{AgentConfig, UplinkKind};
use crate::forward::{ForwardConfig, ForwardStats};
use crate::pipeline::Pipeline;
use crate::poll::breaker::BreakerConfig;
use crate::poll::collector::Target;
use crate::poll::scheduler::{DevicePollState, PollerConfig};
use crate::routeros::client::ClientConfig;
use crate::spool::{SpoolLimits, SpoolStats};
use crate::uplink::Uplink;
use crate::uplink::http::HttpUplink;
use crate::uplink::mqtt::{MqttConfig, MqttUplink};
use crate::uplink::nats::{NatsConfig, NatsUplink};
use tod_tunnel::client::{ClientConfig as TunnelConfig, Forward, Tunnel};

/// What `status.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusFile {
    /// When it was written, ms since the epoch.
    pub written_ms: i64,
    /// Spool depth and counters.
    pub spool_pending: u64,
    /// Bytes on disk.
    pub spool_bytes: u64,
    /// Records dropped by spool bounds, ever.
    pub spool_dropped: u64,
    /// Batches delivered since start.
    pub batches: u64,
    /// Reports delivered since start.
    pub reports: u64,
    /// Failed delivery attempts since start.
    pub retries: u64,
    /// Batches rejected by the server since start.
    pub rejected: u64,
    /// Last successful delivery, ms since the epoch.
    pub last_delivery_ms: Option<i64>,
    /// Per device.
    pub devices: Vec<(DeviceId, DevicePollState)>,
    /// The WireGuard tunnel, when one is configured.
    #[serde(default)]
    pub tunnel: Option<TunnelState>,
}

/// The tunnel's part of the status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TunnelState {
    /// A session younger than WireGuard's reject-after time exists.
    pub up: bool,
    /// The gateway address in use.
    pub endpoint: Option<String>,
    /// Seconds since the last completed handshake.
    pub since_handshake_secs: Option<f64>,
    /// Payload bytes sent through the tunnel.
    pub tx_bytes: u64,
    /// Payload bytes received.
    pub rx_bytes: u64,
    /// TCP connections open inside it.
    pub connections: usize,
    /// Times the UDP socket was rebound after a stall.
    pub rebinds: u64,
}

impl From<tod_tunnel::client::TunnelStatus> for TunnelState {
    fn from(s: tod_tunnel::client::TunnelStatus) -> Self {
        Self {
            up: s.up,
            endpoint: s.endpoint.map(|e| e.to_string()),
            since_handshake_secs: s.since_handshake.map(|d| d.as_secs_f64()),
            tx_bytes: s.tx_bytes,
            rx_bytes: s.rx_bytes,
            connections: s.connections,
            rebinds: s.rebinds,
        }
    }
}

/// The parts of a running pipeline the status writer and `/metrics` read.
#[derive(Clone)]
struct Observed {
    spool: Arc<std::sync::Mutex<crate::spool::Spool>>,
    stats: Arc<std::sync::Mutex<ForwardStats>>,
    devices: crate::poll::scheduler::StatusTable,
    tunnel: Option<Arc<Tunnel>>,
}

impl Observed {
    fn of(p: &Pipeline, tunnel: Option<Arc<Tunnel>>) -> Self {
        Self {
            spool: p.spool.clone(),
            stats: p.stats.clone(),
            devices: p.devices.clone(),
            tunnel,
        }
    }
}

fn snapshot(p: &Observed) -> StatusFile {
    let spool: SpoolStats = p.spool.lock().expect("spool lock").stats();
    let fwd: ForwardStats = *p.stats.lock().expect("stats lock");
    let mut devices: Vec<(DeviceId, DevicePollState)> = p
        .devices
        .lock()
        .expect("status lock")
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    devices.sort_by_key(|d| d.0);
    StatusFile {
        written_ms: chrono::Utc::now().timestamp_millis(),
        spool_pending: spool.pending,
        spool_bytes: spool.bytes,
        spool_dropped: spool.dropped,
        batches: fwd.batches,
        reports: fwd.reports,
        retries: fwd.retries,
        rejected: fwd.rejected,
        last_delivery_ms: fwd.last_delivery_ms,
        devices,
        tunnel: p.tunnel.as_ref().map(|t| t.status().into()),
    }
}

/// Prometheus text exposition of a status snapshot.
pub fn metrics_text(s: &StatusFile) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let ok = s
        .devices
        .iter()
        .filter(|d| d.1.failures == 0 && d.1.last_ok_ms.is_some())
        .count();
    let failing = s.devices.iter().filter(|d| d.1.failures > 0).count();
    let unknown = s.devices.len() - ok - failing;
    metric(
        "tod_agent_devices",
        "gauge",
        "Devices by poll state.",
        &[
            ("{state=\"ok\"}".into(), ok as f64),
            ("{state=\"failing\"}".into(), failing as f64),
            ("{state=\"unknown\"}".into(), unknown as f64),
        ],
    );
    let (polls_ok, polls_failed) = s
        .devices
        .iter()
        .fold((0, 0), |a, d| (a.0 + d.1.polls_ok, a.1 + d.1.polls_failed));
    metric(
        "tod_agent_polls_total",
        "counter",
        "Polls by result.",
        &[
            ("{result=\"ok\"}".into(), polls_ok as f64),
            ("{result=\"failed\"}".into(), polls_failed as f64),
        ],
    );
    metric(
        "tod_agent_spool_pending_records",
        "gauge",
        "Reports waiting for delivery.",
        &[(String::new(), s.spool_pending as f64)],
    );
    metric(
        "tod_agent_spool_bytes",
        "gauge",
        "Bytes in the spool.",
        &[(String::new(), s.spool_bytes as f64)],
    );
    metric(
        "tod_agent_spool_dropped_records_total",
        "counter",
        "Reports dropped by spool bounds.",
        &[(String::new(), s.spool_dropped as f64)],
    );
    metric(
        "tod_agent_uplink_batches_total",
        "counter",
        "Batches delivered.",
        &[(String::new(), s.batches as f64)],
    );
    metric(
        "tod_agent_uplink_reports_total",
        "counter",
        "Reports delivered.",
        &[(String::new(), s.reports as f64)],
    );
    metric(
        "tod_agent_uplink_retries_total",
        "counter",
        "Failed delivery attempts.",
        &[(String::new(), s.retries as f64)],
    );
    metric(
        "tod_agent_uplink_rejected_total",
        "counter",
        "Batches rejected by the server.",
        &[(String::new(), s.rejected as f64)],
    );
    if let Some(t) = &s.tunnel {
        metric(
            "tod_agent_tunnel_up",
            "gauge",
            "1 while the WireGuard tunnel has a live session.",
            &[(String::new(), if t.up { 1.0 } else { 0.0 })],
        );
        if let Some(age) = t.since_handshake_secs {
            metric(
                "tod_agent_tunnel_handshake_age_seconds",
                "gauge",
                "Time since the tunnel's last handshake.",
                &[(String::new(), age)],
            );
        }
        metric(
            "tod_agent_tunnel_bytes_total",
            "counter",
            "Payload bytes through the tunnel.",
            &[
                ("{direction=\"tx\"}".into(), t.tx_bytes as f64),
                ("{direction=\"rx\"}".into(), t.rx_bytes as f64),
            ],
        );
    }
    if let Some(ms) = s.last_delivery_ms {
        metric(
            "tod_agent_last_delivery_timestamp_seconds",
            "gauge",
            "Time of the last delivery.",
            &[(String::new(), ms as f64 / 1000.0)],
        );
    }
    out
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// The status file's path for a configuration.
pub fn status_path(cfg: &AgentConfig) -> PathBuf {
    cfg.spool.dir.join("status.json")
}

/// Resolves every configured device into a poll target.
pub async fn targets(cfg: &AgentConfig) -> Result<Vec<Target>, String> {
    let mut out = Vec::with_capacity(cfg.devices.len());
    for (i, d) in cfg.devices.iter().enumerate() {
        let transport = d.transport(i).map_err(|e| e.to_string())?;
        let address = format!("{}:{}", d.host, d.api_port());
        let addr = tokio::net::lookup_host(&address)
            .await
            .map_err(|e| format!("devices[{i}].host: cannot resolve {address}: {e}"))?
            .next()
            .ok_or_else(|| format!("devices[{i}].host: {address} resolves to nothing"))?;
        out.push(Target {
            id: d.id,
            addr,
            host: d.host.clone(),
            transport,
            credentials: cfg.credentials_for(d),
        });
    }
    Ok(out)
}

/// A device as the server lists it for this agent (`GET /api/agent/devices`).
#[derive(Debug, serde::Deserialize)]
struct ServerDevice {
    id: tod_core::DeviceId,
    host: String,
    port: u16,
    transport: String,
    fingerprint: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Fetches this agent's site's devices from the server and resolves them into targets. A device
/// that cannot be polled as listed (no login and no `[[credentials]]` to fall back on, a
/// `tls_verified` device without a local CA, an unresolvable host) is left out with a warning.
pub async fn pull_targets(cfg: &AgentConfig) -> Result<Vec<Target>, String> {
    use crate::config::{ApiTransport, DeviceEntry};
    use crate::routeros::client::Credentials;
    use http_body_util::{BodyExt, Empty};
    let token = cfg
        .agent
        .token
        .clone()
        .or_else(|| cfg.agent.enrolment_token.clone())
        .ok_or("agent.token: required to pull the device list")?;
    let tcp = tokio::net::TcpStream::connect(&cfg.server.ingest)
        .await
        .map_err(|e| format!("device list: connect {}: {e}", cfg.server.ingest))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(|e| format!("device list: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/api/agent/devices")
        .header(hyper::header::HOST, cfg.server.ingest.as_str())
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .map_err(|_| "device list: no answer within 30 s".to_owned())?
        .map_err(|e| format!("device list: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("device list: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "device list: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let listed: Vec<ServerDevice> = serde_json::from_slice(&body).map_err(|e| format!("device list: {e}"))?;
    let fallback = cfg.credentials.first();
    let mut out = Vec::with_capacity(listed.len());
    for d in listed {
        let credentials = match (d.username, d.password, fallback) {
            (Some(username), Some(password), _) => Credentials { username, password },
            (_, _, Some(p)) => Credentials {
                username: p.username.clone(),
                password: p.password.clone(),
            },
            _ => {
                tracing::warn!(device = %d.id, "listed without a login and no [[credentials]] to use; skipped");
                continue;
            }
        };
        // The server lists devices in the configuration's own terms: read them the same way.
        let Ok(kind) = serde_json::from_value::<ApiTransport>(serde_json::Value::String(d.transport.clone())) else {
            tracing::warn!(device = %d.id, transport = %d.transport, "unknown transport; skipped");
            continue;
        };
        let entry = DeviceEntry {
            id: d.id,
            host: d.host.clone(),
            port: Some(d.port),
            transport: kind,
            fingerprint: d.fingerprint,
            ca_file: None,
            credentials: String::new(),
        };
        let transport = match entry.transport(0) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(device = %d.id, error = %e, "cannot be polled as listed; skipped");
                continue;
            }
        };
        let address = format!("{}:{}", d.host, d.port);
        let Some(addr) = tokio::net::lookup_host(&address).await.ok().and_then(|mut a| a.next()) else {
            tracing::warn!(device = %d.id, %address, "does not resolve; skipped");
            continue;
        };
        out.push(Target {
            id: d.id,
            addr,
            host: d.host,
            transport,
            credentials,
        });
    }
    Ok(out)
}

/// Starts the tunnel, if one is configured, and points the uplink addresses that lie inside it at
/// local port forwards (kept open while the returned values live).
pub async fn start_tunnel(cfg: &mut AgentConfig) -> Result<Option<(Arc<Tunnel>, Vec<Forward>)>, String> {
    let Some(t) = cfg.tunnel.clone() else { return Ok(None) };
    let private_key = t.private_key().map_err(|e| e.to_string())?;
    let server_key = t
        .server_public_key
        .parse()
        .map_err(|e| format!("tunnel.server_public_key: {e}"))?;
    let tunnel = Arc::new(Tunnel::start(TunnelConfig {
        private_key,
        server_key,
        endpoint: cfg.server.endpoint.clone(),
        address: t.address,
        prefix: t.prefix,
        keepalive: (t.keepalive_secs > 0).then_some(t.keepalive_secs),
        stack: Default::default(),
    }));
    let mut forwards = Vec::new();
    // host:port of each uplink address; those inside the tunnel go through a forward.
    for (field, value) in [
        ("server.ingest", &mut cfg.server.ingest),
        ("server.nats", &mut cfg.server.nats),
        ("server.mqtt", &mut cfg.server.mqtt),
    ] {
        let (scheme, hostport) = match value.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_owned()), rest.to_owned()),
            None => (None, value.clone()),
        };
        let Ok(remote) = hostport.parse::<std::net::SocketAddrV4>() else {
            continue;
        };
        if !t.contains(*remote.ip()) {
            continue;
        }
        let fwd = tunnel
            .forward((std::net::Ipv4Addr::LOCALHOST, 0).into(), remote)
            .await
            .map_err(|e| format!("{field}: local forward: {e}"))?;
        let local = fwd.local_addr().to_string();
        tracing::info!(field, %remote, %local, "uplink through the tunnel");
        *value = match scheme {
            Some(scheme) => format!("{scheme}://{local}"),
            None => local,
        };
        forwards.push(fwd);
    }
    Ok(Some((tunnel, forwards)))
}

/// Runs the agent until `shutdown` resolves, then stops gracefully.
pub async fn run(cfg: AgentConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<(), String> {
    run_with_clock(cfg, Clock::System, shutdown).await
}

/// [`run`] with the wall clock the agent stamps its data with: an accelerated one plays weeks in
/// minutes (the field-truth scorer's long runs, where the server reads the same clock). Waiting
/// stays real time: the poll interval and backoff are the configuration's.
pub async fn run_with_clock(
    mut cfg: AgentConfig,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let tunnel = start_tunnel(&mut cfg).await?;
    let targets = targets(&cfg).await?;
    let interval = Duration::from_secs(cfg.poll.interval_secs);
    let poller = PollerConfig {
        interval,
        health_every: 5,
        connect_concurrency: cfg.poll.connect_concurrency,
        client: ClientConfig::default(),
        breaker: BreakerConfig {
            base_secs: cfg.poll.backoff_base_secs,
            max_secs: cfg.poll.backoff_max_secs,
            ..BreakerConfig::default()
        },
        clock,
    };
    let limits = SpoolLimits {
        max_bytes: cfg.spool.max_bytes,
        max_age_ms: cfg.spool.max_age_hours as i64 * 3_600_000,
        commit_window: Duration::from_millis(cfg.spool.commit_window_ms),
        ..SpoolLimits::default()
    };
    let (uplink, max_batch): (Arc<dyn Uplink>, usize) = match cfg.server.uplink {
        UplinkKind::Http => {
            let mut http = HttpUplink::new(cfg.server.ingest.clone());
            http.token = cfg.agent.token.clone().or_else(|| cfg.agent.enrolment_token.clone());
            (Arc::new(http), 500)
        }
        UplinkKind::Nats => {
            let nats = NatsConfig {
                url: cfg.server.nats.clone(),
                ..NatsConfig::default()
            };
            // Connects at its first delivery: an unreachable broker delays delivery, never polling.
            let up = NatsUplink::new(&nats, cfg.agent.id);
            // Keep messages well under the broker's default 1 MiB payload limit.
            (Arc::new(up), 100)
        }
        UplinkKind::Mqtt => {
            let (host, port) = cfg.server.mqtt.rsplit_once(':').expect("validated host:port");
            let mqtt = MqttConfig {
                host: host.to_owned(),
                port: port.parse().expect("validated port"),
                ..MqttConfig::default()
            };
            (Arc::new(MqttUplink::start(&mqtt, cfg.agent.id)), 100)
        }
    };
    let forward = ForwardConfig {
        agent: cfg.agent.id,
        max_batch,
        retry_min: Duration::from_secs(1),
        retry_max: Duration::from_secs(60),
        rejected_dir: cfg.spool.dir.join("rejected"),
        linger: Duration::from_secs(1),
        clock,
    };
    let configured = targets.clone();
    let mut pipeline = Pipeline::start(targets, poller, cfg.spool.dir.join("queue"), limits, uplink, forward)
        .map_err(|e| format!("spool.dir {}: {e}", cfg.spool.dir.display()))?;
    let observed = Observed::of(&pipeline, tunnel.as_ref().map(|t| t.0.clone()));
    let status_file = status_path(&cfg);
    if !cfg.metrics.listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&cfg.metrics.listen)
            .await
            .map_err(|e| format!("metrics.listen {}: {e}", cfg.metrics.listen))?;
        let p = observed.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let p = p.clone();
                async move {
                    // Off the runtime's workers: the spool's lock is held across disk syncs.
                    let text = tokio::task::spawn_blocking(move || metrics_text(&snapshot(&p)))
                        .await
                        .expect("metrics render");
                    ([("content-type", "text/plain; version=0.0.4")], text)
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let writer = {
        let (p, path) = (observed.clone(), status_file.clone());
        tokio::spawn(async move {
            loop {
                let (p, path) = (p.clone(), path.clone());
                let written = tokio::task::spawn_blocking(move || {
                    let json = serde_json::to_vec_pretty(&snapshot(&p)).expect("status serialises");
                    write_atomically(&path, &json)
                })
                .await;
                if let Ok(Err(e)) = written {
                    tracing::warn!(error = %e, "cannot write the status file");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };
    tracing::info!(devices = cfg.devices.len(), ingest = %cfg.server.ingest, "agent running");
    if cfg.server.pull_devices {
        // The server's list, re-read every interval, on top of the configured devices.
        let mut shutdown = std::pin::pin!(shutdown);
        let mut every = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = every.tick() => match pull_targets(&cfg).await {
                    Ok(pulled) => {
                        let mut all = configured.clone();
                        all.extend(pulled.into_iter().filter(|p| configured.iter().all(|c| c.id != p.id)));
                        let (started, stopped) = pipeline.set_targets(all).await;
                        if started + stopped > 0 {
                            tracing::info!(started, stopped, "device list changed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "device list not refreshed"),
                },
            }
        }
    } else {
        shutdown.await;
    }
    tracing::info!("stopping: finishing polls and flushing the spool");
    writer.abort();
    pipeline.stop(Duration::from_secs(10)).await;
    let json = serde_json::to_vec_pretty(&snapshot(&observed)).expect("status serialises");
    if let Err(e) = write_atomically(&status_file, &json) {
        tracing::warn!(error = %e, "cannot write the final status file");
    }
    Ok(())
}

/// Renders `status.json` for `tod-agent status`.
pub fn render_status(s: &StatusFile, now_ms: i64) -> String {
    let ago = |ms: Option<i64>| {
        ms.map_or("never".to_owned(), |m| {
            format!("{:.0} s ago", (now_ms - m) as f64 / 1000.0)
        })
    };
    let mut out = format!(
        "status written {}\nspool: {} pending, {} bytes, {} dropped by bounds\ndelivery: {} batches, {} reports, {} retries, {} rejected, last {}\n",
        ago(Some(s.written_ms)),
        s.spool_pending,
        s.spool_bytes,
        s.spool_dropped,
        s.batches,
        s.reports,
        s.retries,
        s.rejected,
        ago(s.last_delivery_ms)
    );
    if let Some(t) = &s.tunnel {
        let _ = writeln!(
            out,
            "tunnel: {} via {}, last handshake {}, {} bytes out, {} bytes in, {} connections",
            if t.up { "up" } else { "DOWN" },
            t.endpoint.as_deref().unwrap_or("(unresolved)"),
            t.since_handshake_secs
                .map_or("never".to_owned(), |s| format!("{s:.0} s ago")),
            t.tx_bytes,
            t.rx_bytes,
            t.connections
        );
    }
    let _ = writeln!(
        out,
        "{:<38} {:>9} {:>7} {:>14}  last error",
        "device", "ok polls", "failed", "last ok"
    );
    for (id, d) in &s.devices {
        let _ = writeln!(
            out,
            "{:<38} {:>9} {:>7} {:>14}  {}",
            id,
            d.polls_ok,
            d.polls_failed,
            ago(d.last_ok_ms),
            d.last_error.as_deref().unwrap_or("-")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(tunnel: Option<TunnelState>) -> StatusFile {
        StatusFile {
            written_ms: 1_000_000,
            spool_pending: 0,
            spool_bytes: 0,
            spool_dropped: 0,
            batches: 0,
            reports: 0,
            retries: 0,
            rejected: 0,
            last_delivery_ms: None,
            devices: Vec::new(),
            tunnel,
        }
    }

    #[test]
    fn a_down_tunnel_shows_in_status_and_metrics() {
        let down = TunnelState {
            up: false,
            endpoint: Some("192.0.2.1:51820".into()),
            since_handshake_secs: Some(400.0),
            tx_bytes: 10,
            rx_bytes: 0,
            connections: 1,
            rebinds: 3,
        };
        let s = status(Some(down));
        assert!(render_status(&s, 1_000_000).contains("tunnel: DOWN via 192.0.2.1:51820"));
        let m = metrics_text(&s);
        assert!(m.contains("tod_agent_tunnel_up 0"), "{m}");
        assert!(m.contains("tod_agent_tunnel_handshake_age_seconds 400"), "{m}");
        // A status file from before the tunnel existed still reads, and shows no tunnel lines.
        let old: StatusFile = serde_json::from_str(
            r#"{"written_ms":1,"spool_pending":0,"spool_bytes":0,"spool_dropped":0,"batches":0,
                "reports":0,"retries":0,"rejected":0,"last_delivery_ms":null,"devices":[]}"#,
        )
        .unwrap();
        assert!(old.tunnel.is_none());
        assert!(!metrics_text(&status(None)).contains("tunnel"));
    }
}
