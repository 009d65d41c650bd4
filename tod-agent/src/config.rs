//! The agent's configuration: one TOML file. Every error names the field it is about, so an
//! operator at a tower can fix the file from the message alone.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tod_core::{AgentId, DeviceId};

/// A configuration that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field path (`devices[2].host`), or the file for read/parse errors.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Who this agent is.
    pub agent: AgentSection,
    /// Where it delivers.
    pub server: ServerSection,
    /// Poll schedule.
    #[serde(default)]
    pub poll: PollSection,
    /// On-disk buffer.
    #[serde(default)]
    pub spool: SpoolSection,
    /// Named credential profiles devices refer to.
    #[serde(default)]
    pub credentials: Vec<CredentialProfile>,
    /// The devices this agent polls.
    #[serde(default)]
    pub devices: Vec<DeviceEntry>,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// The WireGuard tunnel to the server (absent: the uplink connects directly).
    #[serde(default)]
    pub tunnel: Option<TunnelSection>,
}

/// `[tunnel]`: the userspace WireGuard tunnel the uplink runs through. With it, `server.ingest`,
/// `server.nats` and `server.mqtt` name addresses inside the tunnel (the gateway's, `10.99.0.1` by
/// default); the agent reaches each through a local port forward of its own. `server.endpoint` is
/// the gateway's UDP address. `POST /api/vpn/peers` returns this section filled in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelSection {
    /// This agent's private key, base64 (as `wg genkey` prints it).
    #[serde(default)]
    pub private_key: Option<String>,
    /// A file holding the private key instead (kept out of the configuration).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// The gateway's public key, base64.
    pub server_public_key: String,
    /// This agent's address inside the tunnel.
    pub address: std::net::Ipv4Addr,
    /// Prefix length of the tunnel network.
    #[serde(default = "default_prefix")]
    pub prefix: u8,
    /// Persistent keepalive in seconds (holds NAT mappings open); 0 disables it.
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u16,
}

fn default_prefix() -> u8 {
    16
}

fn default_keepalive() -> u16 {
    25
}

impl TunnelSection {
    /// The private key, from the file or the inline value.
    pub fn private_key(&self) -> Result<tod_tunnel::PrivateKey, ConfigError> {
        let (field, text) = match (&self.private_key, &self.private_key_file) {
            (Some(k), None) => ("tunnel.private_key", k.clone()),
            (None, Some(path)) => (
                "tunnel.private_key_file",
                std::fs::read_to_string(path)
                    .map_err(|e| err("tunnel.private_key_file", format!("{}: {e}", path.display())))?,
            ),
            _ => {
                return Err(err(
                    "tunnel.private_key",
                    "set exactly one of private_key and private_key_file",
                ));
            }
        };
        text.parse()
            .map_err(|e: tod_tunnel::TunnelError| err(field, e.to_string()))
    }

    /// Whether an address lies inside the tunnel network.
    pub fn contains(&self, ip: std::net::Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.address) & mask
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Where `/metrics` listens (loopback by default); empty disables it.
    #[serde(default = "default_metrics")]
    pub listen: String,
}

fn default_metrics() -> String {
    "127.0.0.1:9464".into()
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            listen: default_metrics(),
        }
    }
}

/// `[agent]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// The agent id issued at enrolment.
    pub id: AgentId,
    /// One-time enrolment token (absent once enrolled).
    pub enrolment_token: Option<String>,
    /// The agent's credential (`toda_…`), issued once when an admin enrols the agent
    /// (`POST /api/tenants/{id}/agents`); sent as the bearer token of every delivery.
    #[serde(default)]
    pub token: Option<String>,
}

