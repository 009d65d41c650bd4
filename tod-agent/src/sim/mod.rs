//! `tod-sim`: thousands of simulated MikroTik devices on loopback, each a real RouterOS API
//! endpoint (plain, and TLS when enabled), answering from a seeded world whose values are pure
//! functions of (seed, entity, simulated time).
//!
//! Used by the agent's tests, the benches, the demo and the field-truth scorer. Faults can be
//! flipped per device while it runs ([`state::Faults`]).

pub mod clock;
pub mod control;
pub mod menus;
mod server;
pub mod state;
pub mod truth;
pub mod world;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use self::clock::SimClock;
use self::state::{DeviceState, Faults};
use self::truth::{Change, Journal, Record, Truth};
use self::world::{Device, Package, World, unit};

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// World seed.
    pub seed: u64,
    /// Number of devices.
    pub devices: usize,
    /// Address to bind (port-per-device mode).
    pub bind: IpAddr,
    /// Give every device its own loopback address instead of its own port: device i listens on
    /// `ip_per_device + i` (within 127.0.0.0/8) at `base_port` (and `tls_base_port`).
    pub ip_per_device: Option<Ipv4Addr>,
    /// Plain API port of device 0 (device i gets `base_port + i`); 0 = any free port per device.
    pub base_port: u16,
    /// TLS API port of device 0; `None` = no TLS listeners; `Some(0)` = any free port.
    pub tls_base_port: Option<u16>,
    /// Serve api-ssl with anonymous Diffie-Hellman (no certificate), as a router with
    /// `certificate=none` does; needs the `openssl` feature.
    pub anonymous_tls: bool,
    /// The API user.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Simulated seconds per real second (0 = stepped by hand).
    pub speed: f64,
    /// Force `!empty` on (or off) regardless of version.
    pub empty_override: Option<bool>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            devices: 10,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip_per_device: None,
            base_port: 0,
            tls_base_port: None,
            anonymous_tls: false,
            username: "admin".into(),
            password: "admin".into(),
            speed: 1.0,
            empty_override: None,
        }
    }
}

pub(crate) struct Shared {
    pub(crate) world: World,
    pub(crate) states: Vec<DeviceState>,
    pub(crate) notify: Vec<Notify>,
    pub(crate) clock: SimClock,
    /// Every change made to the network, for the truth.
    journal: Journal,
    /// When each device booted before the world began.
    first_boot: Vec<f64>,
    pub(crate) username: String,
    pub(crate) password: String,
    empty_override: Option<bool>,
}

impl Shared {
    pub(crate) fn offline(&self, index: usize) -> bool {
        self.states[index]
            .faults()
            .offline_until
            .is_some_and(|until| self.clock.now() < until)
    }

    pub(crate) fn sends_empty(&self, device: &Device) -> bool {
        self.empty_override.unwrap_or(device.version.sends_empty())
    }
}

/// The ports one device listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePorts {
    /// Plain API.
    pub plain: SocketAddr,
    /// TLS API.
    pub tls: Option<SocketAddr>,
}

