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
    /// UDP address of the embedded WireGuard gateway agents dial.
    #[arg(long, env = "TOD_WIREGUARD_LISTEN", default_value = "0.0.0.0:51820")]
    pub wireguard_listen: SocketAddr,
    /// Deployment environment.
    #[arg(long = "env", env = "TOD_ENV", value_enum, default_value = "production")]
    pub environment: Environment,
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
        let p = Probe::try_parse_from(["tod-server", "--database-url", "mysql://x"]).unwrap();
        assert!(p.settings.backend().unwrap_err().0.contains("TOD_DATABASE_URL"));
        assert!(Probe::try_parse_from(["tod-server", "--listen", "nowhere"]).is_err());
    }
}
