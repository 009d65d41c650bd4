//! `tod-agent check`: try every configured device once and say what happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tod_core::DeviceId;
use tod_core::telemetry::WirelessPackage;
use tokio::sync::Semaphore;

use crate::config::AgentConfig;
use crate::poll::collector::{Session, Target};
use crate::routeros::client::{ClientConfig, Error};

/// The outcome for one device.
#[derive(Debug, Clone)]
pub struct CheckRow {
    /// The device.
    pub device: DeviceId,
    /// `host:port`.
    pub address: String,
    /// What was found, or the error.
    pub outcome: Result<Found, String>,
    /// How long connect + login + one collection took.
    pub elapsed: Duration,
}

/// What a successful check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// RouterOS version string.
    pub version: String,
    /// Board name.
    pub board: String,
    /// Wireless package.
    pub package: WirelessPackage,
    /// Radios.
    pub radios: usize,
    /// Registered clients.
    pub clients: usize,
    /// Values that did not parse.
    pub warnings: usize,
}

async fn one(cfg: &AgentConfig, index: usize, client: ClientConfig) -> CheckRow {
    let d = &cfg.devices[index];
    let address = format!("{}:{}", d.host, d.api_port());
    let started = Instant::now();
    let outcome = async {
        let transport = d.transport(index).map_err(|e| e.to_string())?;
        let addr = tokio::net::lookup_host(&address)
            .await
            .map_err(|e| format!("cannot resolve {address}: {e}"))?
            .next()
            .ok_or_else(|| format!("{address} resolves to nothing"))?;
        let target = Target {
            id: d.id,
            addr,
            host: d.host.clone(),
            transport,
            credentials: cfg.credentials_for(d),
        };
        let mut s = Session::open(&target, client)
            .await
            .map_err(|e: Error| format!("{e} ({:?})", e.class()))?;
        let r = s
            .collect(d.id, 1, Utc::now(), 1)
            .await
            .map_err(|e| format!("{e} ({:?})", e.class()))?;
        let sys = r.system.clone().ok_or("the device sent no system information")?;
        Ok(Found {
            version: sys.routeros_version,
            board: sys.board_name.unwrap_or_default(),
            package: sys.wireless_package,
            radios: s.capabilities().radios.len(),
            clients: r.registrations.as_ref().map_or(0, Vec::len),
            warnings: r.warnings.len(),
        })
    }
    .await;
    CheckRow {
        device: d.id,
        address,
        outcome,
        elapsed: started.elapsed(),
    }
}

/// Checks every device, `connect_concurrency` at a time, in configuration order.
pub async fn check_all(cfg: Arc<AgentConfig>, client: ClientConfig) -> Vec<CheckRow> {
    let gate = Arc::new(Semaphore::new(cfg.poll.connect_concurrency.max(1)));
    let tasks: Vec<_> = (0..cfg.devices.len())
        .map(|i| {
            let (cfg, gate, client) = (cfg.clone(), gate.clone(), client.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire().await.expect("gate open");
                one(&cfg, i, client).await
            })
        })
        .collect();
    let mut rows = Vec::with_capacity(tasks.len());
    for t in tasks {
        rows.push(t.await.expect("check task"));
    }
    rows
}

/// Renders the rows as a table.
pub fn table(rows: &[CheckRow]) -> String {
    let mut out = format!("{:<38} {:<22} {:>7}  result\n", "device", "address", "ms");
    for r in rows {
        let result = match &r.outcome {
            Ok(f) => format!(
                "ok: RouterOS {}, {}, {:?} with {} radio(s), {} client(s){}",
                f.version,
                f.board,
                f.package,
                f.radios,
                f.clients,
                if f.warnings > 0 {
                    format!(", {} warning(s)", f.warnings)
                } else {
                    String::new()
                }
            ),
            Err(e) => format!("FAILED: {e}"),
        };
        out.push_str(&format!(
            "{:<38} {:<22} {:>7}  {result}\n",
            r.device,
            r.address,
            r.elapsed.as_millis()
        ));
    }
    out
}