/// How the agent delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UplinkKind {
    /// HTTP to tod-server (no broker needed).
    #[default]
    Http,
    /// NATS JetStream.
    Nats,
    /// MQTT.
    Mqtt,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// The server's WireGuard endpoint (`host:port`).
    pub endpoint: String,
    /// The uplink carried through the tunnel.
    #[serde(default)]
    pub uplink: UplinkKind,
    /// `host:port` of the HTTP ingest endpoint (the tunnel's local forward).
    #[serde(default = "default_ingest")]
    pub ingest: String,
    /// NATS URL for the `nats` uplink.
    #[serde(default = "default_nats")]
    pub nats: String,
    /// `host:port` of the MQTT broker for the `mqtt` uplink.
    #[serde(default = "default_mqtt")]
    pub mqtt: String,
    /// Poll the devices the server lists for this agent's site (`GET /api/agent/devices`, with
    /// their logins), re-read every poll interval, besides any `[[devices]]` configured here.
    #[serde(default)]
    pub pull_devices: bool,
}

fn default_nats() -> String {
    "nats://127.0.0.1:4222".into()
}

fn default_mqtt() -> String {
    "127.0.0.1:1883".into()
}

fn default_ingest() -> String {
    "127.0.0.1:8080".into()
}

/// `[poll]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollSection {
    /// Seconds between polls of one device (1–3600, default 60).
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Connection attempts in flight at once (default 16).
    #[serde(default = "default_connect_concurrency")]
    pub connect_concurrency: usize,
    /// First wait before trying an unreachable device again, seconds (default 30); it doubles
    /// with each failure, with full jitter.
    #[serde(default = "default_backoff_base")]
    pub backoff_base_secs: f64,
    /// The longest wait, seconds (default 900). A device that comes back is noticed at most this
    /// long after.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: f64,
}

fn default_backoff_base() -> f64 {
    30.0
}
fn default_backoff_max() -> f64 {
    900.0
}

fn default_interval() -> u64 {
    60
}
fn default_connect_concurrency() -> usize {
    16
}

impl Default for PollSection {
    fn default() -> Self {
        Self {
            interval_secs: default_interval(),
            connect_concurrency: default_connect_concurrency(),
            backoff_base_secs: default_backoff_base(),
            backoff_max_secs: default_backoff_max(),
        }
    }
}

/// `[spool]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Directory of the spool.
    #[serde(default = "default_spool_dir")]
    pub dir: PathBuf,
    /// Upper bound on disk use; the oldest data is dropped first (and counted).
    #[serde(default = "default_spool_bytes")]
    pub max_bytes: u64,
    /// Upper bound on age.
    #[serde(default = "default_spool_hours")]
    pub max_age_hours: u64,
    /// Reports collected within this many milliseconds are written with one flush to disk
    /// (at most this much is lost if the agent dies or the power goes); 0 flushes each report.
    #[serde(default = "default_commit_window_ms")]
    pub commit_window_ms: u64,
}

fn default_spool_dir() -> PathBuf {
    PathBuf::from("/var/lib/tod-agent/spool")
}
fn default_spool_bytes() -> u64 {
    1 << 30
}
fn default_spool_hours() -> u64 {
    72
}
fn default_commit_window_ms() -> u64 {
    1_000
}

impl Default for SpoolSection {
    fn default() -> Self {
        Self {
            dir: default_spool_dir(),
            max_bytes: default_spool_bytes(),
            max_age_hours: default_spool_hours(),
            commit_window_ms: default_commit_window_ms(),
        }
    }
}

/// `[[credentials]]`
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialProfile {
    /// Profile name devices refer to.
    pub name: String,
    /// RouterOS user.
    pub username: String,
    /// RouterOS password.
    pub password: String,
}

impl fmt::Debug for CredentialProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialProfile")
            .field("name", &self.name)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How to reach the RouterOS API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApiTransport {
    /// TLS on 8729 with a verified certificate.
    #[default]
    TlsVerified,
    /// TLS on 8729 with a pinned certificate fingerprint.
    TlsPinned,
    /// TLS on 8729 without verification.
    TlsInsecure,
    /// TLS on 8729 with anonymous Diffie-Hellman, for routers without a certificate
    /// (encrypted, not authenticated; needs the `openssl` feature).
    TlsAnonymous,
    /// Plain text on 8728 (explicit opt-in).
    Plain,
}

