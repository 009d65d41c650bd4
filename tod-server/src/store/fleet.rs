//! Devices, agents and ingest: the storage side of what agents deliver.
//!
//! Written once for both backends like [`super::queries`]; [`impl_fleet_store!`] expands in each
//! backend module with the same hooks.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::telemetry::PollStatus;
use tod_core::{AgentId, DeviceId, SiteId, TenantId};
use uuid::Uuid;

use super::{Audit, StoreError};

/// A managed device (router, AP, CPE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Device {
    /// Id (the agent reports under it).
    #[schema(value_type = String, format = Uuid)]
    pub id: DeviceId,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// Site (tower), if assigned.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub site_id: Option<SiteId>,
    /// Name, unique per tenant.
    pub name: String,
    /// Address the agent polls.
    pub host: String,
    /// RouterOS API port.
    pub api_port: i64,
    /// `plain`, `tls_verified`, `tls_pinned`, `tls_insecure` or `tls_anonymous`.
    pub transport: String,
    /// SHA-256 of the device's certificate, for `tls_pinned`.
    pub fingerprint: Option<String>,
    /// Whether a login is stored (sealed; never shown).
    pub has_credentials: bool,
    /// Its sector (at its own site).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub sector_id: Option<Uuid>,
    /// `unknown`, `online`, `offline`, `unreachable` or `auth_failed`.
    pub status: String,
    /// Last reported RouterOS version.
    pub routeros_version: Option<String>,
    /// Last reported board.
    pub board_name: Option<String>,
    /// Last report.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The fields of a new device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDevice<'a> {
    /// Id, chosen by the caller (sealed credentials are bound to it).
    pub id: DeviceId,
    /// API port.
    pub api_port: u16,
    /// Transport name.
    pub transport: &'a str,
    /// Certificate fingerprint for `tls_pinned`.
    pub fingerprint: Option<&'a str>,
    /// The login, sealed by the vault for this tenant and id.
    pub credentials: Option<&'a [u8]>,
    /// Name.
    pub name: &'a str,
    /// Address.
    pub host: &'a str,
    /// Site, which must be the tenant's.
    pub site_id: Option<SiteId>,
}

/// What a device list is narrowed to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceFilter {
    /// At this site.
    pub site: Option<SiteId>,
    /// At no site.
    pub unassigned: bool,
    /// In this sector.
    pub sector: Option<Uuid>,
    /// With this status.
    pub status: Option<String>,
    /// Name or host containing this, any letter case.
    pub search: Option<String>,
    /// In this device group.
    pub group: Option<Uuid>,
    /// With this tag.
    pub tag: Option<Uuid>,
    /// At most this many (all when `None`).
    pub limit: Option<i64>,
    /// After skipping this many.
    pub offset: i64,
}

/// A device's fields after an update, checked by the caller as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceUpdate<'a> {
    /// Name.
    pub name: &'a str,
    /// Address.
    pub host: &'a str,
    /// Site (which must be the tenant's); moving a device to another site clears its sector.
    pub site_id: Option<SiteId>,
    /// API port.
    pub api_port: u16,
    /// Transport name.
    pub transport: &'a str,
    /// Certificate fingerprint.
    pub fingerprint: Option<&'a str>,
    /// `None` keeps the stored login; `Some(None)` removes it; `Some(Some(sealed))` replaces it.
    pub credentials: Option<Option<&'a [u8]>>,
}

/// What ingest needs to know of a device to log what changed.
#[derive(sqlx::FromRow)]
pub(crate) struct KnownDevice {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) last_seen_at: Option<DateTime<Utc>>,
    pub(crate) routeros_version: Option<String>,
    pub(crate) uptime_secs: Option<i64>,
}

impl KnownDevice {
    pub(crate) fn log(&self) -> tod_core::events::DeviceLog {
        tod_core::events::DeviceLog {
            status: Some(self.status.clone()),
            last_seen: self.last_seen_at,
            version: self.routeros_version.clone(),
            uptime_secs: self.uptime_secs.and_then(|u| u64::try_from(u).ok()),
        }
    }
}

/// An agent (one per tower).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Agent {
    /// Id (the agent's `[agent] id`).
    #[schema(value_type = String, format = Uuid)]
    pub id: AgentId,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// The site whose devices it polls and reports.
    #[schema(value_type = String, format = Uuid)]
    pub site_id: SiteId,
    /// Name.
    pub name: String,
    /// Last accepted batch.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Revoked: its token no longer works.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Reports its spool dropped to stay within its bounds (a full disk budget or reports older
    /// than its age limit after a long outage), as it last counted them: data the server will
    /// never get. Each rise is published as `agent.data_lost`.
    pub spool_dropped: i64,
}

/// An agent enrolled as a WireGuard peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TunnelPeer {
    /// The agent.
    #[schema(value_type = String, format = Uuid)]
    pub agent_id: AgentId,
    /// Its tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// Its site.
    #[schema(value_type = String, format = Uuid)]
    pub site_id: SiteId,
    /// The agent's name.
    pub name: String,
    /// Its WireGuard public key (base64).
    pub public_key: String,
    /// Its address inside the tunnel.
    #[schema(value_type = String)]
    pub address: std::net::Ipv4Addr,
}

/// The tunnel network: tenant N's agents live in `10.99.N.0/24`; the gateway is `10.99.0.1`.
pub const TUNNEL_GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 99, 0, 1);
/// Prefix length of the whole tunnel network (`10.99.0.0/16`).
pub const TUNNEL_PREFIX: u8 = 16;

#[derive(sqlx::FromRow)]
pub(crate) struct TunnelPeerRow {
    id: Uuid,
    tenant_id: Uuid,
    site_id: Uuid,
    name: String,
    wg_public_key: String,
    tunnel_address: String,
}

impl TryFrom<TunnelPeerRow> for TunnelPeer {
    type Error = StoreError;
    fn try_from(r: TunnelPeerRow) -> Result<Self, StoreError> {
        Ok(Self {
            agent_id: AgentId(r.id),
            tenant_id: TenantId(r.tenant_id),
            site_id: SiteId(r.site_id),
            name: r.name,
            public_key: r.wg_public_key,
            address: r
                .tunnel_address
                .parse()
                .map_err(|_| StoreError::Other(format!("agent {}: bad tunnel address {:?}", r.id, r.tunnel_address)))?,
        })
    }
}

/// The lowest number in `from..=to` not in `taken`.
pub(crate) fn lowest_free(taken: &[i64], from: i64, to: i64) -> Option<i64> {
    (from..=to).find(|n| !taken.contains(n))
}

/// What a pass of [`FleetStore::age_fleet`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Aging {
    /// Devices newly marked unreachable (their agent went silent).
    pub devices_unreachable: u64,
    /// Link state changes (down, stale).
    pub link_changes: usize,
    /// "Agent offline" site alerts raised (one per site whose agent went silent).
    pub agent_alerts_raised: usize,
    /// "Agent offline" site alerts resolved (the agent reports again).
    pub agent_alerts_resolved: u64,
}

/// A client as an AP last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClientEntry {
    /// The client's MAC, canonical.
    pub mac_address: String,
    /// The AP's interface it is registered on.
    pub interface: String,
    /// Signal in dBm.
    pub signal_strength: Option<i16>,
    /// Transmit CCQ in percent (RouterOS 6 only; absent on 7, never 0 for "unknown").
    pub tx_ccq: Option<i16>,
    /// Transmit rate as RouterOS prints it.
    pub tx_rate: Option<String>,
    /// Receive rate as RouterOS prints it.
    pub rx_rate: Option<String>,
    /// Distance in metres.
    pub distance: Option<i64>,
    /// Seconds registered.
    pub uptime: Option<i64>,
    /// When the AP reported it.
    pub last_seen: DateTime<Utc>,
    /// The known device whose interface has this MAC.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub device_id: Option<DeviceId>,
    /// That device's name.
    pub hostname: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    mac: String,
    interface: String,
    signal_dbm: Option<i16>,
    tx_ccq: Option<i16>,
    tx_rate: Option<String>,
    rx_rate: Option<String>,
    distance_m: Option<i64>,
    uptime_secs: Option<i64>,
    collected_at: DateTime<Utc>,
    device_id: Option<Uuid>,
    hostname: Option<String>,
}

impl From<ClientRow> for ClientEntry {
    fn from(r: ClientRow) -> Self {
        Self {
            mac_address: r.mac,
            interface: r.interface,
            signal_strength: r.signal_dbm,
            tx_ccq: r.tx_ccq,
            tx_rate: r.tx_rate,
            rx_rate: r.rx_rate,
            distance: r.distance_m,
            uptime: r.uptime_secs,
            last_seen: r.collected_at,
            device_id: r.device_id.map(DeviceId),
            hostname: r.hostname,
        }
    }
}

