//! Server settings, from the command line or `TOD_*` environment variables.

use std::fmt;
use std::net::SocketAddr;

use clap::{Args, ValueEnum};

/// Deployment environment. API docs (Swagger UI, ReDoc) are served only in `dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    /// Development: API docs served, relaxed defaults.
    Dev,
    /// Staging.
    Staging,
    /// Production.
    Production,
}

/// Which database backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file (the embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The server's settings.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the HTTP API listens on.
    #[arg(long, env = "TOD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Database URL: `sqlite://PATH` (embedded default) or `postgres://...`.
    #[arg(long, env = "TOD_DATABASE_URL", default_value = "sqlite://tod.sqlite")]
    pub database_url: String,
    /// UDP address of the embedded WireGuard gateway agents dial (needs a master key).
    #[arg(long, env = "TOD_WIREGUARD_LISTEN", default_value = "0.0.0.0:51820")]
    pub wireguard_listen: SocketAddr,
    /// The gateway's public `host:port` as agents must dial it (behind NAT or a load balancer);
    /// the listen address by default.
    #[arg(long, env = "TOD_WIREGUARD_ENDPOINT")]
    pub wireguard_endpoint: Option<String>,
    /// Deployment environment.
    #[arg(long = "env", env = "TOD_ENV", value_enum, default_value = "production")]
    pub environment: Environment,
    /// Key that signs access and refresh tokens (at least 32 bytes). Required outside `dev`; in
    /// `dev` one is generated and kept in the database.
    #[arg(long, env = "TOD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Key that seals device credentials at rest (at least 32 bytes). Without it, outside `dev`,
    /// devices cannot store credentials; in `dev` one is generated and kept in the database.
    #[arg(long, env = "TOD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// E-mail of the first super admin, created when the database has no users.
    #[arg(long, env = "TOD_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of the first super admin (used once to compute its SRP verifier, never stored).
    #[arg(long, env = "TOD_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Requests per minute per client address on the login, SRP and refresh endpoints.
    #[arg(long, env = "TOD_AUTH_RATE_LIMIT", default_value_t = 5)]
    pub auth_rate_limit: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed (comma-separated addresses).
    #[arg(long, env = "TOD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Browser origins allowed to call the API with credentials (comma-separated; none by default).
    #[arg(long, env = "TOD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// NATS with JetStream to consume agent batches from (`nats://host:port`), and to publish
    /// the tenants' events to (`tod.events.<tenant>.<event>`); HTTP ingest only when unset.
    #[arg(long, env = "TOD_NATS_URL")]
    pub nats_url: Option<String>,
    /// An MQTT broker to consume agent batches from (`host:port`), by shared subscription.
    #[arg(long, env = "TOD_MQTT_URL")]
    pub mqtt_url: Option<String>,
    /// This replica's MQTT client id (its persistent session at the broker): unique per replica,
    /// the same across its restarts. Default: `tod-server-<host name>-<listen port>`.
    #[arg(long, env = "TOD_MQTT_CLIENT_ID")]
    pub mqtt_client_id: Option<String>,
    /// The agents' poll interval in seconds: links age and silent agents are noticed by it.
    #[arg(long, env = "TOD_AGENT_POLL_INTERVAL", default_value_t = 60)]
    pub agent_poll_interval_secs: u32,
    /// Seconds between site/sector alert rule passes.
    #[arg(long, env = "TOD_ALERT_EVALUATION_INTERVAL", default_value_t = 300)]
    pub alert_evaluation_interval_secs: u32,
    /// Seconds between passes of the fleet-wide signal trend detector.
    #[arg(long, env = "TOD_TREND_DETECTION_INTERVAL", default_value_t = 3600)]
    pub trend_detection_interval_secs: u32,
    /// Seconds between the two weeks the trend detector compares: the last week against the week
    /// that ended this long before it began. The default, a week, compares weeks two weeks apart,
    /// so a slow drift of −0.5 dB a day shows as 7 dB; 0 compares adjacent weeks (3.5 dB).
    #[arg(long, env = "TOD_TREND_GAP", default_value_t = 604_800)]
    pub trend_gap_secs: u32,
    /// The clock background work and ingest (HTTP and the broker consumers) read: the system's,
    /// or (not a setting; the field-truth scorer's runs of weeks) an accelerated one the
    /// simulator and agents share. Sessions and tokens stay on the system's.
    #[arg(skip)]
    pub clock: tod_agent::clock::Clock,
    /// Seconds of recent registrations a sector's average signal and client count are taken
    /// over (site rules, plugins, backtests).
    #[arg(long, env = "TOD_SECTOR_WINDOW", default_value_t = 600)]
    pub sector_window_secs: u32,
    /// Seconds back a sector client drop compares with, and the signal history a plugin sees.
    #[arg(long, env = "TOD_SECTOR_LOOKBACK", default_value_t = 3600)]
    pub sector_lookback_secs: u32,
}

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// Settings with every default, for a database URL (tests and embedding).
    pub fn for_database(url: &str) -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            database_url: url.to_owned(),
            wireguard_listen: ([127, 0, 0, 1], 0).into(),
            wireguard_endpoint: None,
            environment: Environment::Production,
            jwt_secret: None,
            master_key: None,
            admin_email: None,
            admin_password: None,
            auth_rate_limit: 5,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            agent_poll_interval_secs: 60,
            alert_evaluation_interval_secs: 300,
            trend_detection_interval_secs: 3600,
            trend_gap_secs: 604_800,
            clock: tod_agent::clock::Clock::System,
            sector_window_secs: 600,
            sector_lookback_secs: 3600,
            nats_url: None,
            mqtt_url: None,
            mqtt_client_id: None,
        }
    }

    /// The windows site rules, plugins and backtests take sector aggregates and history over.
    pub fn snapshot_windows(&self) -> tod_core::alerts::SnapshotWindows {
        tod_core::alerts::SnapshotWindows {
            recent: chrono::Duration::seconds(i64::from(self.sector_window_secs)),
            lookback: chrono::Duration::seconds(i64::from(self.sector_lookback_secs)),
        }
    }

    /// The MQTT client id: as set, or from the host name and listen port, so a restarted
    /// replica resumes its own session and two replicas on one host do not share one.
    pub fn mqtt_client_id(&self) -> String {
        self.mqtt_client_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            format!("tod-server-{host}-{}", self.listen.port())
        })
    }

    /// Checks what can be checked without the database: the backend, the JWT key outside `dev`,
    /// the bootstrap pair, the rate limit and the CORS origins.
    pub fn validate(&self) -> Result<Backend, SettingsError> {
        let backend = self.backend()?;
        match (&self.jwt_secret, self.environment) {
            (Some(k), _) if k.len() < 32 => {
                return Err(SettingsError(
                    "jwt_secret (TOD_JWT_SECRET): must be at least 32 bytes".into(),
                ));
            }
            (None, env) if env != Environment::Dev => {
                return Err(SettingsError(
                    "jwt_secret (TOD_JWT_SECRET): required outside TOD_ENV=dev (at least 32 random bytes)".into(),
                ));
            }
            _ => {}
        }
        if self.master_key.as_ref().is_some_and(|k| k.len() < 32) {
            return Err(SettingsError(
                "master_key (TOD_MASTER_KEY): must be at least 32 bytes".into(),
            ));
        }
        match (&self.admin_email, &self.admin_password) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(SettingsError(
                    "admin_email/admin_password (TOD_ADMIN_EMAIL, TOD_ADMIN_PASSWORD): set both or neither".into(),
                ));
            }
            (Some(e), Some(_)) if !e.contains('@') => {
                return Err(SettingsError(
                    "admin_email (TOD_ADMIN_EMAIL): not an e-mail address".into(),
                ));
            }
            (Some(_), Some(p)) if p.chars().count() < 12 => {
                return Err(SettingsError(
                    "admin_password (TOD_ADMIN_PASSWORD): at least 12 characters".into(),
                ));
            }
            _ => {}
        }
        if !(5..=86_400).contains(&self.agent_poll_interval_secs) {
            return Err(SettingsError(
                "agent_poll_interval_secs (TOD_AGENT_POLL_INTERVAL): 5 to 86400 seconds".into(),
            ));
        }
        if !(1..=86_400).contains(&self.alert_evaluation_interval_secs) {
            return Err(SettingsError(
                "alert_evaluation_interval_secs (TOD_ALERT_EVALUATION_INTERVAL): 1 to 86400 seconds".into(),
            ));
        }
        if !(1..=86_400).contains(&self.trend_detection_interval_secs) {
            return Err(SettingsError(
                "trend_detection_interval_secs (TOD_TREND_DETECTION_INTERVAL): 1 to 86400 seconds".into(),
            ));
        }
        if self.trend_gap_secs > 2_419_200 {
            return Err(SettingsError(
                "trend_gap_secs (TOD_TREND_GAP): 0 to 2419200 seconds (four weeks)".into(),
            ));
        }
        if !(1..=86_400).contains(&self.sector_window_secs) {
            return Err(SettingsError(
                "sector_window_secs (TOD_SECTOR_WINDOW): 1 to 86400 seconds".into(),
            ));
        }
        if !(self.sector_window_secs..=604_800).contains(&self.sector_lookback_secs) {
            return Err(SettingsError(format!(
                "sector_lookback_secs (TOD_SECTOR_LOOKBACK): {} (the sector window) to 604800 seconds",
                self.sector_window_secs
            )));
        }
        if let Some(m) = &self.mqtt_url {
            let hp = m.trim_start_matches("mqtt://");
            if !hp
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                return Err(SettingsError(format!(
                    "mqtt_url (TOD_MQTT_URL): expected host:port, got {m:?}"
                )));
            }
        }
        if self.auth_rate_limit == 0 {
            return Err(SettingsError(
                "auth_rate_limit (TOD_AUTH_RATE_LIMIT): must be at least 1".into(),
            ));
        }
        for o in &self.cors_origins {
            if !(o.starts_with("https://") || o.starts_with("http://")) || axum::http::HeaderValue::from_str(o).is_err()
            {
                return Err(SettingsError(format!(
                    "cors_origins (TOD_CORS_ORIGINS): {o:?} is not an origin"
                )));
            }
        }
        Ok(backend)
    }

    /// The backend the database URL selects.
    pub fn backend(&self) -> Result<Backend, SettingsError> {
        let url = self.database_url.trim();
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(SettingsError(format!(
                "database_url (TOD_DATABASE_URL): expected sqlite://PATH or postgres://..., got {:?}",
                url.split("://").next().unwrap_or(url)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn defaults_select_the_embedded_sqlite_backend() {
        let p = Probe::try_parse_from(["tod-server"]).unwrap();
        assert_eq!(p.settings.backend(), Ok(Backend::Sqlite));
        assert_eq!(p.settings.listen.port(), 8080);
        assert_eq!(p.settings.environment, Environment::Production);
    }

    #[test]
    fn urls_pick_the_backend_and_bad_ones_say_which_setting() {
        let p = Probe::try_parse_from(["tod-server", "--database-url", "postgres://u@h/db", "--env", "dev"]).unwrap();
        assert_eq!(p.settings.backend(), Ok(Backend::Postgres));
        assert_eq!(
            p.settings.validate(),
            Ok(Backend::Postgres),
            "dev generates its own JWT key"
        );
        let p = Probe::try_parse_from(["tod-server", "--database-url", "mysql://x"]).unwrap();
        assert!(p.settings.backend().unwrap_err().0.contains("TOD_DATABASE_URL"));
        assert!(Probe::try_parse_from(["tod-server", "--listen", "nowhere"]).is_err());
    }

    #[test]
    fn production_needs_a_jwt_key_and_bootstrap_needs_both_halves() {
        let parse = |args: &[&str]| {
            let mut all = vec!["tod-server"];
            all.extend_from_slice(args);
            Probe::try_parse_from(all).unwrap().settings.validate()
        };
        assert!(parse(&[]).unwrap_err().0.contains("TOD_JWT_SECRET"));
        assert!(parse(&["--jwt-secret", "short"]).unwrap_err().0.contains("32 bytes"));
        let key = "k".repeat(32);
        assert_eq!(parse(&["--jwt-secret", &key]), Ok(Backend::Sqlite));
        assert!(
            parse(&["--jwt-secret", &key, "--admin-email", "a@b.c"])
                .unwrap_err()
                .0
                .contains("both")
        );
        assert!(
            parse(&[
                "--jwt-secret",
                &key,
                "--admin-email",
                "a@b.c",
                "--admin-password",
                "short"
            ])
            .unwrap_err()
            .0
            .contains("12")
        );
        assert!(parse(&["--jwt-secret", &key, "--auth-rate-limit", "0"]).is_err());
        assert!(
            parse(&["--jwt-secret", &key, "--cors-origins", "evil"])
                .unwrap_err()
                .0
                .contains("TOD_CORS_ORIGINS")
        );
        let p = Probe::try_parse_from(["tod-server", "--trusted-proxies", "10.0.0.1,10.0.0.2"]).unwrap();
        assert_eq!(p.settings.trusted_proxies.len(), 2);
    }

    #[test]
    fn sector_windows_default_to_the_products_and_the_lookback_covers_the_window() {
        let key = "k".repeat(32);
        let parse = |args: &[&str]| {
            let mut all = vec!["tod-server", "--jwt-secret", &key];
            all.extend_from_slice(args);
            Probe::try_parse_from(all).unwrap().settings
        };
        assert_eq!(
            parse(&[]).snapshot_windows(),
            tod_core::alerts::SnapshotWindows::default()
        );
        let s = parse(&["--sector-window-secs", "60", "--sector-lookback-secs", "360"]);
        assert_eq!(s.validate(), Ok(Backend::Sqlite));
        assert_eq!(s.snapshot_windows().recent, chrono::Duration::seconds(60));
        assert_eq!(s.snapshot_windows().lookback, chrono::Duration::seconds(360));
        let short = parse(&["--sector-window-secs", "600", "--sector-lookback-secs", "300"]).validate();
        assert!(short.unwrap_err().0.contains("TOD_SECTOR_LOOKBACK"));
        assert!(
            parse(&["--sector-window-secs", "0"])
                .validate()
                .unwrap_err()
                .0
                .contains("TOD_SECTOR_WINDOW")
        );
    }
}