impl ApiTransport {
    /// The default API port for the transport.
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Plain => 8728,
            _ => 8729,
        }
    }
}

/// `[[devices]]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// The device's id on the server.
    pub id: DeviceId,
    /// Host name or address on the tower LAN.
    pub host: String,
    /// API port (defaults by transport).
    pub port: Option<u16>,
    /// Transport.
    #[serde(default)]
    pub transport: ApiTransport,
    /// SHA-256 fingerprint for `tls_pinned`.
    pub fingerprint: Option<String>,
    /// CA certificate (PEM file) for `tls_verified`.
    pub ca_file: Option<PathBuf>,
    /// Name of a `[[credentials]]` profile.
    pub credentials: String,
}

impl DeviceEntry {
    /// The client transport for this device; reads the CA file of `tls_verified`.
    pub fn transport(&self, index: usize) -> Result<crate::routeros::client::Transport, ConfigError> {
        use crate::routeros::client::Transport;
        use crate::routeros::tls::{TlsMode, parse_fingerprint};
        let field = |name: &str| format!("devices[{index}].{name}");
        Ok(match self.transport {
            ApiTransport::Plain => Transport::Plain,
            ApiTransport::TlsInsecure => Transport::Tls(TlsMode::Insecure),
            ApiTransport::TlsAnonymous => Transport::Tls(TlsMode::Anonymous),
            ApiTransport::TlsPinned => {
                let fp = self.fingerprint.as_deref().and_then(parse_fingerprint);
                Transport::Tls(TlsMode::Pinned {
                    sha256: fp.ok_or_else(|| err(field("fingerprint"), "must be 64 hexadecimal digits"))?,
                })
            }
            ApiTransport::TlsVerified => {
                let path = self
                    .ca_file
                    .as_ref()
                    .ok_or_else(|| err(field("ca_file"), "required for tls_verified"))?;
                let pem = std::fs::read(path).map_err(|e| err(field("ca_file"), format!("{}: {e}", path.display())))?;
                Transport::Tls(TlsMode::Verified { ca_pem: pem })
            }
        })
    }

    /// The API port (explicit, or the transport's default).
    pub fn api_port(&self) -> u16 {
        self.port.unwrap_or(self.transport.default_port())
    }
}

impl AgentConfig {
    /// The credentials a device refers to (validated to exist).
    pub fn credentials_for(&self, d: &DeviceEntry) -> crate::routeros::client::Credentials {
        let p = self
            .credentials
            .iter()
            .find(|c| c.name == d.credentials)
            .expect("validated: the profile exists");
        crate::routeros::client::Credentials {
            username: p.username.clone(),
            password: p.password.clone(),
        }
    }

