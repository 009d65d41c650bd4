//! One device's persistent session: connect, probe what it has, and collect a poll cycle into a
//! `tod_core::telemetry::DeviceReport`.
//!
//! Per cycle: one `/system/resource/print`, one `/interface/print` (counters and MACs together),
//! the registration table of the probed wireless package (always reported, even empty), a
//! `monitor =once=` per radio, and `/system/health/print` every N cycles. The probe
//! (`/system/package`, the radios, `/system/routerboard`) runs on connect and again after a
//! reboot (uptime went down), a version change, or a "no such command prefix" from the wireless
//! menu (a package switch). A trap on one command costs that part of the report, with a warning;
//! any other error ends the session.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use tod_core::DeviceId;
use tod_core::telemetry::{
    CounterDelta, DeviceReport, Interface, PollStatus, RadioRole, RfStats, SystemInfo, WirelessPackage,
};

use super::normalise::{self, CounterDeltas};
use crate::routeros::Sentence;
use crate::routeros::client::{Client, ClientConfig, Credentials, Error, Transport};

/// Where and how to reach one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The device's id on the server.
    pub id: DeviceId,
    /// Socket address of its API.
    pub addr: SocketAddr,
    /// Host name or address (TLS server name).
    pub host: String,
    /// Plain or TLS.
    pub transport: Transport,
    /// Login.
    pub credentials: Credentials,
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The wireless menu to poll.
    pub package: WirelessPackage,
    /// Radio interface names.
    pub radios: Vec<String>,
    /// Each radio's role (AP or station), from its mode, aligned with `radios`.
    pub roles: Vec<Option<RadioRole>>,
    /// Version string at probe time.
    pub version: String,
}

/// A live session with one device.
#[derive(Debug)]
pub struct Session {
    client: Client,
    caps: Capabilities,
    routerboard: normalise::Routerboard,
    counters: CounterDeltas,
    last_uptime: Option<u64>,
    cycles: u64,
    reprobe: bool,
}