/// A running simulator. Dropping it stops every listener and session.
pub struct Simulator {
    shared: Arc<Shared>,
    ports: Vec<DevicePorts>,
    tasks: Vec<JoinHandle<()>>,
    cert_der: Option<Vec<u8>>,
    cert_pem: Option<String>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("devices", &self.ports.len())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Generates the world and starts a listener per device.
    pub async fn start(config: SimConfig) -> io::Result<Self> {
        let world = World::generate(config.seed, config.devices);
        // Devices booted at different times before the world's t = 0.
        let first_boot: Vec<f64> = world
            .devices
            .iter()
            .map(|d| -(86_400.0 * 30.0 * unit(d.seed, 99, 0)))
            .collect();
        let states = world
            .devices
            .iter()
            .zip(&first_boot)
            .map(|(d, boot)| DeviceState::new(*boot, d.package))
            .collect();
        let notify = world.devices.iter().map(|_| Notify::new()).collect();
        let shared = Arc::new(Shared {
            world,
            states,
            notify,
            clock: SimClock::new(0.0, config.speed),
            journal: Journal::default(),
            first_boot,
            username: config.username.clone(),
            password: config.password.clone(),
            empty_override: config.empty_override,
        });
        let (acceptor, cert_der, cert_pem) = match config.tls_base_port {
            Some(_) if config.anonymous_tls => {
                if !cfg!(feature = "openssl") {
                    return Err(io::Error::other("anonymous TLS needs the `openssl` feature"));
                }
                (Some(Acceptor::Anonymous), None, None)
            }
            Some(_) => {
                let (a, der, pem) = tls_acceptor().map_err(io::Error::other)?;
                (Some(Acceptor::Rustls(a)), Some(der), Some(pem))
            }
            None => (None, None, None),
        };
        let mut ports = Vec::with_capacity(config.devices);
        let mut tasks = Vec::with_capacity(config.devices * 2);
        for i in 0..shared.world.devices.len() {
            let (ip, port): (IpAddr, Box<dyn Fn(u16) -> u16 + Send + Sync>) = match config.ip_per_device {
                Some(first) => {
                    let ip = Ipv4Addr::from(
                        u32::from(first)
                            .checked_add(i as u32)
                            .filter(|a| a >> 24 == 127)
                            .ok_or_else(|| {
                                io::Error::new(
                                    io::ErrorKind::InvalidInput,
                                    "device addresses must stay inside 127.0.0.0/8",
                                )
                            })?,
                    );
                    (IpAddr::V4(ip), Box::new(|base: u16| base))
                }
                None => (
                    config.bind,
                    Box::new(move |base: u16| if base == 0 { 0 } else { base.saturating_add(i as u16) }),
                ),
            };
            let plain = TcpListener::bind(SocketAddr::new(ip, port(config.base_port))).await?;
            let plain_addr = plain.local_addr()?;
            tasks.push(tokio::spawn(listen(shared.clone(), i, plain, None)));
            let tls_addr = match (config.tls_base_port, &acceptor) {
                (Some(base), Some(acc)) => {
                    let l = TcpListener::bind(SocketAddr::new(ip, port(base))).await?;
                    let a = l.local_addr()?;
                    tasks.push(tokio::spawn(listen(shared.clone(), i, l, Some(acc.clone()))));
                    Some(a)
                }
                _ => None,
            };
            ports.push(DevicePorts {
                plain: plain_addr,
                tls: tls_addr,
            });
        }
        Ok(Self {
            shared,
            ports,
            tasks,
            cert_der,
            cert_pem,
        })
    }

    /// The world.
    pub fn world(&self) -> &World {
        &self.shared.world
    }

    /// Ports of device `i`.
    pub fn ports(&self, i: usize) -> DevicePorts {
        self.ports[i]
    }

    /// Runtime state (faults, stats) of device `i`.
    pub fn state(&self, i: usize) -> &DeviceState {
        &self.shared.states[i]
    }

    /// Replaces the faults of device `i` (takes effect for new connections and commands at once).
    /// Recorded in the truth.
    pub fn set_faults(&self, i: usize, faults: Faults) {
        self.record(Some(i), Change::Faults { faults: faults.clone() });
        self.shared.states[i].set_faults(faults);
        self.shared.notify[i].notify_one();
    }

    /// Reboots device `i`: uptime and counters restart, its sessions drop. Recorded in the truth.
    pub fn reboot(&self, i: usize) {
        let now = self.record(Some(i), Change::Reboot);
        self.shared.states[i].reboot(now);
    }

    /// Switches device `i`'s wireless package (an upgrade; it reboots). Recorded in the truth.
    pub fn switch_package(&self, i: usize, package: Package) {
        let now = self.record(Some(i), Change::Package { package });
        self.shared.states[i].switch_package(package, now);
    }

    /// Records in the truth something that happened outside the simulator (a tower's backhaul
    /// failing until `until`), so the truth lists every event of a run.
    pub fn note(&self, kind: &str, target: &str, until: Option<f64>) {
        self.record(
            None,
            Change::Noted {
                kind: kind.into(),
                target: target.into(),
                until,
            },
        );
    }