    /// Reads, parses and validates a file, with `TOD_AGENT_<SECTION>_<KEY>` environment variables
    /// overriding single values (`TOD_AGENT_SERVER_ENDPOINT`, `TOD_AGENT_POLL_INTERVAL_SECS`, ...).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| err(path.display().to_string(), e.to_string()))?;
        Self::parse_with_env(&text, std::env::vars())
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with_env(text, std::iter::empty())
    }

    /// Parses TOML text, applies `TOD_AGENT_<SECTION>_<KEY>` overrides from `vars`, validates.
    pub fn parse_with_env(text: &str, vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let located = |e: toml::de::Error| {
            let field = e
                .span()
                .map_or_else(|| "config".to_owned(), |s| format!("line {}", line_of(text, s.start)));
            err(field, e.message().to_owned())
        };
        // The typed parse first, so syntax and field errors point at a line of the file.
        let cfg: AgentConfig = toml::from_str(text).map_err(located)?;
        let overrides: Vec<(String, &str, String, String)> = vars
            .into_iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix("TOD_AGENT_")?.to_ascii_lowercase();
                let (section, key) = ["agent", "server", "poll", "spool", "metrics", "tunnel"]
                    .iter()
                    .find_map(|s| rest.strip_prefix(&format!("{s}_")).map(|k| (*s, k.to_owned())))?;
                Some((name, section, key, value))
            })
            .collect();
        let cfg = if overrides.is_empty() {
            cfg
        } else {
            let mut doc: toml::Table = toml::from_str(text).map_err(located)?;
            for (name, section, key, value) in overrides {
                let table = doc
                    .entry(section)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let Some(table) = table.as_table_mut() else {
                    return Err(err(name, format!("[{section}] is not a table")));
                };
                // Keep strings strings (an id or token of digits must not turn into a number).
                let typed = match (table.get(&key), value.parse::<i64>(), value.parse::<bool>()) {
                    (Some(toml::Value::String(_)), _, _) => toml::Value::String(value),
                    (_, Ok(i), _) => toml::Value::Integer(i),
                    (_, _, Ok(b)) => toml::Value::Boolean(b),
                    _ => toml::Value::String(value),
                };
                table.insert(key, typed);
            }
            toml::Value::Table(doc)
                .try_into()
                .map_err(|e: toml::de::Error| err("TOD_AGENT_* overrides", e.message().to_owned()))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.endpoint.trim().is_empty() || !self.server.endpoint.contains(':') {
            return Err(err("server.endpoint", "must be host:port"));
        }
        if !self.server.ingest.contains(':') {
            return Err(err("server.ingest", "must be host:port"));
        }
        if !self.server.nats.starts_with("nats://") {
            return Err(err("server.nats", "must be a nats:// URL"));
        }
        if self
            .server
            .mqtt
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        {
            return Err(err("server.mqtt", "must be host:port"));
        }
        if let Some(t) = &self.tunnel {
            t.private_key()?;
            t.server_public_key
                .parse::<tod_tunnel::Key>()
                .map_err(|e| err("tunnel.server_public_key", e.to_string()))?;
            if !(8..=30).contains(&t.prefix) {
                return Err(err("tunnel.prefix", "must be between 8 and 30"));
            }
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(err("metrics.listen", "must be an address:port, or empty to disable"));
        }
        if !(1..=3600).contains(&self.poll.interval_secs) {
            return Err(err("poll.interval_secs", "must be between 1 and 3600"));
        }
        if !(self.poll.backoff_base_secs > 0.0 && self.poll.backoff_base_secs <= 3_600.0) {
            return Err(err("poll.backoff_base_secs", "must be more than 0 and at most 3600"));
        }
        if !(self.poll.backoff_max_secs >= self.poll.backoff_base_secs && self.poll.backoff_max_secs <= 86_400.0) {
            return Err(err(
                "poll.backoff_max_secs",
                "must be at least poll.backoff_base_secs and at most 86400",
            ));
        }
        if !(1..=1024).contains(&self.poll.connect_concurrency) {
            return Err(err("poll.connect_concurrency", "must be between 1 and 1024"));
        }
        if self.spool.max_bytes < 1 << 20 {
            return Err(err("spool.max_bytes", "must be at least 1 MiB"));
        }
        if self.spool.max_age_hours == 0 {
            return Err(err("spool.max_age_hours", "must be at least 1"));
        }
        if self.spool.commit_window_ms > 60_000 {
            return Err(err("spool.commit_window_ms", "must be at most 60000 (one minute)"));
        }
        let mut names = HashSet::new();
        for (i, c) in self.credentials.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(err(format!("credentials[{i}].name"), "must not be empty"));
            }
            if !names.insert(c.name.as_str()) {
                return Err(err(
                    format!("credentials[{i}].name"),
                    format!("duplicate profile {:?}", c.name),
                ));
            }
            if c.username.is_empty() {
                return Err(err(format!("credentials[{i}].username"), "must not be empty"));
            }
        }
        let mut ids = HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let f = |name: &str| format!("devices[{i}].{name}");
            if !ids.insert(d.id) {
                return Err(err(f("id"), format!("device {} is listed twice", d.id)));
            }
            if d.host.trim().is_empty() {
                return Err(err(f("host"), "must not be empty"));
            }
            if d.port == Some(0) {
                return Err(err(f("port"), "must be 1-65535"));
            }
            if !names.contains(d.credentials.as_str()) {
                return Err(err(
                    f("credentials"),
                    format!("no [[credentials]] profile named {:?}", d.credentials),
                ));
            }
            if d.transport == ApiTransport::TlsVerified && d.ca_file.is_none() {
                return Err(err(
                    f("ca_file"),
                    "required for tls_verified (or choose tls_pinned / tls_insecure)",
                ));
            }
            match (d.transport, &d.fingerprint) {
                (ApiTransport::TlsPinned, None) => return Err(err(f("fingerprint"), "required for tls_pinned")),
                (ApiTransport::TlsPinned, Some(fp)) if !is_sha256_hex(fp) => {
                    return Err(err(f("fingerprint"), "must be 64 hexadecimal digits (colons allowed)"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn is_sha256_hex(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[agent]
id = "7f3c2f9e-55c1-4c55-9e4a-0d3a3d6b2f10"

[server]
endpoint = "vpn.example.net:51820"

[[credentials]]
name = "towers"
username = "tod"
password = "s3cret"

[[devices]]
id = "00000000-0000-0000-0000-000000000001"
host = "10.20.0.2"
transport = "tls_insecure"
credentials = "towers"

[[devices]]
id = "00000000-0000-0000-0000-000000000002"
host = "10.20.0.3"
transport = "plain"
credentials = "towers"
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let c = AgentConfig::parse(GOOD).unwrap();
        assert_eq!(c.poll.interval_secs, 60);
        assert_eq!(c.spool.commit_window_ms, 1_000);
        assert_eq!(c.server.uplink, UplinkKind::Http);
        assert_eq!(c.devices[0].api_port(), 8729);
        assert_eq!(c.devices[1].api_port(), 8728);
        assert_eq!(
            c.devices[1].transport(1).unwrap(),
            crate::routeros::client::Transport::Plain
        );
        assert_eq!(c.credentials_for(&c.devices[1]).username, "tod");
        assert!(
            !format!("{:?}", c.credentials[0]).contains("s3cret"),
            "passwords stay out of logs"
        );
    }

    #[test]
    fn a_tunnel_section_is_checked_field_by_field() {
        let key = tod_tunnel::PrivateKey::generate().unwrap();
        let server = tod_tunnel::PrivateKey::generate().unwrap().public_key();
        let with = |tunnel: &str| AgentConfig::parse(&format!("{GOOD}\n[tunnel]\n{tunnel}"));
        let good = with(&format!(
            "private_key = \"{}\"\nserver_public_key = \"{server}\"\naddress = \"10.99.3.7\"",
            key.to_base64()
        ))
        .unwrap();
        let t = good.tunnel.unwrap();
        assert_eq!((t.prefix, t.keepalive_secs), (16, 25));
        assert!(t.contains("10.99.0.1".parse().unwrap()) && !t.contains("10.98.0.1".parse().unwrap()));
        let e = with(&format!(
            "private_key = \"{}\"\nserver_public_key = \"nope\"\naddress = \"10.99.3.7\"",
            key.to_base64()
        ))
        .unwrap_err();
        assert_eq!(e.field, "tunnel.server_public_key");
        let e = with(&format!("server_public_key = \"{server}\"\naddress = \"10.99.3.7\"")).unwrap_err();
        assert_eq!(e.field, "tunnel.private_key", "{e}");
        let e = with(&format!(
            "private_key_file = \"/nonexistent/wg.key\"\nserver_public_key = \"{server}\"\naddress = \"10.99.3.7\""
        ))
        .unwrap_err();
        assert_eq!(e.field, "tunnel.private_key_file", "{e}");
    }

    #[test]
    fn environment_variables_override_single_values() {
        let vars = [
            (
                "TOD_AGENT_SERVER_ENDPOINT".to_owned(),
                "vpn2.example.net:51821".to_owned(),
            ),
            ("TOD_AGENT_POLL_INTERVAL_SECS".to_owned(), "30".to_owned()),
            ("TOD_AGENT_SERVER_UPLINK".to_owned(), "nats".to_owned()),
            ("TOD_AGENT_CONFIG".to_owned(), "/ignored".to_owned()),
            ("OTHER".to_owned(), "x".to_owned()),
        ];
        let c = AgentConfig::parse_with_env(GOOD, vars).unwrap();
        assert_eq!(c.server.endpoint, "vpn2.example.net:51821");
        assert_eq!(c.poll.interval_secs, 30);
        assert_eq!(c.server.uplink, UplinkKind::Nats);
        let bad = [("TOD_AGENT_POLL_INTERVAL_SECS".to_owned(), "0".to_owned())];
        assert_eq!(
            AgentConfig::parse_with_env(GOOD, bad).unwrap_err().field,
            "poll.interval_secs"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let bad_ref = GOOD.replacen("credentials = \"towers\"", "credentials = \"nope\"", 1);
        assert_eq!(
            AgentConfig::parse(&bad_ref).unwrap_err().field,
            "devices[0].credentials"
        );
        let dup = GOOD.replace("000000000002", "000000000001");
        assert_eq!(AgentConfig::parse(&dup).unwrap_err().field, "devices[1].id");
        let interval = format!("{GOOD}\n[poll]\ninterval_secs = 0\n");
        assert_eq!(AgentConfig::parse(&interval).unwrap_err().field, "poll.interval_secs");
        let backoff = format!("{GOOD}\n[poll]\nbackoff_base_secs = 60\nbackoff_max_secs = 30\n");
        assert_eq!(AgentConfig::parse(&backoff).unwrap_err().field, "poll.backoff_max_secs");
        let backoff = format!("{GOOD}\n[poll]\nbackoff_base_secs = 0\n");
        assert_eq!(
            AgentConfig::parse(&backoff).unwrap_err().field,
            "poll.backoff_base_secs"
        );
        let fast = AgentConfig::parse(&format!(
            "{GOOD}\n[poll]\nbackoff_base_secs = 0.5\nbackoff_max_secs = 15\n"
        ))
        .unwrap();
        assert_eq!((fast.poll.backoff_base_secs, fast.poll.backoff_max_secs), (0.5, 15.0));
        let window = format!("{GOOD}\n[spool]\ncommit_window_ms = 60001\n");
        assert_eq!(AgentConfig::parse(&window).unwrap_err().field, "spool.commit_window_ms");
        let each = AgentConfig::parse(&format!("{GOOD}\n[spool]\ncommit_window_ms = 0\n")).unwrap();
        assert_eq!(each.spool.commit_window_ms, 0);
        let pinned = GOOD.replace("transport = \"plain\"", "transport = \"tls_pinned\"");
        assert_eq!(AgentConfig::parse(&pinned).unwrap_err().field, "devices[1].fingerprint");
        let unknown = GOOD.replace("[server]\n", "[server]\nuplnk = \"nats\"\n");
        let e = AgentConfig::parse(&unknown).unwrap_err();
        assert!(e.message.contains("uplnk"), "{e}");
        assert!(e.field.starts_with("line "), "{e}");
        let verified = GOOD.replace("transport = \"tls_insecure\"\n", "");
        assert_eq!(AgentConfig::parse(&verified).unwrap_err().field, "devices[0].ca_file");
        let bad_id = GOOD.replace("7f3c2f9e-55c1", "not-a-uuid");
        assert!(AgentConfig::parse(&bad_id).is_err());
    }
}