fn trap_to_warning<T>(r: Result<T, Error>, what: &str, warnings: &mut Vec<String>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Trap(t)) => {
            warnings.push(format!("{what}: {}", t.first().map_or("trap", |t| t.message.as_str())));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl Session {
    /// Connects, logs in and probes.
    pub async fn open(target: &Target, config: ClientConfig) -> Result<Self, Error> {
        let client = Client::connect(
            target.addr,
            &target.host,
            &target.transport,
            &target.credentials,
            config,
        )
        .await?;
        let mut ignored = Vec::new();
        let (caps, routerboard) = probe(&client, &mut ignored).await?;
        Ok(Self {
            client,
            caps,
            routerboard,
            counters: CounterDeltas::default(),
            last_uptime: None,
            cycles: 0,
            reprobe: false,
        })
    }

    /// What the last probe found.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Whether the connection is gone (the owner should reconnect).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Collects one cycle. `health_every` = poll `/system/health` every N cycles.
    pub async fn collect(
        &mut self,
        id: DeviceId,
        sequence: u64,
        at: DateTime<Utc>,
        health_every: u64,
    ) -> Result<DeviceReport, Error> {
        let mut warnings = Vec::new();
        let c = self.client.clone();
        let resource = c.print("/system/resource", &[], &[]).await?.into_iter().next();
        let resource = resource.ok_or_else(|| Error::Trap(vec![]))?;
        let uptime = resource
            .get("uptime")
            .and_then(|u| tod_core::routeros::parse_duration(&u).ok().flatten())
            .map(|d| d.as_secs());
        let version = resource.get("version").map(|v| v.into_owned()).unwrap_or_default();
        let rebooted = matches!((self.last_uptime, uptime), (Some(a), Some(b)) if b < a);
        if self.reprobe || rebooted || version != self.caps.version {
            let (caps, rb) = probe(&c, &mut warnings).await?;
            self.caps = caps;
            self.routerboard = rb;
            self.reprobe = false;
        }
        self.last_uptime = uptime.or(self.last_uptime);
        let system: SystemInfo = normalise::system_info(&resource, &self.routerboard, self.caps.package, &mut warnings);

        let health = if health_every > 0 && self.cycles.is_multiple_of(health_every) {
            trap_to_warning(
                c.print("/system/health", &[], &[]).await,
                "/system/health",
                &mut warnings,
            )?
            .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut resources = normalise::resources(&resource, &health, &mut warnings);
        if health.is_empty() {
            resources.temperature_c = None;
        }

        let props = [
            "name",
            "type",
            "mac-address",
            "running",
            "disabled",
            "rx-byte",
            "tx-byte",
        ];
        let if_rows = c.print("/interface", &props, &[]).await?;
        let interfaces: Vec<Interface> = normalise::interfaces(&if_rows, &mut warnings);
        let deltas = self.counters.update(uptime, &interfaces);

        let (registrations, rf) = match normalise::menu(self.caps.package) {
            None => (None, None),
            Some(menu) => {
                let regs = c.print(&format!("{menu}/registration-table"), &[], &[]).await;
                match regs {
                    Err(Error::Trap(t)) => {
                        // The menu went away (a package switch): probe again next cycle.
                        warnings.push(format!(
                            "{menu}/registration-table: {}",
                            t.first().map_or("trap", |t| t.message.as_str())
                        ));
                        self.reprobe = true;
                        (None, None)
                    }
                    Err(e) => return Err(e),
                    Ok(rows) => {
                        let regs = normalise::registrations(&rows, &mut warnings);
                        let mut rf: Vec<RfStats> = Vec::with_capacity(self.caps.radios.len());
                        for (n, radio) in self.caps.radios.iter().enumerate() {
                            let cmd = Sentence::command(format!("{menu}/monitor"))
                                .attr("numbers", radio)
                                .attr("once", "");
                            if let Some(reply) = trap_to_warning(
                                c.command(cmd).await,
                                &format!("{menu}/monitor {radio}"),
                                &mut warnings,
                            )? && let Some(row) = reply.rows.first()
                            {
                                let mut stats = normalise::rf_stats(radio, row, &mut warnings);
                                stats.role = self.caps.roles.get(n).copied().flatten();
                                rf.push(stats);
                            }
                        }
                        (Some(regs), Some(rf))
                    }
                }
            }
        };
        self.cycles += 1;
        Ok(DeviceReport {
            system: Some(system),
            resources: Some(resources),
            interface_deltas: deltas
                .into_iter()
                .filter_map(|(interface, d)| {
                    d.map(|(rx_bytes, tx_bytes)| CounterDelta {
                        interface,
                        rx_bytes,
                        tx_bytes,
                    })
                })
                .collect(),
            interfaces: Some(interfaces),
            registrations,
            rf,
            warnings,
            ..DeviceReport::new(id, sequence, at, PollStatus::Online)
        })
    }
}

async fn probe(c: &Client, warnings: &mut Vec<String>) -> Result<(Capabilities, normalise::Routerboard), Error> {
    let packages = trap_to_warning(
        c.print("/system/package", &["name", "disabled"], &[]).await,
        "/system/package",
        warnings,
    )?;
    let mut package = normalise::package_from_packages(&packages.unwrap_or_default());
    let mut radios = Vec::new();
    let mut roles = Vec::new();
    if let Some(menu) = normalise::menu(package) {
        let props = ["name", "mode", "configuration.mode"];
        match trap_to_warning(c.print(menu, &props, &[]).await, menu, warnings)? {
            Some(rows) => {
                for r in &rows {
                    if let Some(name) = r.get("name") {
                        radios.push(name.into_owned());
                        let mode = r.get("mode").or_else(|| r.get("configuration.mode"));
                        roles.push(mode.and_then(|m| RadioRole::from_mode(&m)));
                    }
                }
            }
            None => package = WirelessPackage::None,
        }
    }
    let resource = c.print("/system/resource", &["version"], &[]).await?;
    let version = resource
        .first()
        .and_then(|r| r.get("version"))
        .map(|v| v.into_owned())
        .unwrap_or_default();
    // CHR and x86 have no routerboard menu; that is fine.
    let rb = trap_to_warning(
        c.print("/system/routerboard", &[], &[]).await,
        "/system/routerboard",
        &mut Vec::new(),
    )?;
    let rb = rb
        .and_then(|rows| rows.first().map(normalise::Routerboard::from_row))
        .unwrap_or_default();
    Ok((
        Capabilities {
            package,
            radios,
            roles,
            version,
        },
        rb,
    ))
}