    /// Appends a change at the simulated time now, and returns that time.
    fn record(&self, device: Option<usize>, change: Change) -> f64 {
        let at = self.shared.clock.now();
        self.shared.journal.push(Record { at, device, change });
        at
    }

    /// What really happened: the world's schedule and every change recorded so far.
    pub fn truth(&self) -> Truth<'_> {
        Truth::new(
            &self.shared.world,
            &self.shared.first_boot,
            self.shared.journal.records(),
        )
    }

    /// The simulated clock.
    pub fn clock(&self) -> &SimClock {
        &self.shared.clock
    }

    /// The self-signed certificate all TLS listeners present (DER), when TLS is on.
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.cert_der.as_deref()
    }

    /// The same certificate as PEM (usable as the CA of a verified connection).
    pub fn certificate_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// A JSON description of every device: name, role, site, ports, version, package, interfaces.
    pub fn manifest(&self) -> serde_json::Value {
        let devices: Vec<serde_json::Value> = self
            .shared
            .world
            .devices
            .iter()
            .zip(&self.ports)
            .map(|(d, p)| {
                serde_json::json!({
                    "index": d.index,
                    "name": d.name,
                    "role": d.role,
                    "site": d.site,
                    "address": p.plain.ip().to_string(),
                    "port": p.plain.port(),
                    "tls_port": p.tls.map(|a| a.port()),
                    "routeros_version": d.version.to_string(),
                    "wireless_package": self.shared.states[d.index].runtime().package,
                    "board": d.board,
                    "interfaces": d.interfaces,
                    "ap": d.ap.map(|(ap, radio)| serde_json::json!({"device": ap, "radio": radio})),
                })
            })
            .collect();
        serde_json::json!({ "seed": self.shared.world.seed, "devices": devices })
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn tls_acceptor() -> Result<(TlsAcceptor, Vec<u8>, String), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = cert.der().to_vec();
    let pem = cert.pem();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(der.clone())],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    Ok((TlsAcceptor::from(Arc::new(config)), der, pem))
}

/// How a TLS listener handshakes.
#[derive(Clone)]
enum Acceptor {
    /// With the simulator's self-signed certificate.
    Rustls(TlsAcceptor),
    /// Anonymous Diffie-Hellman through OpenSSL.
    Anonymous,
}

async fn listen(shared: Arc<Shared>, index: usize, listener: TcpListener, tls: Option<Acceptor>) {
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let mut listener = Some(listener);
    loop {
        let faults = shared.states[index].faults();
        if faults.refuse {
            // Refusing for real: no listener, so connects get RST.
            listener = None;
            shared.notify[index].notified().await;
            continue;
        }
        if shared.offline(index) {
            // Switched off: nothing answers until the simulated clock passes `offline_until`
            // (looked at every 50 ms of real time: the clock may be sped up or stepped).
            listener = None;
            tokio::select! {
                _ = shared.notify[index].notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            accepted = l.accept() => {
                listener = Some(l);
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                match &tls {
                    None => {
                        tokio::spawn(server::session(shared, index, stream));
                    }
                    Some(acceptor) => {
                        if shared.states[index].faults().tls_fail {
                            drop(stream);
                            continue;
                        }
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let limit = std::time::Duration::from_secs(10);
                            match acceptor {
                                Acceptor::Rustls(a) => {
                                    if let Ok(Ok(s)) = tokio::time::timeout(limit, a.accept(stream)).await {
                                        server::session(shared, index, s).await;
                                    }
                                }
                                Acceptor::Anonymous => {
                                    #[cfg(feature = "openssl")]
                                    if let Ok(Ok(s)) = tokio::time::timeout(limit, crate::routeros::tls::anonymous::accept(stream)).await {
                                        server::session(shared, index, s).await;
                                    }
                                    #[cfg(not(feature = "openssl"))]
                                    drop(stream);
                                }
                            }
                        });
                    }
                }
            }
            _ = shared.notify[index].notified() => {
                listener = Some(l);
            }
        }
    }
}