/// A radio sector of a site, with what its access points serve.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Sector {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// Its site.
    #[schema(value_type = String, format = Uuid)]
    pub site_id: SiteId,
    /// Name, unique at the site.
    pub name: String,
    /// Direction in degrees, 0–360.
    pub azimuth: Option<f64>,
    /// Free text.
    pub description: Option<String>,
    /// Devices in the sector.
    pub device_count: u32,
    /// Links from the sector's APs that are up (its clients).
    pub clients: u32,
    /// Of those, degraded.
    pub degraded_links: u32,
    /// All links from the sector's APs.
    pub links: u32,
    /// Mean last signal of the up links, dBm.
    pub avg_signal_dbm: Option<i16>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SectorRow {
    pub(crate) id: Uuid,
    site_id: Uuid,
    name: String,
    azimuth: Option<f64>,
    description: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl SectorRow {
    /// The sector with its statistics from tod-core.
    pub(crate) fn with_stats(self, stats: tod_core::sites::SectorStats) -> Sector {
        Sector {
            id: self.id,
            site_id: SiteId(self.site_id),
            name: self.name,
            azimuth: self.azimuth,
            description: self.description,
            device_count: stats.device_count,
            clients: stats.clients,
            degraded_links: stats.degraded_links,
            links: stats.links,
            avg_signal_dbm: stats.avg_signal_dbm,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The fields of a sector to set; on update `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SectorFields<'a> {
    /// Name.
    pub name: Option<&'a str>,
    /// Azimuth, or `Some(None)` to clear it.
    pub azimuth: Option<Option<f64>>,
    /// Description, or `Some(None)` to clear it.
    pub description: Option<Option<&'a str>>,
}

/// A site alert event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SiteAlertEvent {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// Site.
    #[schema(value_type = String, format = Uuid)]
    pub site_id: SiteId,
    /// Sector, for sector-scoped rules.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub sector_id: Option<Uuid>,
    /// The rule that raised it; none for fleet events such as `agent_offline`.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub rule_id: Option<Uuid>,
    /// The device it is about, if one.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub device_id: Option<DeviceId>,
    /// The link it is about, if one.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub link_id: Option<Uuid>,
    /// For a link alert, the link's access point (`device_id` is its client).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub ap_device_id: Option<DeviceId>,
    /// What raised it: `agent_offline`, or the rule type.
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// What an operator reads.
    pub message: String,
    /// `active` or `resolved`.
    pub state: String,
    /// Consecutive evaluations that found the condition.
    pub consecutive_hits: i32,
    /// Raised.
    pub triggered_at: DateTime<Utc>,
    /// Resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The user who resolved it by hand; none when it cleared by itself.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub resolved_by: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SiteAlertRow {
    id: Uuid,
    tenant_id: Uuid,
    site_id: Uuid,
    sector_id: Option<Uuid>,
    rule_id: Option<Uuid>,
    device_id: Option<Uuid>,
    link_id: Option<Uuid>,
    ap_device_id: Option<Uuid>,
    kind: String,
    severity: String,
    message: String,
    state: String,
    consecutive_hits: i32,
    triggered_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    resolved_by: Option<Uuid>,
}

impl From<SiteAlertRow> for SiteAlertEvent {
    fn from(r: SiteAlertRow) -> Self {
        Self {
            id: r.id,
            tenant_id: TenantId(r.tenant_id),
            site_id: SiteId(r.site_id),
            sector_id: r.sector_id,
            rule_id: r.rule_id,
            device_id: r.device_id.map(DeviceId),
            link_id: r.link_id,
            ap_device_id: r.ap_device_id.map(DeviceId),
            kind: r.kind,
            severity: r.severity,
            message: r.message,
            state: r.state,
            consecutive_hits: r.consecutive_hits,
            triggered_at: r.triggered_at,
            resolved_at: r.resolved_at,
            resolved_by: r.resolved_by,
        }
    }
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Ingested {
    /// Stored: this many reports and registration rows.
    Stored {
        /// Reports.
        reports: usize,
        /// Registration rows.
        registrations: usize,
    },
    /// Seen before (same agent and idempotency key): nothing stored again.
    Duplicate,
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeviceRow {
    id: Uuid,
    tenant_id: Uuid,
    site_id: Option<Uuid>,
    name: String,
    host: String,
    api_port: i64,
    transport: String,
    fingerprint: Option<String>,
    pub(crate) credentials: Option<Vec<u8>>,
    sector_id: Option<Uuid>,
    status: String,
    routeros_version: Option<String>,
    board_name: Option<String>,
    last_seen_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<DeviceRow> for Device {
    fn from(r: DeviceRow) -> Self {
        Self {
            id: DeviceId(r.id),
            tenant_id: TenantId(r.tenant_id),
            site_id: r.site_id.map(SiteId),
            name: r.name,
            host: r.host,
            api_port: r.api_port,
            transport: r.transport,
            fingerprint: r.fingerprint,
            has_credentials: r.credentials.is_some(),
            sector_id: r.sector_id,
            status: r.status,
            routeros_version: r.routeros_version,
            board_name: r.board_name,
            last_seen_at: r.last_seen_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AgentRow {
    id: Uuid,
    tenant_id: Uuid,
    site_id: Uuid,
    name: String,
    last_seen_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    spool_dropped: i64,
}

impl From<AgentRow> for Agent {
    fn from(r: AgentRow) -> Self {
        Self {
            id: AgentId(r.id),
            tenant_id: TenantId(r.tenant_id),
            site_id: SiteId(r.site_id),
            name: r.name,
            last_seen_at: r.last_seen_at,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            spool_dropped: r.spool_dropped,
        }
    }
}

/// A wireless link between an AP and a CPE, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WirelessLink {
    /// The access point.
    #[schema(value_type = String, format = Uuid)]
    pub ap_device_id: DeviceId,
    /// The customer radio.
    #[schema(value_type = String, format = Uuid)]
    pub cpe_device_id: DeviceId,
    /// The AP interface the CPE is registered on.
    pub interface: String,
    /// The MAC the AP saw (lower-case).
    pub client_mac: String,
    /// Last signal, dBm.
    pub signal_dbm: Option<i16>,
    /// Last CCQ, percent (absent where the wireless package has none).
    pub tx_ccq: Option<i16>,
    /// Last tx rate.
    pub tx_rate: Option<String>,
    /// Last rx rate.
    pub rx_rate: Option<String>,
    /// `discovered`, `active`, `degraded`, `down` or `stale`.
    pub state: String,
    /// Consecutive AP reports without this client.
    pub missed_polls: i64,
    /// First sighting.
    pub discovered_at: DateTime<Utc>,
    /// Last sighting.
    pub last_seen: DateTime<Utc>,
    /// Since when in this state.
    pub state_since: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct LinkRow {
    ap_device_id: Uuid,
    cpe_device_id: Uuid,
    interface: String,
    client_mac: String,
    signal_dbm: Option<i16>,
    tx_ccq: Option<i16>,
    tx_rate: Option<String>,
    rx_rate: Option<String>,
    state: String,
    missed_polls: i64,
    discovered_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    state_since: DateTime<Utc>,
}

impl From<LinkRow> for WirelessLink {
    fn from(r: LinkRow) -> Self {
        Self {
            ap_device_id: DeviceId(r.ap_device_id),
            cpe_device_id: DeviceId(r.cpe_device_id),
            interface: r.interface,
            client_mac: r.client_mac,
            signal_dbm: r.signal_dbm,
            tx_ccq: r.tx_ccq,
            tx_rate: r.tx_rate,
            rx_rate: r.rx_rate,
            state: r.state,
            missed_polls: r.missed_polls,
            discovered_at: r.discovered_at,
            last_seen: r.last_seen,
            state_since: r.state_since,
        }
    }
}

impl LinkRow {
    /// Links from SQLite's `json_group_array` of [`LINKS_JSON`] arrays. One text value crosses
    /// from SQLite's thread instead of a row per link, which cost four times as much (1 000
    /// links: 7.3 ms as rows, 2.4 ms as one array).
    pub(crate) fn from_json_arrays(json: &str) -> Result<Vec<LinkRow>, StoreError> {
        type Array = (
            String,
            String,
            String,
            String,
            Option<i16>,
            Option<i16>,
            Option<String>,
            Option<String>,
            String,
            i64,
            String,
            String,
            String,
        );
        let bad = |what: &str, e: &dyn std::fmt::Display| StoreError::Other(format!("a stored link's {what}: {e}"));
        let id = |hex: &str| Uuid::try_parse(hex).map_err(|e| bad("id", &e));
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| bad("time", &e))
        };
        let arrays: Vec<Array> = serde_json::from_str(json).map_err(|e| bad("row", &e))?;
        arrays
            .into_iter()
            .map(|a| {
                Ok(LinkRow {
                    ap_device_id: id(&a.0)?,
                    cpe_device_id: id(&a.1)?,
                    interface: a.2,
                    client_mac: a.3,
                    signal_dbm: a.4,
                    tx_ccq: a.5,
                    tx_rate: a.6,
                    rx_rate: a.7,
                    state: a.8,
                    missed_polls: a.9,
                    discovered_at: at(&a.10)?,
                    last_seen: at(&a.11)?,
                    state_since: at(&a.12)?,
                })
            })
            .collect()
    }

    /// The domain link, or `None` for a row that cannot be one (a hand-edited MAC or state).
    pub(crate) fn to_link(&self) -> Option<tod_core::links::Link> {
        Some(tod_core::links::Link {
            key: tod_core::links::LinkKey {
                ap: DeviceId(self.ap_device_id),
                cpe: DeviceId(self.cpe_device_id),
            },
            interface: self.interface.clone(),
            client_mac: self.client_mac.parse().ok()?,
            signal_dbm: self.signal_dbm,
            tx_ccq: self.tx_ccq.and_then(|c| u8::try_from(c).ok()),
            tx_rate: self.tx_rate.clone(),
            rx_rate: self.rx_rate.clone(),
            state: tod_core::links::LinkState::parse(&self.state)?,
            missed_polls: u32::try_from(self.missed_polls).unwrap_or(u32::MAX),
            discovered_at: self.discovered_at,
            last_seen: self.last_seen,
            state_since: self.state_since,
        })
    }
}

/// Rows per multi-row insert: 13–14 parameters each stays under SQLite's 32 766 and
/// PostgreSQL's 65 535 bound parameters.
pub(crate) const REGISTRATION_ROWS_PER_INSERT: usize = 1_000;

/// How long after an hour closes the rollup pass sums it (stragglers of its last polls land in
/// the meantime).
pub const ROLLUP_GRACE: chrono::Duration = chrono::Duration::minutes(10);

/// Registrations of an hour that closed more than this long before their batch is stored may
/// come after the hour was summed: the batch marks the hour dirty. Shorter than
/// [`ROLLUP_GRACE`], so no hour is summed before a batch that does not mark it has landed.
pub(crate) const LATE_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// The start of `t`'s hour.
pub(crate) fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::DurationRound;
    t.duration_trunc(chrono::Duration::hours(1)).unwrap_or(t)
}

/// Where a page of links starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinksFrom {
    /// After skipping this many.
    Offset(i64),
    /// After the link from this AP to this CPE (which need not exist any more).
    After(DeviceId, DeviceId),
}

/// What one rollup pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rollup {
    /// Hours summed after the last one summed before.
    pub hours: u32,
    /// Dirty hours summed again.
    pub dirty: u32,
    /// Every closed hour is summed.
    pub caught_up: bool,
}

/// A bucket's sums as the database returns them (a bucket start, then sum, count, min, max).
pub(crate) fn bucket_sum((start, sum, count, min, max): (i64, i64, i64, i16, i16)) -> tod_core::signal::BucketSum {
    tod_core::signal::BucketSum {
        start,
        sum,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        min,
        max,
    }
}

/// One registration row to insert: the report it came in and the row.
pub(crate) type RegistrationRow<'a> = (
    &'a tod_core::telemetry::DeviceReport,
    &'a tod_core::telemetry::Registration,
);

/// The columns of a link upsert and what a conflict updates (the key and `discovered_at` stay).
pub(crate) const LINK_COLUMNS: &str = "tenant_id, ap_device_id, cpe_device_id, interface, client_mac, signal_dbm, \
     tx_ccq, tx_rate, rx_rate, state, missed_polls, discovered_at, last_seen, state_since";
/// Which end of a link a lookup goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkEnd {
    /// The access point.
    Ap,
    /// The client radio's device.
    Cpe,
}

impl LinkEnd {
    pub(crate) const fn column(self) -> &'static str {
        match self {
            Self::Ap => "ap_device_id",
            Self::Cpe => "cpe_device_id",
        }
    }
}

/// What a link's row needs after a batch, against the row as it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkWrite {
    /// Nothing changed.
    Nothing,
    /// Only what each poll brings: signal, CCQ, rates, missed polls, last seen, assigned alone,
    /// which leaves the state's index alone (SQLite rewrites an index entry for every indexed
    /// column assigned, changed or not: a link's write cost a third more with the state in it).
    /// SQLite takes an upsert: an `UPDATE … FROM` the rows was planned with the links outside
    /// and the JSON rescanned for each. PostgreSQL takes an `UPDATE … FROM UNNEST`, planned as a
    /// probe of each link's key (generic and custom plans alike, checked at 50 000 links), which
    /// spares the upsert's row lock.
    Readings,
    /// A new link, or one whose state, interface or MAC changed: the whole row, upserted.
    Whole,
}

impl LinkWrite {
    pub(crate) fn of(stored: Option<&tod_core::links::Link>, now: &tod_core::links::Link) -> LinkWrite {
        match stored {
            Some(was) if was == now => LinkWrite::Nothing,
            Some(was)
                if was.state == now.state
                    && was.state_since == now.state_since
                    && was.interface == now.interface
                    && was.client_mac == now.client_mac
                    && was.discovered_at == now.discovered_at =>
            {
                LinkWrite::Readings
            }
            _ => LinkWrite::Whole,
        }
    }
}

pub(crate) const LINK_CONFLICT: &str = " ON CONFLICT (ap_device_id, cpe_device_id) DO UPDATE SET \
     interface = excluded.interface, client_mac = excluded.client_mac, signal_dbm = excluded.signal_dbm, \
     tx_ccq = excluded.tx_ccq, tx_rate = excluded.tx_rate, rx_rate = excluded.rx_rate, state = excluded.state, \
     missed_polls = excluded.missed_polls, last_seen = excluded.last_seen, state_since = excluded.state_since";
/// The upsert's clause that assigns only a link's per-poll values.
pub(crate) const LINK_READINGS_CONFLICT: &str = " ON CONFLICT (ap_device_id, cpe_device_id) DO UPDATE SET \
     signal_dbm = excluded.signal_dbm, tx_ccq = excluded.tx_ccq, tx_rate = excluded.tx_rate, \
     rx_rate = excluded.rx_rate, missed_polls = excluded.missed_polls, last_seen = excluded.last_seen";
/// A link as a JSON array in SQLite, in [`LinkRow::from_json_arrays`]' order (ids as hex).
pub(crate) const LINKS_JSON: &str = "json_array(hex(ap_device_id), hex(cpe_device_id), interface, client_mac, \
     signal_dbm, tx_ccq, tx_rate, rx_rate, state, missed_polls, discovered_at, last_seen, state_since)";
/// The columns of a registration insert.
pub(crate) const REGISTRATION_COLUMNS: &str = "tenant_id, device_id, collected_at, interface, mac, signal_dbm, \
     tx_signal_dbm, tx_ccq, tx_rate, rx_rate, uptime_secs, distance_m, last_ip";

/// A links query's conditions: the tenant (`$1`), and only the filters given — the state (`$2`),
/// a device at either end (`$3`) — so that without them the links' keys come from the (tenant,
/// AP, CPE) index alone. The numbers not named are bound all the same.
pub(crate) fn link_filter(state: bool, device: bool) -> String {
    let mut filter = String::from("tenant_id = $1");
    if state {
        filter.push_str(" AND state = $2");
    }
    if device {
        filter.push_str(" AND (ap_device_id = $3 OR cpe_device_id = $3)");
    }
    filter
}

/// `$first, $first+1, ...` for `n` values of a dynamic `IN (...)`.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a batch changes on one device row: the newest report's status and time, and the newest
/// version, board, uptime and interface list any of its reports carried.
#[derive(Debug, Default)]
pub(crate) struct ReportedState {
    pub(crate) at: Option<DateTime<Utc>>,
    pub(crate) status: &'static str,
    pub(crate) version: Option<String>,
    pub(crate) board: Option<String>,
    pub(crate) uptime_secs: Option<i64>,
    /// The interfaces as the newest report listing them had them, with its collection time.
    pub(crate) interfaces: Option<(DateTime<Utc>, Vec<InterfaceRow>)>,
}

/// A device's interface as `device_interfaces` keeps it: what resolves a registration-table
/// client's MAC to its device.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct InterfaceRow {
    pub(crate) name: String,
    pub(crate) mac: Option<String>,
    pub(crate) kind: String,
    pub(crate) running: bool,
}

impl InterfaceRow {
    /// A reported list as rows: sorted by name, one row per name (the first listed, as the
    /// table's key keeps it).
    pub(crate) fn of(list: &[tod_core::telemetry::Interface]) -> Vec<InterfaceRow> {
        let mut rows: Vec<InterfaceRow> = list
            .iter()
            .map(|i| InterfaceRow {
                name: i.name.clone(),
                mac: i.mac.map(|m| m.to_string()),
                kind: i.kind.clone(),
                running: i.running,
            })
            .collect();
        // A stable sort keeps the first of equal names first, and `dedup_by` keeps the first.
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows.dedup_by(|later, first| later.name == first.name);
        rows
    }
}

/// The devices whose stored interface rows differ from what the batch reported for them, given
/// the stored rows of the reporting devices in any order. Interfaces seldom change, so most
/// batches rewrite none.
pub(crate) fn changed_interfaces(
    latest: &std::collections::BTreeMap<Uuid, ReportedState>,
    stored: Vec<(Uuid, InterfaceRow)>,
) -> Vec<Uuid> {
    let mut now: std::collections::BTreeMap<Uuid, Vec<InterfaceRow>> = std::collections::BTreeMap::new();
    for (device, row) in stored {
        now.entry(device).or_default().push(row);
    }
    latest
        .iter()
        .filter_map(|(device, state)| {
            let (_, reported) = state.interfaces.as_ref()?;
            let mut kept = now.remove(device).unwrap_or_default();
            kept.sort_by(|a, b| a.name.cmp(&b.name));
            (kept != *reported).then_some(*device)
        })
        .collect()
}

impl ReportedState {
    /// Takes one more report of the device into account.
    pub(crate) fn fold(&mut self, r: &tod_core::telemetry::DeviceReport) {
        if self.at.is_some_and(|at| at > r.collected_at) {
            return;
        }
        self.at = Some(r.collected_at);
        self.status = status_str(&r.status);
        if let Some(s) = &r.system {
            self.version = Some(s.routeros_version.clone());
            self.board = s.board_name.clone().or(self.board.take());
            self.uptime_secs = s.uptime_secs.map(i64_of).or(self.uptime_secs);
        }
        if let Some(list) = &r.interfaces {
            self.interfaces = Some((r.collected_at, InterfaceRow::of(list)));
        }
    }
}

/// The status column value of a poll outcome.
pub(crate) fn status_str(s: &PollStatus) -> &'static str {
    tod_core::events::status_name(s)
}

/// Clamps an unsigned counter into a signed 64-bit column.
pub(crate) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Storage of devices, agents and delivered batches.
#[async_trait::async_trait]
pub trait FleetStore: Send + Sync {
    /// Creates a device; its site must be one of the tenant's.
    async fn create_device(
        &self,
        tenant: TenantId,
        device: NewDevice<'_>,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<Device, StoreError>;
    /// One device of a tenant.
    async fn get_device(&self, tenant: TenantId, id: DeviceId) -> Result<Device, StoreError>;
    /// A tenant's devices matching the filter, by name, and how many match in all.
    async fn list_devices(&self, tenant: TenantId, filter: &DeviceFilter) -> Result<(Vec<Device>, i64), StoreError>;
    /// Changes a device.
    async fn update_device(
        &self,
        tenant: TenantId,
        id: DeviceId,
        update: &DeviceUpdate<'_>,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<Device, StoreError>;
    /// Deletes a device and everything recorded about it.
    async fn delete_device(
        &self,
        tenant: TenantId,
        id: DeviceId,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<(), StoreError>;
    /// The devices of an agent's site with their sealed logins, for the agent that polls them.
    async fn agent_devices(&self, agent: &Agent) -> Result<Vec<(Device, Option<Vec<u8>>)>, StoreError>;

    /// Creates an agent for a site of the tenant, with the hash of its token.
    async fn create_agent(
        &self,
        tenant: TenantId,
        site: SiteId,
        name: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<Agent, StoreError>;
    /// A tenant's agents.
    async fn list_agents(&self, tenant: TenantId) -> Result<Vec<Agent>, StoreError>;
    /// Revokes an agent; its token stops working at once.
    async fn revoke_agent(
        &self,
        tenant: TenantId,
        id: AgentId,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<(), StoreError>;
    /// The live agent with this token hash.
    async fn agent_by_token(&self, token_hash: &str) -> Result<Option<Agent>, StoreError>;
    /// The live (not revoked) agent with this id, whatever its tenant (broker consumers).
    async fn live_agent(&self, id: AgentId) -> Result<Option<Agent>, StoreError>;
    /// Makes a live agent a tunnel peer with `public_key` (base64): gives its tenant a subnet if
    /// it has none (the lowest free index) and the agent an address in it (kept on re-keying).
    async fn enrol_tunnel_peer(
        &self,
        tenant: TenantId,
        agent: AgentId,
        public_key: &str,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<TunnelPeer, StoreError>;
    /// Ends an agent's tunnel membership (its key and address are released).
    async fn remove_tunnel_peer(
        &self,
        tenant: TenantId,
        agent: AgentId,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<(), StoreError>;
    /// The tunnel peers of live agents: of one tenant, or of every tenant (the gateway's list).
    async fn tunnel_peers(&self, tenant: Option<TenantId>) -> Result<Vec<TunnelPeer>, StoreError>;

    /// Stores a batch from `agent` in one transaction: every report must name a device of the
    /// agent's site (else nothing is stored and the error lists the strangers); a batch seen
    /// before is acknowledged without storing it again.
    async fn ingest(
        &self,
        agent: &Agent,
        batch: &tod_core::telemetry::Batch,
        now: DateTime<Utc>,
    ) -> Result<Ingested, StoreError>;
    /// A tenant's wireless links, optionally in one state and/or touching one device (as AP or CPE).
    async fn list_links(
        &self,
        tenant: TenantId,
        state: Option<tod_core::links::LinkState>,
        device: Option<DeviceId>,
    ) -> Result<Vec<WirelessLink>, StoreError> {
        self.page_links(tenant, state, device, None, LinksFrom::Offset(0)).await
    }
    /// A page of a tenant's links in (AP, CPE) order: `limit` rows (all with `None`) after
    /// `offset` of them, or after the link `after` (keyset: no rows are skipped over, so a deep
    /// page costs what the first does).
    async fn page_links(
        &self,
        tenant: TenantId,
        state: Option<tod_core::links::LinkState>,
        device: Option<DeviceId>,
        limit: Option<i64>,
        from: LinksFrom,
    ) -> Result<Vec<WirelessLink>, StoreError>;
    /// How many of a tenant's links there are, optionally in one state and/or touching one device.
    async fn count_links(
        &self,
        tenant: TenantId,
        state: Option<tod_core::links::LinkState>,
        device: Option<DeviceId>,
    ) -> Result<i64, StoreError>;
    /// Time-based work over the whole fleet, as of `now` (one replica at a time, under a lease):
    /// devices of sites whose agent has been silent for three poll intervals become
    /// `unreachable`; links of APs that stopped reporting while their agent still reports go
    /// down after three missed polls and stale after 24 h.
    async fn age_fleet(&self, now: DateTime<Utc>, poll_interval_secs: i64) -> Result<Aging, StoreError>;
    /// Deletes what has outlived its retention as of `now`: registration rows older than
    /// `registrations`, metrics older than `metrics`, link events older than `metrics`; and
    /// login sessions and SRP challenges that have expired by `wall` (the API's clock, which is
    /// the fleet's too but in the scorer's accelerated runs). Returns the rows removed.
    async fn retain(
        &self,
        now: DateTime<Utc>,
        wall: DateTime<Utc>,
        registrations: chrono::Duration,
        metrics: chrono::Duration,
    ) -> Result<u64, StoreError>;
    /// Takes or renews the named lease for `holder` until `now + ttl`; false while another holder
    /// has it.
    async fn try_lease(
        &self,
        name: &str,
        holder: Uuid,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<bool, StoreError>;
    /// Sums closed hours of registrations into the hourly signal table (one replica at a time,
    /// under a lease), as of `now`, for about `budget` of wall time: first the hours a late batch
    /// marked dirty, then the hours after the last one summed that closed at least
    /// [`ROLLUP_GRACE`] ago (the first pass starts 30 days back). Each hour commits on its own.
    async fn rollup_signal(&self, now: DateTime<Utc>, budget: std::time::Duration) -> Result<Rollup, StoreError>;
    /// How many registration rows a device has (tests, diagnostics).
    async fn count_registrations(&self, tenant: TenantId, device: DeviceId) -> Result<i64, StoreError>;
    /// One client's signal as an AP saw it in `(since, until]`, summed per bucket of `width`
    /// seconds (`start = ⌊t / width⌋ × width`) by the database; rows without a signal are left
    /// out. Buckets of whole hours read the hourly sums where they are complete and clean, and
    /// the registrations for the rest (the partial first hour, the hours not summed yet, dirty
    /// hours), so the answer is the same either way; several sums may share a bucket. Not found:
    /// the device is not the tenant's.
    async fn signal_sums(
        &self,
        tenant: TenantId,
        ap: DeviceId,
        mac: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        width: i64,
    ) -> Result<Vec<tod_core::signal::BucketSum>, StoreError>;
    /// Device counts by site (`None`: no site) and status, for site health rollups.
    async fn device_counts(&self, tenant: TenantId) -> Result<Vec<(Option<SiteId>, String, i64)>, StoreError>;
    /// A site's alert events, newest first, optionally in one state; and how many there are.
    async fn site_alert_events(
        &self,
        tenant: TenantId,
        site: SiteId,
        state: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<SiteAlertEvent>, i64), StoreError>;
    /// Resolves an active event by hand.
    async fn resolve_site_alert_event(
        &self,
        tenant: TenantId,
        id: Uuid,
        by: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<SiteAlertEvent, StoreError>;
    /// Active site alert events per site.
    async fn active_site_alerts(&self, tenant: TenantId) -> Result<Vec<(SiteId, i64)>, StoreError>;
    /// Links with either end at the site.
    async fn site_links(&self, tenant: TenantId, site: SiteId) -> Result<Vec<WirelessLink>, StoreError>;
    /// Creates a sector at a site of the tenant (a duplicate name at the site is a conflict).
    async fn create_sector(
        &self,
        tenant: TenantId,
        site: SiteId,
        fields: SectorFields<'_>,
        now: DateTime<Utc>,
    ) -> Result<Sector, StoreError>;
    /// A site's sectors by name, with device counts and their APs' link statistics.
    async fn list_sectors(&self, tenant: TenantId, site: SiteId) -> Result<Vec<Sector>, StoreError>;
    /// Changes the given fields of a sector of the site.
    async fn update_sector(
        &self,
        tenant: TenantId,
        site: SiteId,
        id: Uuid,
        fields: SectorFields<'_>,
        now: DateTime<Utc>,
    ) -> Result<Sector, StoreError>;
    /// Deletes a sector of the site (its devices keep their site, without a sector).
    async fn delete_sector(&self, tenant: TenantId, site: SiteId, id: Uuid) -> Result<(), StoreError>;
    /// Puts a device in a sector at its own site, or in none.
    async fn set_device_sector(
        &self,
        tenant: TenantId,
        device: DeviceId,
        sector: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Each client's latest registration at an AP since `since`, by MAC, resolved to the known
    /// device whose interface has that MAC where there is one.
    async fn latest_clients(
        &self,
        tenant: TenantId,
        ap: DeviceId,
        since: DateTime<Utc>,
    ) -> Result<Vec<ClientEntry>, StoreError>;
}

/// Writes `impl FleetStore` for a backend type.
macro_rules! impl_fleet_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::FleetStore for $store {
            async fn create_device(
                &self,
                tenant: TenantId,
                new: NewDevice<'_>,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<Device, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                if let Some(site) = new.site_id {
                    site_of_tenant(&mut tx, tenant, site).await?;
                }
                let row: DeviceRow = sqlx::query_as(
                    "INSERT INTO devices (id, tenant_id, site_id, name, host, status, created_at, updated_at, \
                     api_port, transport, fingerprint, credentials) \
                     VALUES ($1, $2, $3, $4, $5, 'unknown', $6, $6, $7, $8, $9, $10) RETURNING *",
                )
                .bind(new.id.0)
                .bind(tenant.0)
                .bind(new.site_id.map(|s| s.0))
                .bind(new.name.trim())
                .bind(new.host.trim())
                .bind(now)
                .bind(i64::from(new.api_port))
                .bind(new.transport)
                .bind(new.fingerprint)
                .bind(new.credentials)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let d = Device::from(row);
                append(&mut tx, &with_resource(audit, "device", d.id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(d)
            }

            async fn get_device(&self, tenant: TenantId, id: DeviceId) -> Result<Device, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let row: Option<DeviceRow> = sqlx::query_as("SELECT * FROM devices WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                row.map(Device::from).ok_or(StoreError::NotFound("device"))
            }

            async fn list_devices(
                &self,
                tenant: TenantId,
                f: &DeviceFilter,
            ) -> Result<(Vec<Device>, i64), StoreError> {
                const WHERE: &str = "WHERE tenant_id = $1 AND ($2 IS NULL OR site_id = $2) \
                     AND ($3 = FALSE OR site_id IS NULL) AND ($4 IS NULL OR sector_id = $4) \
                     AND ($5 IS NULL OR status = $5) \
                     AND ($6 IS NULL OR lower(name) LIKE $6 ESCAPE '\\' OR lower(host) LIKE $6 ESCAPE '\\') \
                     AND ($7 IS NULL OR id IN (SELECT device_id FROM device_group_members WHERE set_id = $7)) \
                     AND ($8 IS NULL OR id IN (SELECT device_id FROM device_tag_members WHERE set_id = $8))";
                let pattern = f.search.as_deref().map(|s| {
                    let escaped = s
                        .to_lowercase()
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_");
                    format!("%{escaped}%")
                });
                let mut tx = self.tx(Some(tenant)).await?;
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM devices {WHERE}")))
                    .bind(tenant.0)
                    .bind(f.site.map(|s| s.0))
                    .bind(f.unassigned)
                    .bind(f.sector)
                    .bind(f.status.as_deref())
                    .bind(pattern.as_deref())
                    .bind(f.group)
                    .bind(f.tag)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let rows: Vec<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT * FROM devices {WHERE} ORDER BY name, id LIMIT $9 OFFSET $10"
                )))
                .bind(tenant.0)
                .bind(f.site.map(|s| s.0))
                .bind(f.unassigned)
                .bind(f.sector)
                .bind(f.status.as_deref())
                .bind(pattern.as_deref())
                .bind(f.group)
                .bind(f.tag)
                .bind(f.limit.unwrap_or(i64::from(i32::MAX)))
                .bind(f.offset)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok((rows.into_iter().map(Device::from).collect(), total))
            }

            async fn update_device(
                &self,
                tenant: TenantId,
                id: DeviceId,
                u: &DeviceUpdate<'_>,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<Device, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                if let Some(site) = u.site_id {
                    site_of_tenant(&mut tx, tenant, site).await?;
                }
                let row: Option<DeviceRow> = sqlx::query_as(
                    "UPDATE devices SET name = $3, host = $4, \
                     sector_id = CASE WHEN site_id IS NOT DISTINCT FROM $5 THEN sector_id ELSE NULL END, \
                     site_id = $5, api_port = $6, transport = $7, fingerprint = $8, \
                     credentials = CASE WHEN $9 THEN $10 ELSE credentials END, updated_at = $11 \
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant.0)
                .bind(id.0)
                .bind(u.name.trim())
                .bind(u.host.trim())
                .bind(u.site_id.map(|s| s.0))
                .bind(i64::from(u.api_port))
                .bind(u.transport)
                .bind(u.fingerprint)
                .bind(u.credentials.is_some())
                .bind(u.credentials.flatten())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let d = Device::from(row.ok_or(StoreError::NotFound("device"))?);
                append(&mut tx, &with_resource(audit, "device", d.id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(d)
            }

            async fn delete_device(
                &self,
                tenant: TenantId,
                id: DeviceId,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<(), StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                // Registration rows and their hourly sums carry no foreign key (see migration 0023
                // on PostgreSQL).
                for sql in [
                    "DELETE FROM registrations WHERE tenant_id = $1 AND device_id = $2",
                    "DELETE FROM signal_hourly WHERE tenant_id = $1 AND device_id = $2",
                ] {
                    sqlx::query(sql)
                        .bind(tenant.0)
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                let done = sqlx::query("DELETE FROM devices WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("device"));
                }
                append(&mut tx, &with_resource(audit, "device", id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn agent_devices(&self, agent: &Agent) -> Result<Vec<(Device, Option<Vec<u8>>)>, StoreError> {
                let mut tx = self.tx(Some(agent.tenant_id)).await?;
                let rows: Vec<DeviceRow> =
                    sqlx::query_as("SELECT * FROM devices WHERE tenant_id = $1 AND site_id = $2 ORDER BY name")
                        .bind(agent.tenant_id.0)
                        .bind(agent.site_id.0)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                Ok(rows
                    .into_iter()
                    .map(|mut r| {
                        let sealed = r.credentials.take();
                        let mut d = Device::from(r);
                        d.has_credentials = sealed.is_some();
                        (d, sealed)
                    })
                    .collect())
            }

            async fn create_agent(
                &self,
                tenant: TenantId,
                site: SiteId,
                name: &str,
                token_hash: &str,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<Agent, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                site_of_tenant(&mut tx, tenant, site).await?;
                let row: AgentRow = sqlx::query_as(
                    "INSERT INTO agents (id, tenant_id, site_id, name, token_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     RETURNING id, tenant_id, site_id, name, last_seen_at, created_at, revoked_at, spool_dropped",
                )
                .bind(Uuid::new_v4())
                .bind(tenant.0)
                .bind(site.0)
                .bind(name.trim())
                .bind(token_hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let a = Agent::from(row);
                append(&mut tx, &with_resource(audit, "agent", a.id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(a)
            }

            async fn list_agents(&self, tenant: TenantId) -> Result<Vec<Agent>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<AgentRow> = sqlx::query_as(
                    "SELECT id, tenant_id, site_id, name, last_seen_at, created_at, revoked_at, spool_dropped FROM agents \
                     WHERE tenant_id = $1 ORDER BY name",
                )
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(Agent::from).collect())
            }

            async fn revoke_agent(
                &self,
                tenant: TenantId,
                id: AgentId,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                soft_revoke(&mut tx, Revocable::Agent, tenant, id.0, micros(now), audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn agent_by_token(&self, token_hash: &str) -> Result<Option<Agent>, StoreError> {
                let row: Option<AgentRow> = sqlx::query_as(
                    "SELECT id, tenant_id, site_id, name, last_seen_at, created_at, revoked_at, spool_dropped FROM agents \
                     WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(row.map(Agent::from))
            }

            async fn live_agent(&self, id: AgentId) -> Result<Option<Agent>, StoreError> {
                let row: Option<AgentRow> = sqlx::query_as(
                    "SELECT id, tenant_id, site_id, name, last_seen_at, created_at, revoked_at, spool_dropped FROM agents \
                     WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(row.map(Agent::from))
            }

            async fn enrol_tunnel_peer(
                &self,
                tenant: TenantId,
                agent: AgentId,
                public_key: &str,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<TunnelPeer, StoreError> {
                let now = micros(now);
                // Subnets are allocated across tenants: one allocation at a time, outside RLS.
                let (_w, mut tx) = self.wtx(None).await?;
                Self::lock_chain(&mut tx, super::PLATFORM_CHAIN).await?;
                let current: Option<(Option<String>,)> = sqlx::query_as(
                    "SELECT tunnel_address FROM agents WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL",
                )
                .bind(agent.0)
                .bind(tenant.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some((current,)) = current else { return Err(StoreError::NotFound("agent")) };
                let address = match current {
                    Some(a) => a,
                    None => {
                        let subnet: Option<(Option<i64>,)> =
                            sqlx::query_as("SELECT CAST(vpn_subnet AS BIGINT) FROM tenants WHERE id = $1")
                                .bind(tenant.0)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(map_err)?;
                        let subnet = match subnet.and_then(|s| s.0) {
                            Some(n) => n,
                            None => {
                                let taken: Vec<(i64,)> = sqlx::query_as(
                                    "SELECT CAST(vpn_subnet AS BIGINT) FROM tenants WHERE vpn_subnet IS NOT NULL",
                                )
                                .fetch_all(&mut *tx)
                                .await
                                .map_err(map_err)?;
                                let taken: Vec<i64> = taken.into_iter().map(|t| t.0).collect();
                                let n = lowest_free(&taken, 1, 255)
                                    .ok_or_else(|| StoreError::Conflict("every tunnel subnet is in use".into()))?;
                                sqlx::query("UPDATE tenants SET vpn_subnet = $1 WHERE id = $2")
                                    .bind(n as i32)
                                    .bind(tenant.0)
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(map_err)?;
                                n
                            }
                        };
                        let used: Vec<(String,)> = sqlx::query_as(
                            "SELECT tunnel_address FROM agents WHERE tenant_id = $1 AND tunnel_address IS NOT NULL",
                        )
                        .bind(tenant.0)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                        let hosts: Vec<i64> = used
                            .iter()
                            .filter_map(|(a,)| a.parse::<std::net::Ipv4Addr>().ok())
                            .map(|a| i64::from(a.octets()[3]))
                            .collect();
                        let host = lowest_free(&hosts, 2, 254).ok_or_else(|| {
                            StoreError::Conflict("this tenant's tunnel subnet is full (253 agents)".into())
                        })?;
                        std::net::Ipv4Addr::new(10, 99, subnet as u8, host as u8).to_string()
                    }
                };
                let row: TunnelPeerRow = sqlx::query_as(
                    "UPDATE agents SET wg_public_key = $1, tunnel_address = $2 WHERE id = $3 AND tenant_id = $4 \
                     RETURNING id, tenant_id, site_id, name, wg_public_key, tunnel_address",
                )
                .bind(public_key)
                .bind(&address)
                .bind(agent.0)
                .bind(tenant.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                append(&mut tx, &with_resource(audit, "agent", agent.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                TunnelPeer::try_from(row)
            }

            async fn remove_tunnel_peer(
                &self,
                tenant: TenantId,
                agent: AgentId,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<(), StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let done = sqlx::query(
                    "UPDATE agents SET wg_public_key = NULL, tunnel_address = NULL \
                     WHERE id = $1 AND tenant_id = $2 AND wg_public_key IS NOT NULL",
                )
                .bind(agent.0)
                .bind(tenant.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("tunnel peer"));
                }
                append(&mut tx, &with_resource(audit, "agent", agent.to_string()), now).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn tunnel_peers(&self, tenant: Option<TenantId>) -> Result<Vec<TunnelPeer>, StoreError> {
                let mut tx = self.tx(tenant).await?;
                let rows: Vec<TunnelPeerRow> = sqlx::query_as(
                    "SELECT id, tenant_id, site_id, name, wg_public_key, tunnel_address FROM agents \
                     WHERE wg_public_key IS NOT NULL AND tunnel_address IS NOT NULL AND revoked_at IS NULL \
                     AND ($1 IS NULL OR tenant_id = $1) ORDER BY tunnel_address",
                )
                .bind(tenant.map(|t| t.0))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                rows.into_iter().map(TunnelPeer::try_from).collect()
            }

            async fn ingest(
                &self,
                agent: &Agent,
                batch: &tod_core::telemetry::Batch,
                now: DateTime<Utc>,
            ) -> Result<Ingested, StoreError> {
                let (_w, mut tx) = self.wtx(Some(agent.tenant_id)).await?;
                let mut learned = None;
                let done = ingest_in(&mut tx, agent, batch, now, &self.link_cache, &mut learned).await?;
                tx.commit().await.map_err(map_err)?;
                if let Some(learned) = learned {
                    self.link_cache.learn(learned);
                }
                Ok(done)
            }

            async fn page_links(
                &self,
                tenant: TenantId,
                state: Option<tod_core::links::LinkState>,
                device: Option<DeviceId>,
                limit: Option<i64>,
                from: $crate::store::fleet::LinksFrom,
            ) -> Result<Vec<WirelessLink>, StoreError> {
                use $crate::store::fleet::LinksFrom;
                let filter = $crate::store::fleet::link_filter(state.is_some(), device.is_some());
                let mut tx = self.tx(Some(tenant)).await?;
                let sql = match from {
                    // The keys of the page first, then their rows: the rows skipped over by the
                    // offset are read from the index, not fetched whole (a page 24 000 links in
                    // took 24 ms on PostgreSQL, 2.8 ms this way).
                    LinksFrom::Offset(_) => format!(
                        "SELECT l.* FROM (SELECT ap_device_id, cpe_device_id FROM wireless_links WHERE {filter} \
                         ORDER BY ap_device_id, cpe_device_id LIMIT $4 OFFSET $5) k \
                         JOIN wireless_links l ON l.ap_device_id = k.ap_device_id AND l.cpe_device_id = k.cpe_device_id \
                         ORDER BY l.ap_device_id, l.cpe_device_id"
                    ),
                    // A statement of its own, so the planner seeks to the key on either backend.
                    LinksFrom::After(..) => format!(
                        "SELECT * FROM wireless_links WHERE {filter} AND (ap_device_id, cpe_device_id) > ($5, $6) \
                         ORDER BY ap_device_id, cpe_device_id LIMIT $4"
                    ),
                };
                let (offset, (ap, cpe)) = match from {
                    LinksFrom::Offset(offset) => (offset, (None, None)),
                    LinksFrom::After(ap, cpe) => (0, (Some(ap.0), Some(cpe.0))),
                };
                let mut q = sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(sql)).bind(tenant.0);
                // Unused numbers are bound all the same: each statement names only its own.
                q = q
                    .bind(state.map(|s| s.as_str()))
                    .bind(device.map(|d| d.0))
                    .bind(limit.unwrap_or(i64::MAX));
                q = match from {
                    LinksFrom::Offset(_) => q.bind(offset),
                    LinksFrom::After(..) => q.bind(ap).bind(cpe),
                };
                let rows: Vec<LinkRow> = q.fetch_all(&mut *tx).await.map_err(map_err)?;
                Ok(rows.into_iter().map(WirelessLink::from).collect())
            }

            async fn count_links(
                &self,
                tenant: TenantId,
                state: Option<tod_core::links::LinkState>,
                device: Option<DeviceId>,
            ) -> Result<i64, StoreError> {
                let filter = $crate::store::fleet::link_filter(state.is_some(), device.is_some());
                let mut tx = self.tx(Some(tenant)).await?;
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM wireless_links WHERE {filter}")))
                    .bind(tenant.0)
                    .bind(state.map(|s| s.as_str()))
                    .bind(device.map(|d| d.0))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)
            }

            async fn age_fleet(&self, now: DateTime<Utc>, poll_interval_secs: i64) -> Result<Aging, StoreError> {
                use tod_core::links::{LinkConfig, LinkTracker};
                let now = micros(now);
                let interval = chrono::Duration::seconds(poll_interval_secs.max(1));
                let silent_before = now - interval * 3;
                let (_w, mut tx) = self.wtx(None).await?;
                let turning: Vec<(Uuid, Uuid, String, String)> = sqlx::query_as(
                    "SELECT tenant_id, id, name, status FROM devices WHERE status <> 'unreachable' \
                     AND site_id IN (SELECT site_id FROM agents WHERE revoked_at IS NULL \
                     AND last_seen_at IS NOT NULL AND last_seen_at < $1)",
                )
                .bind(silent_before)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let mut streams: std::collections::BTreeMap<Uuid, Vec<StreamItem>> = Default::default();
                for (t, d, name, from) in turning {
                    let change = tod_core::events::DeviceChange::Status {
                        from: Some(from.clone()),
                        to: "unreachable".into(),
                    };
                    let message = format!("{} (its agent stopped reporting)", change.message(&name));
                    insert_device_event(&mut tx, TenantId(t), DeviceId(d), &change, &message, now).await?;
                    streams.entry(t).or_default().push(StreamItem {
                        kind: "device.status",
                        data: serde_json::json!({
                            "device_id": d, "hostname": name, "from": from, "to": "unreachable", "message": message,
                        }),
                        at: now,
                    });
                }
                let unreachable = sqlx::query(
                    "UPDATE devices SET status = 'unreachable', updated_at = $1 WHERE status <> 'unreachable' \
                     AND site_id IN (SELECT site_id FROM agents WHERE revoked_at IS NULL \
                     AND last_seen_at IS NOT NULL AND last_seen_at < $2)",
                )
                .bind(now)
                .bind(silent_before)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                // APs overdue by at least one interval whose agent still reports, and has
                // delivered two intervals past the AP's last report: the AP is missing from what
                // the agent polls. An agent that stopped right after the AP's last report (its
                // last delivery lags the collection by its batching) is not evidence against the
                // AP: its site goes unreachable instead, with its links as they were.
                let candidates: Vec<(Uuid, Uuid, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT la.tenant_id, la.ap_device_id, la.last_report_at, a.last_seen_at FROM link_aps la \
                     JOIN devices d ON d.id = la.ap_device_id \
                     JOIN agents a ON a.site_id = d.site_id AND a.revoked_at IS NULL \
                     WHERE la.last_report_at < $1 AND a.last_seen_at >= $2 ORDER BY la.ap_device_id",
                )
                .bind(now - interval)
                .bind(silent_before)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let mut overdue: Vec<(Uuid, Uuid, DateTime<Utc>)> = candidates
                    .into_iter()
                    .filter(|(_, _, last, seen)| *seen >= *last + interval * 2)
                    .map(|(t, ap, last, _)| (t, ap, last))
                    .collect();
                overdue.dedup();
                let mut link_changes = 0;
                for (tenant, ap, last) in overdue {
                    let config = LinkConfig {
                        poll_interval_secs: interval.num_seconds(),
                        ..LinkConfig::default()
                    };
                    let mut tracker = LinkTracker::new(config);
                    let rows: Vec<LinkRow> = sqlx::query_as(
                        "SELECT * FROM wireless_links WHERE tenant_id = $1 AND ap_device_id = $2 \
                         AND state IN ('discovered', 'active', 'degraded', 'down')",
                    )
                    .bind(tenant)
                    .bind(ap)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    for link in rows.iter().filter_map(LinkRow::to_link) {
                        tracker.restore_link(link);
                    }
                    tracker.restore_ap_last_report(DeviceId(ap), last);
                    let changes = tracker.tick_ap(DeviceId(ap), now);
                    if changes.is_empty() {
                        continue;
                    }
                    link_changes += changes.len();
                    let links: Vec<&tod_core::links::Link> = tracker.links_of_ap(DeviceId(ap)).collect();
                    write_links(&mut tx, TenantId(tenant), &links, &changes, streams.entry(tenant).or_default()).await?;
                    // The AP's links changed behind what ingest last wrote (see `link_cache`).
                    sqlx::query("UPDATE link_aps SET version = version + 1 WHERE ap_device_id = $1")
                        .bind(ap)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                // One "agent offline" event per site whose live agent went silent, not one per
                // device; it resolves itself when no silent agent is left at the site.
                let silent: Vec<(Uuid, Uuid, String, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT a.tenant_id, a.site_id, a.name, a.last_seen_at FROM agents a \
                     WHERE a.revoked_at IS NULL AND a.last_seen_at IS NOT NULL AND a.last_seen_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM site_alert_events e WHERE e.site_id = a.site_id \
                     AND e.kind = 'agent_offline' AND e.state = 'active' AND e.rule_id IS NULL)",
                )
                .bind(silent_before)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let mut raised_sites = std::collections::HashSet::new();
                let mut windows: std::collections::HashMap<Uuid, Vec<tod_core::alerts::MaintenanceWindow>> =
                    Default::default();
                for (tenant, site, name, last_seen) in silent {
                    if raised_sites.contains(&site) {
                        continue;
                    }
                    // A site in maintenance: the outage is expected; record it held back, once
                    // per window occurrence, and raise it if the agent is still silent after.
                    if !windows.contains_key(&tenant) {
                        let w = windows_in(&mut tx, TenantId(tenant), now, now).await?;
                        windows.insert(tenant, w);
                    }
                    let held = tod_core::alerts::suppressing_window_for_site(&windows[&tenant], SiteId(site), now);
                    if let Some(window) = held {
                        let since = windows[&tenant]
                            .iter()
                            .find(|w| w.id == window)
                            .and_then(|w| w.occurrence(now))
                            .map_or(now, |o| o.0);
                        let recorded: Option<(Uuid,)> = sqlx::query_as(
                            "SELECT id FROM suppressed_alerts WHERE tenant_id = $1 AND window_id = $2 \
                             AND site_id = $3 AND source = 'fleet' AND at >= $4",
                        )
                        .bind(tenant)
                        .bind(window.0)
                        .bind(site)
                        .bind(micros(since))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                        if recorded.is_none() {
                            let held_back = Suppression {
                                window,
                                rule: None,
                                device: None,
                                site: Some(SiteId(site)),
                                source: "fleet",
                                severity: tod_core::alerts::Severity::Critical,
                                message: format!(
                                    "Agent {name} has not reported since {} (during maintenance)",
                                    last_seen.format("%Y-%m-%d %H:%M:%S UTC")
                                ),
                                at: now,
                            };
                            insert_suppressed(&mut tx, TenantId(tenant), &[held_back]).await?;
                        }
                        continue;
                    }
                    raised_sites.insert(site);
                    let event = Uuid::new_v4();
                    let message = format!(
                        "Agent {name} has not reported since {}: the site's devices are unreachable (not known offline)",
                        last_seen.format("%Y-%m-%d %H:%M:%S UTC")
                    );
                    streams.entry(tenant).or_default().push(StreamItem {
                        kind: "site_alert.raised",
                        data: serde_json::json!({
                            "event_id": event, "site_id": site, "kind": "agent_offline", "severity": "critical",
                            "message": message,
                        }),
                        at: now,
                    });
                    sqlx::query(
                        "INSERT INTO site_alert_events (id, tenant_id, site_id, kind, severity, message, state, \
                         consecutive_hits, triggered_at) VALUES ($1, $2, $3, 'agent_offline', 'critical', $4, \
                         'active', 1, $5)",
                    )
                    .bind(event)
                    .bind(tenant)
                    .bind(site)
                    .bind(message)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                let resolved: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(
                    "UPDATE site_alert_events SET state = 'resolved', resolved_at = $1 \
                     WHERE kind = 'agent_offline' AND state = 'active' AND rule_id IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.site_id = site_alert_events.site_id \
                     AND a.revoked_at IS NULL AND a.last_seen_at IS NOT NULL AND a.last_seen_at < $2) \
                     RETURNING id, tenant_id, site_id",
                )
                .bind(now)
                .bind(silent_before)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                for (event, tenant, site) in &resolved {
                    streams.entry(*tenant).or_default().push(StreamItem {
                        kind: "site_alert.resolved",
                        data: serde_json::json!({ "event_id": event, "site_id": site, "kind": "agent_offline" }),
                        at: now,
                    });
                }
                let resolved = resolved.len() as u64;
                // Last, in tenant order: the stream heads are the last locks this transaction takes.
                for (tenant, items) in &streams {
                    push_stream(&mut tx, TenantId(*tenant), items, now).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(Aging {
                    devices_unreachable: unreachable,
                    link_changes,
                    agent_alerts_raised: raised_sites.len(),
                    agent_alerts_resolved: resolved,
                })
            }

            async fn retain(
                &self,
                now: DateTime<Utc>,
                wall: DateTime<Utc>,
                registrations: chrono::Duration,
                metrics: chrono::Duration,
            ) -> Result<u64, StoreError> {
                let (now, wall) = (micros(now), micros(wall));
                let (_w, mut tx) = self.wtx(None).await?;
                let mut removed = 0;
                for (sql, cutoff) in [
                    ("DELETE FROM registrations WHERE collected_at < $1", now - registrations),
                    ("DELETE FROM signal_hourly WHERE hour < $1", now - registrations),
                    ("DELETE FROM signal_hourly_dirty WHERE hour < $1", now - registrations),
                    ("DELETE FROM device_metrics WHERE collected_at < $1", now - metrics),
                    ("DELETE FROM radio_stats WHERE collected_at < $1", now - registrations),
                    ("DELETE FROM interface_traffic WHERE collected_at < $1", now - metrics),
                    ("DELETE FROM link_events WHERE at < $1", now - metrics),
                    ("DELETE FROM device_events WHERE at < $1", now - metrics),
                    ("DELETE FROM event_stream WHERE recorded_at < $1", now - chrono::Duration::hours(24)),
                    ("DELETE FROM auth_sessions WHERE expires_at < $1", wall),
                    ("DELETE FROM srp_sessions WHERE expires_at < $1", wall),
                ] {
                    removed += sqlx::query(sql)
                        .bind(cutoff)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                }
                tx.commit().await.map_err(map_err)?;
                Ok(removed)
            }

            async fn try_lease(
                &self,
                name: &str,
                holder: Uuid,
                now: DateTime<Utc>,
                ttl: chrono::Duration,
            ) -> Result<bool, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(None).await?;
                let got: Option<(Uuid,)> = sqlx::query_as(
                    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder RETURNING holder",
                )
                .bind(name)
                .bind(holder)
                .bind(now + ttl)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(got.is_some_and(|(h,)| h == holder))
            }

            async fn count_registrations(&self, tenant: TenantId, device: DeviceId) -> Result<i64, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                sqlx::query_scalar("SELECT COUNT(*) FROM registrations WHERE tenant_id = $1 AND device_id = $2")
                    .bind(tenant.0)
                    .bind(device.0)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)
            }

            async fn signal_sums(
                &self,
                tenant: TenantId,
                ap: DeviceId,
                mac: &str,
                since: DateTime<Utc>,
                until: DateTime<Utc>,
                width: i64,
            ) -> Result<Vec<tod_core::signal::BucketSum>, StoreError> {
                use $crate::store::fleet::{bucket_sum, hour_floor};
                let (since, until) = (micros(since), micros(until));
                let hour = chrono::Duration::hours(1);
                let tick = chrono::Duration::microseconds(1);
                let width = width.max(1);
                // A read a second asks for all of this: a few statements in one transaction.
                let mut tx = self.tx(Some(tenant)).await?;
                let ours: Option<i32> = sqlx::query_scalar("SELECT 1 FROM devices WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(ap.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if ours.is_none() {
                    return Err(StoreError::NotFound("device"));
                }
                // Whole hours in (since, until] that the hourly sums hold: [first, last).
                let mut sums = Vec::new();
                let mut raw: Vec<(DateTime<Utc>, DateTime<Utc>)> = vec![(since, until)];
                let first = hour_floor(since) + hour;
                if width % 3600 == 0 && hour_floor(until) > first {
                    // How far the sums go, and the dirty hours they may hold (one statement).
                    let marks: Vec<(i32, DateTime<Utc>)> = sqlx::query_as(
                        "SELECT 0, rolled_until FROM signal_rollup_state WHERE id = 1 UNION ALL \
                         SELECT 1, hour FROM signal_hourly_dirty WHERE tenant_id = $1 AND hour >= $2 AND hour < $3",
                    )
                    .bind(tenant.0)
                    .bind(first)
                    .bind(hour_floor(until))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let rolled = marks.iter().find(|m| m.0 == 0).map(|m| m.1);
                    let last = rolled.map_or(first, |r| r.min(hour_floor(until)));
                    if last > first {
                        let dirty: Vec<DateTime<Utc>> =
                            marks.iter().filter(|m| m.0 == 1 && m.1 < last).map(|m| m.1).collect();
                        // Summed into the answer's buckets here: a month of hours is 720 rows,
                        // its 4-hour buckets 180.
                        let skip = if dirty.is_empty() {
                            String::new()
                        } else {
                            format!(" AND hour NOT IN ({})", placeholders(7, dirty.len()))
                        };
                        let sql = format!(
                            "SELECT ({HOUR_EPOCH_SECS} / $6) * $6 AS b, CAST(SUM(signal_sum) AS BIGINT), \
                             CAST(SUM(samples) AS BIGINT), MIN(signal_min), MAX(signal_max) FROM signal_hourly \
                             WHERE tenant_id = $1 AND device_id = $2 AND mac = $3 AND hour >= $4 AND hour < $5{skip} \
                             GROUP BY b"
                        );
                        let mut q = sqlx::query_as::<_, (i64, i64, i64, i16, i16)>(sqlx::AssertSqlSafe(sql))
                            .bind(tenant.0)
                            .bind(ap.0)
                            .bind(mac)
                            .bind(first)
                            .bind(last)
                            .bind(width);
                        for h in &dirty {
                            q = q.bind(*h);
                        }
                        sums.extend(q.fetch_all(&mut *tx).await.map_err(map_err)?.into_iter().map(bucket_sum));
                        // The rest from the registrations: before the first whole hour, from the
                        // last one on, and the dirty hours.
                        raw = vec![(since, first - tick), (last - tick, until)];
                        raw.extend(dirty.iter().map(|h| (*h - tick, *h + hour - tick)));
                    }
                }
                // Every stretch read from the registrations, in one statement: each part is a
                // range of the client's index.
                let part = |k: usize| {
                    format!(
                        "SELECT ({EPOCH_SECS} / $4) * $4 AS b, SUM(signal_dbm), COUNT(*), MIN(signal_dbm), \
                         MAX(signal_dbm) FROM registrations WHERE tenant_id = $1 AND mac = $3 AND device_id = $2 \
                         AND collected_at > ${} AND collected_at <= ${} AND signal_dbm IS NOT NULL GROUP BY b",
                        5 + 2 * k,
                        6 + 2 * k
                    )
                };
                let sql = (0..raw.len()).map(part).collect::<Vec<_>>().join(" UNION ALL ");
                let mut q = sqlx::query_as::<_, (i64, i64, i64, i16, i16)>(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .bind(ap.0)
                    .bind(mac)
                    .bind(width);
                for (after, upto) in &raw {
                    q = q.bind(*after).bind(*upto);
                }
                sums.extend(q.fetch_all(&mut *tx).await.map_err(map_err)?.into_iter().map(bucket_sum));
                Ok(sums)
            }

            async fn rollup_signal(
                &self,
                now: DateTime<Utc>,
                budget: std::time::Duration,
            ) -> Result<$crate::store::fleet::Rollup, StoreError> {
                use $crate::store::fleet::{ROLLUP_GRACE, hour_floor};
                let started = std::time::Instant::now();
                let hour = chrono::Duration::hours(1);
                // Hours before `limit` have closed at least the grace ago.
                let limit = hour_floor(micros(now) - ROLLUP_GRACE);
                let mut pass = $crate::store::fleet::Rollup::default();
                // Dirty hours first: reads take them from the registrations until then. (Marks of
                // hours the sweep below sums for the first time stay: a batch may have marked
                // one after the sweep's sums were read; summing it once more is harmless.)
                let dirty: Vec<(Uuid, DateTime<Utc>, i64)> = {
                    let mut tx = self.tx(None).await?;
                    sqlx::query_as(
                        "SELECT tenant_id, hour, marks FROM signal_hourly_dirty WHERE hour < $1 ORDER BY hour LIMIT 1000",
                    )
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?
                };
                for (tenant, at, marks) in dirty {
                    if started.elapsed() >= budget {
                        return Ok(pass);
                    }
                    let (_w, mut tx) = self.wtx(None).await?;
                    sum_signal_hour(&mut tx, at, Some(tenant)).await?;
                    // The mark goes only if no batch marked the hour again meanwhile (one still
                    // in flight holds the mark's row until it commits, and then it has changed).
                    sqlx::query("DELETE FROM signal_hourly_dirty WHERE tenant_id = $1 AND hour = $2 AND marks = $3")
                        .bind(tenant)
                        .bind(at)
                        .bind(marks)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    pass.dirty += 1;
                }
                let rolled: Option<DateTime<Utc>> = {
                    let mut tx = self.tx(None).await?;
                    sqlx::query_scalar("SELECT rolled_until FROM signal_rollup_state WHERE id = 1")
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?
                };
                let mut next = rolled.unwrap_or(limit - chrono::Duration::days(30));
                while next < limit {
                    if started.elapsed() >= budget {
                        return Ok(pass);
                    }
                    let (_w, mut tx) = self.wtx(None).await?;
                    sum_signal_hour(&mut tx, next, None).await?;
                    sqlx::query(
                        "INSERT INTO signal_rollup_state (id, rolled_until) VALUES (1, $1) \
                         ON CONFLICT (id) DO UPDATE SET rolled_until = excluded.rolled_until",
                    )
                    .bind(next + hour)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    next += hour;
                    pass.hours += 1;
                }
                pass.caught_up = true;
                Ok(pass)
            }

            async fn site_alert_events(
                &self,
                tenant: TenantId,
                site: SiteId,
                state: Option<&str>,
                limit: i64,
            ) -> Result<(Vec<SiteAlertEvent>, i64), StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<SiteAlertRow> = sqlx::query_as(
                    "SELECT * FROM site_alert_events WHERE tenant_id = $1 AND site_id = $2 \
                     AND ($3 IS NULL OR state = $3) ORDER BY triggered_at DESC LIMIT $4",
                )
                .bind(tenant.0)
                .bind(site.0)
                .bind(state)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM site_alert_events WHERE tenant_id = $1 AND site_id = $2 \
                     AND ($3 IS NULL OR state = $3)",
                )
                .bind(tenant.0)
                .bind(site.0)
                .bind(state)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok((rows.into_iter().map(SiteAlertEvent::from).collect(), total))
            }

            async fn resolve_site_alert_event(
                &self,
                tenant: TenantId,
                id: Uuid,
                by: Option<Uuid>,
                now: DateTime<Utc>,
            ) -> Result<SiteAlertEvent, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let row: Option<SiteAlertRow> = sqlx::query_as(
                    "UPDATE site_alert_events SET state = 'resolved', resolved_at = $3, resolved_by = $4 \
                     WHERE tenant_id = $1 AND id = $2 AND state = 'active' RETURNING *",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(micros(now))
                .bind(by)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                row.map(SiteAlertEvent::from)
                    .ok_or(StoreError::NotFound("alert event (or it is already resolved)"))
            }

            async fn active_site_alerts(&self, tenant: TenantId) -> Result<Vec<(SiteId, i64)>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<(Uuid, i64)> = sqlx::query_as(
                    "SELECT site_id, COUNT(*) FROM site_alert_events WHERE tenant_id = $1 AND state = 'active' \
                     GROUP BY site_id",
                )
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(|(s, n)| (SiteId(s), n)).collect())
            }

            async fn site_links(&self, tenant: TenantId, site: SiteId) -> Result<Vec<WirelessLink>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<LinkRow> = sqlx::query_as(
                    "SELECT * FROM wireless_links WHERE tenant_id = $1 AND (\
                     ap_device_id IN (SELECT id FROM devices WHERE tenant_id = $1 AND site_id = $2) OR \
                     cpe_device_id IN (SELECT id FROM devices WHERE tenant_id = $1 AND site_id = $2)) \
                     ORDER BY ap_device_id, cpe_device_id",
                )
                .bind(tenant.0)
                .bind(site.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(WirelessLink::from).collect())
            }

            async fn create_sector(
                &self,
                tenant: TenantId,
                site: SiteId,
                fields: SectorFields<'_>,
                now: DateTime<Utc>,
            ) -> Result<Sector, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                if !site_is_tenants(&mut tx, tenant, site).await? {
                    return Err(StoreError::NotFound("site"));
                }
                let row: SectorRow = sqlx::query_as(
                    "INSERT INTO sectors (id, tenant_id, site_id, name, azimuth, description, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                     RETURNING id, site_id, name, azimuth, description, created_at, updated_at",
                )
                .bind(Uuid::new_v4())
                .bind(tenant.0)
                .bind(site.0)
                .bind(fields.name.map(str::trim).unwrap_or_default())
                .bind(fields.azimuth.flatten())
                .bind(fields.description.flatten())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(row.with_stats(tod_core::sites::sector_stats(0, [])))
            }

            async fn list_sectors(&self, tenant: TenantId, site: SiteId) -> Result<Vec<Sector>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<SectorRow> = sqlx::query_as(
                    "SELECT id, site_id, name, azimuth, description, created_at, updated_at FROM sectors \
                     WHERE tenant_id = $1 AND site_id = $2 ORDER BY name",
                )
                .bind(tenant.0)
                .bind(site.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let members: Vec<(Uuid, Uuid)> = sqlx::query_as(
                    "SELECT id, sector_id FROM devices WHERE tenant_id = $1 AND site_id = $2 AND sector_id IS NOT NULL",
                )
                .bind(tenant.0)
                .bind(site.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let links: Vec<LinkRow> = sqlx::query_as(
                    "SELECT w.* FROM wireless_links w JOIN devices d ON d.id = w.ap_device_id \
                     WHERE w.tenant_id = $1 AND d.site_id = $2 AND d.sector_id IS NOT NULL",
                )
                .bind(tenant.0)
                .bind(site.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let links: Vec<tod_core::links::Link> = links.iter().filter_map(LinkRow::to_link).collect();
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        let in_sector: std::collections::HashSet<Uuid> =
                            members.iter().filter(|m| m.1 == row.id).map(|m| m.0).collect();
                        let ap_links = links.iter().filter(|l| in_sector.contains(&l.key.ap.0));
                        let stats = tod_core::sites::sector_stats(in_sector.len() as u32, ap_links);
                        row.with_stats(stats)
                    })
                    .collect())
            }

            async fn update_sector(
                &self,
                tenant: TenantId,
                site: SiteId,
                id: Uuid,
                fields: SectorFields<'_>,
                now: DateTime<Utc>,
            ) -> Result<Sector, StoreError> {
                {
                    let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                    let done = sqlx::query(
                        "UPDATE sectors SET name = COALESCE($4, name), \
                         azimuth = CASE WHEN $5 THEN $6 ELSE azimuth END, \
                         description = CASE WHEN $7 THEN $8 ELSE description END, updated_at = $9 \
                         WHERE tenant_id = $1 AND site_id = $2 AND id = $3",
                    )
                    .bind(tenant.0)
                    .bind(site.0)
                    .bind(id)
                    .bind(fields.name.map(str::trim))
                    .bind(fields.azimuth.is_some())
                    .bind(fields.azimuth.flatten())
                    .bind(fields.description.is_some())
                    .bind(fields.description.flatten())
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound("sector"));
                    }
                    tx.commit().await.map_err(map_err)?;
                }
                self.list_sectors(tenant, site)
                    .await?
                    .into_iter()
                    .find(|s| s.id == id)
                    .ok_or(StoreError::NotFound("sector"))
            }

            async fn delete_sector(&self, tenant: TenantId, site: SiteId, id: Uuid) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let done = sqlx::query("DELETE FROM sectors WHERE tenant_id = $1 AND site_id = $2 AND id = $3")
                    .bind(tenant.0)
                    .bind(site.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("sector"));
                }
                tx.commit().await.map_err(map_err)
            }

            async fn set_device_sector(
                &self,
                tenant: TenantId,
                device: DeviceId,
                sector: Option<Uuid>,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let site: Option<(Option<Uuid>,)> =
                    sqlx::query_as("SELECT site_id FROM devices WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.0)
                        .bind(device.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                let Some((site,)) = site else { return Err(StoreError::NotFound("device")) };
                if let Some(sector) = sector {
                    let at: Option<(Uuid,)> = sqlx::query_as("SELECT site_id FROM sectors WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.0)
                        .bind(sector)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    let Some((at,)) = at else { return Err(StoreError::NotFound("sector")) };
                    if site != Some(at) {
                        return Err(StoreError::Invalid(
                            "sector_id: the sector is at another site than the device".into(),
                        ));
                    }
                }
                sqlx::query("UPDATE devices SET sector_id = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(device.0)
                    .bind(sector)
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn latest_clients(
                &self,
                tenant: TenantId,
                ap: DeviceId,
                since: DateTime<Utc>,
            ) -> Result<Vec<ClientEntry>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<ClientRow> = sqlx::query_as(
                    "SELECT r.mac, r.interface, r.signal_dbm, r.tx_ccq, r.tx_rate, r.rx_rate, r.distance_m, \
                     r.uptime_secs, r.collected_at, d.id AS device_id, d.name AS hostname \
                     FROM registrations r \
                     JOIN (SELECT mac, MAX(collected_at) AS latest FROM registrations \
                           WHERE tenant_id = $1 AND device_id = $2 AND collected_at > $3 GROUP BY mac) l \
                       ON l.mac = r.mac AND l.latest = r.collected_at \
                     LEFT JOIN devices d ON d.id = (SELECT di.device_id FROM device_interfaces di \
                       WHERE di.tenant_id = $1 AND di.mac = r.mac AND di.device_id <> $2 LIMIT 1) \
                     WHERE r.tenant_id = $1 AND r.device_id = $2 ORDER BY r.mac",
                )
                .bind(tenant.0)
                .bind(ap.0)
                .bind(micros(since))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(ClientEntry::from).collect())
            }

            async fn device_counts(&self, tenant: TenantId) -> Result<Vec<(Option<SiteId>, String, i64)>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<(Option<Uuid>, String, i64)> = sqlx::query_as(
                    "SELECT site_id, status, COUNT(*) FROM devices WHERE tenant_id = $1 GROUP BY site_id, status",
                )
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(|(s, st, n)| (s.map(SiteId), st, n)).collect())
            }
        }
    };
}

pub(crate) use impl_fleet_store;

/// Writes `discover_links` for a backend module (its `Tx` type): link discovery for one batch,
/// in the batch's transaction. The database holds the state; tod-core's `LinkTracker` is loaded
/// with just what the batch touches — the owners of the MACs its APs saw, the links and last
/// report times of those APs — applied in collection order, and written back with one event
/// per state change. No replica keeps link state in memory, so any replica can take any batch.
macro_rules! impl_discover_links {
    () => {
        /// Stores one batch in the caller's write transaction: the idempotency check, the site
        /// check, device state and events, metrics, interfaces, registration rows, link discovery
        /// and device alert rules. Nothing is committed here.
        async fn ingest_in(
            tx: &mut Tx,
            agent: &Agent,
            batch: &tod_core::telemetry::Batch,
            now: DateTime<Utc>,
            cache: &$crate::store::link_cache::LinkCache,
            learned: &mut Option<$crate::store::link_cache::Learned>,
        ) -> Result<Ingested, StoreError> {
            let now = micros(now);
            let tenant = agent.tenant_id;
            let seen: Option<(i64,)> = sqlx::query_as(
                "SELECT reports FROM ingest_batches WHERE agent_id = $1 AND idempotency_key = $2",
            )
            .bind(agent.id.0)
            .bind(&batch.idempotency_key)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
            if seen.is_some() {
                return Ok(Ingested::Duplicate);
            }
            // The batch's devices that are at the agent's site: what it names beyond them is
            // refused. (Reading the whole site for every batch read 250 rows for 8 reports.)
            let named: Vec<Uuid> = batch
                .reports
                .iter()
                .map(|r| r.device_id.0)
                .collect::<std::collections::BTreeSet<Uuid>>()
                .into_iter()
                .collect();
            let mut known: Vec<KnownDevice> = Vec::with_capacity(named.len());
            for chunk in named.chunks(500) {
                let sql = format!(
                    "SELECT id, name, status, last_seen_at, routeros_version, uptime_secs FROM devices \
                     WHERE tenant_id = $1 AND site_id = $2 AND id IN ({})",
                    placeholders(3, chunk.len())
                );
                let mut q = sqlx::query_as::<_, KnownDevice>(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .bind(agent.site_id.0);
                for d in chunk {
                    q = q.bind(*d);
                }
                known.extend(q.fetch_all(&mut **tx).await.map_err(map_err)?);
            }
            // The batch's devices by id, with their names (for alert messages).
            let ours: std::collections::HashMap<Uuid, String> =
                known.iter().map(|k| (k.id, k.name.clone())).collect();
            let mut logs: std::collections::HashMap<Uuid, tod_core::events::DeviceLog> =
                known.into_iter().map(|k| (k.id, k.log())).collect();
            let mut strangers: Vec<String> = batch
                .reports
                .iter()
                .filter(|r| !ours.contains_key(&r.device_id.0))
                .map(|r| r.device_id.to_string())
                .collect();
            if !strangers.is_empty() {
                strangers.sort();
                strangers.dedup();
                return Err(StoreError::Invalid(format!(
                    "devices not at this agent's site: {}",
                    strangers.join(", ")
                )));
            }
            let mut changes = Vec::new();
            let mut latest: std::collections::BTreeMap<Uuid, $crate::store::fleet::ReportedState> = std::collections::BTreeMap::new();
            for r in &batch.reports {
                if let Some(log) = logs.get_mut(&r.device_id.0) {
                    let name = ours.get(&r.device_id.0).map_or("", String::as_str);
                    for c in log.observe(r) {
                        changes.push((r.device_id, c.message(name), c, r.collected_at));
                    }
                }
                latest.entry(r.device_id.0).or_insert_with($crate::store::fleet::ReportedState::default).fold(r);
            }
            write_interfaces(tx, tenant, &latest).await?;
            update_devices(tx, tenant, &latest, now).await?;
            for chunk in batch.reports.chunks(REGISTRATION_ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO device_metrics (tenant_id, device_id, collected_at, status, cpu_load, free_memory, \
                     total_memory, temperature_c, uptime_secs) ",
                );
                q.push_values(chunk, |mut b, r| {
                    let res = r.resources.as_ref();
                    b.push_bind(tenant.0)
                        .push_bind(r.device_id.0)
                        .push_bind(micros(r.collected_at))
                        .push_bind(status_str(&r.status))
                        .push_bind(res.and_then(|x| x.cpu_load))
                        .push_bind(res.and_then(|x| x.free_memory).map(i64_of))
                        .push_bind(res.and_then(|x| x.total_memory).map(i64_of))
                        .push_bind(res.and_then(|x| x.temperature_c))
                        .push_bind(r.system.as_ref().and_then(|s| s.uptime_secs).map(i64_of));
                });
                q.build().execute(&mut **tx).await.map_err(map_err)?;
            }
            // Registration rows go in multi-row inserts: a tower's cycle is thousands of rows.
            let rows: Vec<RegistrationRow<'_>> = batch
                .reports
                .iter()
                .flat_map(|r| r.registrations.iter().flatten().map(move |g| (r, g)))
                .collect();
            insert_registrations(tx, tenant, &rows).await?;
            let registrations = rows.len();
            // Rows of an hour that may already be summed (an agent backfilling after an
            // outage): the hour is summed again by the next rollup pass, and read from the
            // registrations until then.
            let late: std::collections::BTreeSet<DateTime<Utc>> = rows
                .iter()
                .map(|(r, _)| $crate::store::fleet::hour_floor(micros(r.collected_at)))
                .filter(|h| *h + chrono::Duration::hours(1) <= now - $crate::store::fleet::LATE_AFTER)
                .collect();
            if !late.is_empty() {
                let mut q = sqlx::QueryBuilder::<Db>::new("INSERT INTO signal_hourly_dirty (tenant_id, hour) ");
                q.push_values(&late, |mut b, h| {
                    b.push_bind(tenant.0).push_bind(*h);
                });
                q.push(" ON CONFLICT (tenant_id, hour) DO UPDATE SET marks = signal_hourly_dirty.marks + 1");
                q.build().execute(&mut **tx).await.map_err(map_err)?;
            }
            insert_radio_and_traffic(tx, tenant, batch).await?;
            for (device, message, change, at) in &changes {
                insert_device_event(tx, tenant, *device, change, message, *at).await?;
            }
            let mut stream: Vec<StreamItem> = changes
                .iter()
                .map(|(device, message, change, at)| {
                    let (from, to) = change.values();
                    StreamItem {
                        kind: match change.kind() {
                            "reboot" => "device.reboot",
                            "version" => "device.version",
                            _ => "device.status",
                        },
                        data: serde_json::json!({
                            "device_id": device, "hostname": ours.get(&device.0),
                            "from": from, "to": to, "message": message,
                        }),
                        at: *at,
                    }
                })
                .collect();
            *learned = discover_links(tx, tenant, batch, cache, &mut stream).await?;
            evaluate_device_alerts(tx, tenant, agent.site_id, &ours, batch, now, &mut stream).await?;
            sqlx::query(
                "INSERT INTO ingest_batches (agent_id, idempotency_key, tenant_id, reports, received_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(agent.id.0)
            .bind(&batch.idempotency_key)
            .bind(tenant.0)
            .bind(batch.reports.len() as i64)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
            sqlx::query("UPDATE agents SET last_seen_at = $2 WHERE id = $1")
                .bind(agent.id.0)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            if batch.spool_dropped > 0 {
                note_spool_drops(tx, agent, batch.spool_dropped, now, &mut stream).await?;
            }
            push_stream(tx, tenant, &stream, now).await?;
            Ok(Ingested::Stored {
                reports: batch.reports.len(),
                registrations,
            })
        }

        /// (Re)writes the signal sums of the hour starting at `hour`, of one tenant or of all.
        async fn sum_signal_hour(tx: &mut Tx, hour: DateTime<Utc>, tenant: Option<Uuid>) -> Result<(), StoreError> {
            if let Some(setup) = ROLLUP_SETUP {
                sqlx::query(setup).execute(&mut **tx).await.map_err(map_err)?;
            }
            let forget = match tenant {
                Some(t) => sqlx::query("DELETE FROM signal_hourly WHERE hour = $1 AND tenant_id = $2").bind(hour).bind(t),
                None => sqlx::query("DELETE FROM signal_hourly WHERE hour = $1").bind(hour),
            };
            forget.execute(&mut **tx).await.map_err(map_err)?;
            sqlx::query(SUM_SIGNAL_HOUR)
                .bind(hour)
                .bind(hour + chrono::Duration::hours(1))
                .bind(tenant)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            Ok(())
        }

        /// Whether the site is the tenant's: a foreign key only proves it exists somewhere (§12.16).
        async fn site_is_tenants(tx: &mut Tx, tenant: TenantId, site: SiteId) -> Result<bool, StoreError> {
            let ours: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM sites WHERE id = $1 AND tenant_id = $2")
                .bind(site.0)
                .bind(tenant.0)
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
            Ok(ours.is_some())
        }

        /// Appends to the device event log.
        async fn insert_device_event(
            tx: &mut Tx,
            tenant: TenantId,
            device: DeviceId,
            change: &tod_core::events::DeviceChange,
            message: &str,
            at: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            let (from, to) = change.values();
            sqlx::query(
                "INSERT INTO device_events (id, tenant_id, device_id, kind, from_value, to_value, message, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(Uuid::new_v4())
            .bind(tenant.0)
            .bind(device.0)
            .bind(change.kind())
            .bind(from)
            .bind(to)
            .bind(message)
            .bind(micros(at))
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
            Ok(())
        }

        /// Refuses a site named in a body that is not the tenant's.
        async fn site_of_tenant(tx: &mut Tx, tenant: TenantId, site: SiteId) -> Result<(), StoreError> {
            match site_is_tenants(tx, tenant, site).await? {
                true => Ok(()),
                false => Err(StoreError::Invalid("site_id: not a site of this tenant".into())),
            }
        }

        /// Rewrites the interface rows of the reporting devices whose interfaces changed: one
        /// read for the batch, and writes only for what differs. (Rewriting every report's rows
        /// cost a delete and a statement per interface per report.) Device ids only: the batch's
        /// devices are already the agent's tenant's, and with `tenant_id` in the filter the
        /// planners chose the (tenant, MAC) index and walked every interface of the tenant.
        async fn write_interfaces(
            tx: &mut Tx,
            tenant: TenantId,
            latest: &std::collections::BTreeMap<Uuid, $crate::store::fleet::ReportedState>,
        ) -> Result<(), StoreError> {
            let reporting: Vec<Uuid> = latest
                .iter()
                .filter(|(_, s)| s.interfaces.is_some())
                .map(|(d, _)| *d)
                .collect();
            let mut stored = Vec::new();
            for chunk in reporting.chunks(500) {
                let sql = format!(
                    "SELECT device_id, name, mac, kind, running FROM device_interfaces WHERE device_id IN ({})",
                    placeholders(1, chunk.len())
                );
                let mut q = sqlx::query_as::<_, (Uuid, String, Option<String>, String, bool)>(sqlx::AssertSqlSafe(sql));
                for d in chunk {
                    q = q.bind(*d);
                }
                let rows = q.fetch_all(&mut **tx).await.map_err(map_err)?;
                stored.extend(rows.into_iter().map(|(device, name, mac, kind, running)| {
                    (device, $crate::store::fleet::InterfaceRow { name, mac, kind, running })
                }));
            }
            let changed = $crate::store::fleet::changed_interfaces(latest, stored);
            for chunk in changed.chunks(500) {
                let sql = format!(
                    "DELETE FROM device_interfaces WHERE device_id IN ({})",
                    placeholders(1, chunk.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for d in chunk {
                    q = q.bind(*d);
                }
                q.execute(&mut **tx).await.map_err(map_err)?;
            }
            let rows: Vec<(Uuid, DateTime<Utc>, &$crate::store::fleet::InterfaceRow)> = changed
                .iter()
                .filter_map(|d| latest.get(d)?.interfaces.as_ref().map(|(at, list)| (d, at, list)))
                .flat_map(|(d, at, list)| list.iter().map(move |i| (*d, *at, i)))
                .collect();
            for chunk in rows.chunks(500) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO device_interfaces (tenant_id, device_id, name, mac, kind, running, updated_at) ",
                );
                q.push_values(chunk, |mut b, (device, at, i)| {
                    b.push_bind(tenant.0)
                        .push_bind(*device)
                        .push_bind(i.name.as_str())
                        .push_bind(i.mac.as_deref())
                        .push_bind(i.kind.as_str())
                        .push_bind(i.running)
                        .push_bind(micros(*at));
                });
                q.build().execute(&mut **tx).await.map_err(map_err)?;
            }
            Ok(())
        }

        /// Writes each reporting device's newest state in one statement. Reports arrive in
        /// collection order per device; an older one never rolls the device's state back.
        async fn update_devices(
            tx: &mut Tx,
            tenant: TenantId,
            latest: &std::collections::BTreeMap<Uuid, $crate::store::fleet::ReportedState>,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            let rows: Vec<(&Uuid, &$crate::store::fleet::ReportedState)> = latest.iter().collect();
            for chunk in rows.chunks(500) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "WITH v (id, status, at, version, board, uptime_secs) AS (",
                );
                q.push_values(chunk, |mut b, (id, u)| {
                    b.push_bind(**id)
                        .push_bind(u.status)
                        .push_bind(u.at.map(micros))
                        .push_bind(u.version.as_deref())
                        .push_bind(u.board.as_deref())
                        .push_bind(u.uptime_secs);
                });
                q.push(
                    ") UPDATE devices SET status = v.status, last_seen_at = v.at, updated_at = ",
                )
                .push_bind(now)
                .push(
                    ", routeros_version = COALESCE(v.version, devices.routeros_version), \
                     board_name = COALESCE(v.board, devices.board_name), \
                     uptime_secs = COALESCE(v.uptime_secs, devices.uptime_secs) \
                     FROM v WHERE devices.id = v.id AND devices.tenant_id = ",
                )
                .push_bind(tenant.0)
                .push(" AND (devices.last_seen_at IS NULL OR devices.last_seen_at <= v.at)");
                q.build().execute(&mut **tx).await.map_err(map_err)?;
            }
            Ok(())
        }

        /// Records an agent's running count of reports its spool dropped, publishing
        /// `agent.data_lost` when it rose. A count below the stored one means the agent's spool
        /// started afresh (reinstalled, its directory wiped): all of it is new.
        async fn note_spool_drops(
            tx: &mut Tx,
            agent: &Agent,
            reported: u64,
            now: DateTime<Utc>,
            stream: &mut Vec<StreamItem>,
        ) -> Result<(), StoreError> {
            let reported = i64::try_from(reported).unwrap_or(i64::MAX);
            let (stored,): (i64,) = sqlx::query_as("SELECT spool_dropped FROM agents WHERE id = $1")
                .bind(agent.id.0)
                .fetch_one(&mut **tx)
                .await
                .map_err(map_err)?;
            if reported == stored {
                return Ok(());
            }
            sqlx::query("UPDATE agents SET spool_dropped = $2 WHERE id = $1")
                .bind(agent.id.0)
                .bind(reported)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            let lost = if reported > stored { reported - stored } else { reported };
            tracing::warn!(agent = %agent.id, site = %agent.site_id, lost, total = reported, "an agent's spool dropped reports");
            stream.push(StreamItem {
                kind: "agent.data_lost",
                data: serde_json::json!({
                    "agent_id": agent.id, "agent": agent.name, "site_id": agent.site_id,
                    "lost": lost, "total": reported,
                    "message": format!("agent {} dropped {lost} reports its spool could not keep (spool bounds)", agent.name),
                }),
                at: now,
            });
            Ok(())
        }

        async fn discover_links(
            tx: &mut Tx,
            tenant: TenantId,
            batch: &tod_core::telemetry::Batch,
            cache: &$crate::store::link_cache::LinkCache,
            stream: &mut Vec<StreamItem>,
        ) -> Result<Option<$crate::store::link_cache::Learned>, StoreError> {
            use std::collections::{BTreeMap, BTreeSet};
            use tod_core::links::{LinkConfig, LinkTracker};
            use tod_core::telemetry::PollStatus;

            // Only an access point's registration table lists its clients: a station's lists
            // the AP it is connected to, which is the same link seen from the other end.
            let ap_tables: Vec<Option<Vec<tod_core::telemetry::Registration>>> = batch
                .reports
                .iter()
                .map(|r| r.access_point_registrations())
                .collect();
            let mut aps: BTreeSet<Uuid> = BTreeSet::new();
            let mut macs: BTreeSet<String> = BTreeSet::new();
            for (r, table) in batch.reports.iter().zip(&ap_tables) {
                if let Some(regs) = table {
                    aps.insert(r.device_id.0);
                    macs.extend(regs.iter().map(|g| g.mac.to_string()));
                } else if matches!(r.status, PollStatus::Offline { .. }) {
                    aps.insert(r.device_id.0);
                }
            }
            if aps.is_empty() {
                return Ok(None);
            }
            let mut tracker = LinkTracker::new(LinkConfig::default());
            // The versions first, then what they vouch for: whatever changes in between shows
            // as a newer version at the next batch (see `link_cache`).
            let list = placeholders(2, aps.len());
            let sql = format!(
                "SELECT ap_device_id, last_report_at, version FROM link_aps WHERE tenant_id = $1 AND ap_device_id IN ({list})"
            );
            let mut q = sqlx::query_as::<_, (Uuid, DateTime<Utc>, i64)>(sqlx::AssertSqlSafe(sql)).bind(tenant.0);
            for ap in &aps {
                q = q.bind(*ap);
            }
            let mut versions: BTreeMap<Uuid, i64> = BTreeMap::new();
            for (ap, at, version) in q.fetch_all(&mut **tx).await.map_err(map_err)? {
                tracker.restore_ap_last_report(DeviceId(ap), at);
                versions.insert(ap, version);
            }
            let interfaces: i64 = sqlx::query_scalar("SELECT version FROM interface_versions WHERE tenant_id = $1")
                .bind(tenant.0)
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?
                .unwrap_or(0);
            let asked: Vec<(Uuid, Option<i64>)> = aps.iter().map(|ap| (*ap, versions.get(ap).copied())).collect();
            let known = cache.known(tenant.0, &asked, interfaces, &macs);

            // Which device owns each MAC: what the cache knows, and the rest looked up (a MAC
            // nobody owns is remembered as such).
            let mut owners: BTreeMap<String, Vec<Uuid>> =
                known.macs_to_read.iter().map(|m| (m.clone(), Vec::new())).collect();
            let mut by_device: BTreeMap<Uuid, Vec<tod_core::MacAddr>> = BTreeMap::new();
            let read = if known.macs_to_read.is_empty() {
                Vec::new()
            } else {
                mac_owners(tx, tenant, &known.macs_to_read).await?
            };
            for (device, mac) in read {
                owners.entry(mac.clone()).or_default().push(device);
                if let Ok(m) = mac.parse() {
                    by_device.entry(device).or_default().push(m);
                }
            }
            for (device, mac) in &known.owners {
                if let Ok(m) = mac.parse() {
                    by_device.entry(*device).or_default().push(m);
                }
            }
            for (device, m) in by_device {
                tracker.set_device_macs(DeviceId(device), m);
            }
            // The links as stored, to write back only what the batch changed.
            let mut stored: std::collections::HashMap<tod_core::links::LinkKey, tod_core::links::Link> =
                std::collections::HashMap::new();
            let read = if known.aps_to_read.is_empty() {
                Vec::new()
            } else {
                links_by(tx, tenant, $crate::store::fleet::LinkEnd::Ap, &known.aps_to_read).await?
            };
            for link in known.links.into_iter().chain(read.iter().filter_map(LinkRow::to_link)) {
                stored.insert(link.key, link.clone());
                tracker.restore_link(link);
            }

            // A radio new on one of these APs (or back, or another radio of its CPE) may have
            // roamed from an AP outside the batch, whose link then goes down with this report
            // (the tracker's roam rule): load the CPE's links elsewhere, which steady polls
            // never need.
            let mut roamers: BTreeSet<Uuid> = BTreeSet::new();
            for (r, table) in batch.reports.iter().zip(&ap_tables) {
                for g in table.iter().flatten() {
                    if let Some(cpe) = tracker.roam_candidate(r.device_id, &g.mac) {
                        roamers.insert(cpe.0);
                    }
                }
            }
            let mut elsewhere: BTreeSet<Uuid> = BTreeSet::new();
            // In chunks: a tower's first batch after a start names every client as new.
            let roamers: Vec<Uuid> = roamers.into_iter().collect();
            for chunk in roamers.chunks(1000) {
                for row in links_by(tx, tenant, $crate::store::fleet::LinkEnd::Cpe, chunk).await? {
                    if let Some(link) = row.to_link()
                        && !aps.contains(&link.key.ap.0)
                    {
                        elsewhere.insert(link.key.ap.0);
                        stored.insert(link.key, link.clone());
                        tracker.restore_link(link);
                    }
                }
            }

            let mut changes = Vec::new();
            for (r, table) in batch.reports.iter().zip(&ap_tables) {
                let at = micros(r.collected_at);
                let outcome = match (table, &r.status) {
                    (Some(regs), _) => tracker.apply_registrations(r.device_id, at, regs),
                    (None, PollStatus::Offline { .. }) if tracker.links_of_ap(r.device_id).next().is_some() => {
                        tracker.apply_offline(r.device_id, at)
                    }
                    _ => continue,
                };
                changes.extend(outcome.changes);
            }

            // Each AP's last report, and a new version of its links: the one this batch can
            // vouch for if no one else raised it since it was read.
            let reported: Vec<(Uuid, DateTime<Utc>)> = aps
                .iter()
                .filter_map(|ap| tracker.ap_last_report(DeviceId(*ap)).map(|at| (*ap, at)))
                .collect();
            let mut written: Vec<(Uuid, i64)> = Vec::with_capacity(reported.len());
            for chunk in reported.chunks(500) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO link_aps (tenant_id, ap_device_id, last_report_at, version) ",
                );
                q.push_values(chunk, |mut b, (ap, at)| {
                    b.push_bind(tenant.0).push_bind(*ap).push_bind(*at).push_bind(1_i64);
                });
                q.push(
                    " ON CONFLICT (ap_device_id) DO UPDATE SET last_report_at = excluded.last_report_at, \
                     version = link_aps.version + 1 RETURNING ap_device_id, version",
                );
                written.extend(
                    q.build_query_as::<(Uuid, i64)>()
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(map_err)?,
                );
            }
            if !elsewhere.is_empty() {
                let sql = format!(
                    "UPDATE link_aps SET version = version + 1 WHERE tenant_id = $1 AND ap_device_id IN ({})",
                    placeholders(2, elsewhere.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.0);
                for ap in &elsewhere {
                    q = q.bind(*ap);
                }
                q.execute(&mut **tx).await.map_err(map_err)?;
            }
            let (mut links, mut readings) = (Vec::new(), Vec::new());
            for link in aps.iter().chain(&elsewhere).flat_map(|ap| tracker.links_of_ap(DeviceId(*ap))) {
                match $crate::store::fleet::LinkWrite::of(stored.get(&link.key), link) {
                    $crate::store::fleet::LinkWrite::Nothing => {}
                    $crate::store::fleet::LinkWrite::Readings => readings.push(link),
                    $crate::store::fleet::LinkWrite::Whole => links.push(link),
                }
            }
            write_readings(tx, tenant, &readings).await?;
            write_links(tx, tenant, &links, &changes, stream).await?;

            let mut learned = $crate::store::link_cache::Learned {
                tenant: tenant.0,
                forget: elsewhere.into_iter().collect(),
                owners: (interfaces, owners.into_iter().collect()),
                ..Default::default()
            };
            for (ap, version) in written {
                if version == versions.get(&ap).map_or(1, |v| v + 1) {
                    let links = tracker.links_of_ap(DeviceId(ap)).cloned().collect();
                    learned.aps.push((ap, version, links));
                } else {
                    learned.forget.push(ap);
                }
            }
            Ok(Some(learned))
        }

        /// Upserts links (multi-row) and records their state changes, in the caller's transaction.
        async fn write_links(
            tx: &mut Tx,
            tenant: TenantId,
            links: &[&tod_core::links::Link],
            changes: &[tod_core::links::LinkChange],
            stream: &mut Vec<StreamItem>,
        ) -> Result<(), StoreError> {
            upsert_links(tx, tenant, links, $crate::store::fleet::LINK_CONFLICT).await?;
            stream.extend(changes.iter().map(|c| StreamItem {
                kind: "link.state",
                data: serde_json::json!({
                    "ap_device_id": c.key.ap, "cpe_device_id": c.key.cpe,
                    "from": c.from.map(|s| s.as_str()), "to": c.to.as_str(),
                }),
                at: c.at,
            }));
            for chunk in changes.chunks(500) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO link_events (tenant_id, ap_device_id, cpe_device_id, from_state, to_state, at) ",
                );
                q.push_values(chunk, |mut b, c| {
                    b.push_bind(tenant.0)
                        .push_bind(c.key.ap.0)
                        .push_bind(c.key.cpe.0)
                        .push_bind(c.from.map(|s| s.as_str()))
                        .push_bind(c.to.as_str())
                        .push_bind(micros(c.at));
                });
                q.build().execute(&mut **tx).await.map_err(map_err)?;
            }
            Ok(())
        }
    };
}

pub(crate) use impl_discover_links;

#[cfg(test)]
mod tests {
    use super::*;
    use tod_core::telemetry::{DeviceReport, PollStatus, SystemInfo, WirelessPackage};

    fn report(minute: i64, status: PollStatus, version: Option<&str>, uptime: Option<u64>) -> DeviceReport {
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap();
        let mut r = DeviceReport::new(DeviceId::from_u128(1), minute as u64, at, status);
        r.system = version.map(|v| SystemInfo {
            routeros_version: v.into(),
            board_name: None,
            architecture: None,
            serial_number: None,
            firmware_version: None,
            uptime_secs: uptime,
            wireless_package: WirelessPackage::Wifi,
        });
        r
    }

    fn iface(name: &str, mac: Option<&str>, running: bool) -> tod_core::telemetry::Interface {
        tod_core::telemetry::Interface {
            name: name.into(),
            mac: mac.map(|m| m.parse().unwrap()),
            kind: "ether".into(),
            running,
            rx_bytes: Some(1),
            tx_bytes: Some(2),
        }
    }

    #[test]
    fn only_devices_whose_interfaces_changed_are_rewritten() {
        let device = |n: u128| DeviceId::from_u128(n);
        let listed = vec![
            iface("wlan1", Some("AA:BB:CC:00:00:01"), true),
            iface("ether1", None, true),
        ];
        let mut latest = std::collections::BTreeMap::new();
        for n in 1..=4 {
            let mut r = report(1, PollStatus::Online, None, None);
            r.device_id = device(n);
            r.interfaces = Some(listed.clone());
            if n == 3 {
                // Device 3's link went down since the rows were stored.
                r.interfaces = Some(vec![listed[0].clone(), iface("ether1", None, false)]);
            }
            latest
                .entry(device(n).0)
                .or_insert_with(ReportedState::default)
                .fold(&r);
        }
        // Device 5 reported no interface list (offline): nothing to compare, nothing rewritten.
        latest
            .entry(device(5).0)
            .or_insert_with(ReportedState::default)
            .fold(&report(1, PollStatus::Online, None, None));
        // Stored in another order than reported; device 4 has none stored yet.
        let stored: Vec<(Uuid, InterfaceRow)> = (1..=3)
            .flat_map(|n| {
                InterfaceRow::of(&listed)
                    .into_iter()
                    .rev()
                    .map(move |row| (device(n).0, row))
            })
            .chain(std::iter::once((device(5).0, InterfaceRow::of(&listed)[0].clone())))
            .collect();
        assert_eq!(changed_interfaces(&latest, stored), vec![device(3).0, device(4).0]);
    }

    #[test]
    fn a_name_listed_twice_is_kept_once_as_first_listed() {
        let rows = InterfaceRow::of(&[
            iface("wlan1", None, true),
            iface("ether1", None, true),
            iface("wlan1", None, false),
        ]);
        let names: Vec<(&str, bool)> = rows.iter().map(|r| (r.name.as_str(), r.running)).collect();
        assert_eq!(names, vec![("ether1", true), ("wlan1", true)]);
    }

    #[test]
    fn a_batch_writes_its_newest_report_and_the_newest_identity_any_report_carried() {
        let mut s = ReportedState::default();
        s.fold(&report(1, PollStatus::Online, Some("7.15"), Some(100)));
        s.fold(&report(3, PollStatus::Online, Some("7.16"), Some(220)));
        s.fold(&report(2, PollStatus::Online, Some("7.14"), Some(160))); // late: changes nothing
        let offline = PollStatus::Offline {
            reason: "timeout".into(),
        };
        s.fold(&report(4, offline, None, None));
        assert_eq!(s.at, DateTime::<Utc>::from_timestamp(1_800_000_240, 0));
        assert_eq!(s.status, "offline");
        assert_eq!((s.version.as_deref(), s.uptime_secs), (Some("7.16"), Some(220)));
    }

    #[test]
    fn a_link_is_written_whole_only_when_more_than_its_readings_changed() {
        use tod_core::links::{Link, LinkKey, LinkState};
        let t = |m: i64| DateTime::<Utc>::from_timestamp(1_800_000_000 + 60 * m, 0).unwrap();
        let was = Link {
            key: LinkKey {
                ap: DeviceId(Uuid::from_u128(1)),
                cpe: DeviceId(Uuid::from_u128(2)),
            },
            interface: "wlan1".into(),
            client_mac: "02:00:00:00:00:01".parse().unwrap(),
            signal_dbm: Some(-61),
            tx_ccq: Some(90),
            tx_rate: Some("300Mbps".into()),
            rx_rate: Some("270Mbps".into()),
            state: LinkState::Active,
            missed_polls: 0,
            discovered_at: t(0),
            last_seen: t(5),
            state_since: t(1),
        };
        assert_eq!(LinkWrite::of(Some(&was), &was), LinkWrite::Nothing);
        assert_eq!(LinkWrite::of(None, &was), LinkWrite::Whole, "a new link");
        let polled = Link {
            signal_dbm: Some(-64),
            tx_ccq: None,
            tx_rate: None,
            rx_rate: Some("240Mbps".into()),
            missed_polls: 1,
            last_seen: t(6),
            ..was.clone()
        };
        assert_eq!(LinkWrite::of(Some(&was), &polled), LinkWrite::Readings);
        let whole: [Link; 5] = [
            Link {
                state: LinkState::Degraded,
                ..polled.clone()
            },
            Link {
                state_since: t(6),
                ..polled.clone()
            },
            Link {
                interface: "wlan2".into(),
                ..polled.clone()
            },
            Link {
                client_mac: "02:00:00:00:00:09".parse().unwrap(),
                ..polled.clone()
            },
            Link {
                discovered_at: t(6),
                ..polled.clone()
            },
        ];
        for now in &whole {
            assert_eq!(LinkWrite::of(Some(&was), now), LinkWrite::Whole, "{now:?}");
        }
    }
}
