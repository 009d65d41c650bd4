use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tod_agent::check::{check_all, table};
use tod_agent::config::AgentConfig;
use tod_agent::routeros::client::ClientConfig;

/// TOD tower agent: polls the RouterOS devices of one tower and delivers their telemetry to
/// tod-server through an outbound WireGuard tunnel.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Path of the agent's TOML configuration.
    #[arg(
        long,
        short,
        env = "TOD_AGENT_CONFIG",
        default_value = "/etc/tod-agent/agent.toml",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration and print the devices it lists.
    CheckConfig,
    /// Validate the configuration, then try every device once and print a table.
    Check,
    /// Poll the devices, spool, and deliver to the server until Ctrl-C or SIGTERM.
    Run,
    /// Print the running agent's status (spool depth, last delivery, per-device state).
    Status,
    /// Write a new WireGuard private key to a file (mode 0600) and print its public key, to enrol
    /// with `POST /api/vpn/peers` — the private key never leaves the tower.
    Genkey {
        /// Where to write the private key (refuses to overwrite).
        #[arg(long, default_value = "/etc/tod-agent/wg.key")]
        out: PathBuf,
    },
}

fn genkey(out: &std::path::Path) -> Result<String, String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = tod_tunnel::PrivateKey::generate().map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| e.to_string())?;
    writeln!(file, "{}", key.to_base64()).map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    Ok(key.public_key().to_string())
}

fn load(path: &std::path::Path) -> Result<AgentConfig, ExitCode> {
    AgentConfig::load(path).map_err(|e| {
        eprintln!("invalid configuration: {e}");
        ExitCode::from(2)
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Genkey { out } => match genkey(&out) {
            Ok(public) => {
                println!("{public}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tod-agent genkey: {}: {e}", out.display());
                ExitCode::FAILURE
            }
        },
        Command::Run => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            let cfg = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
            match rt.block_on(tod_agent::daemon::run(cfg, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tod-agent: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status => {
            let cfg = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let path = tod_agent::daemon::status_path(&cfg);
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<tod_agent::daemon::StatusFile>(&b).map_err(|e| e.to_string()))
            {
                Ok(s) => {
                    print!(
                        "{}",
                        tod_agent::daemon::render_status(&s, chrono::Utc::now().timestamp_millis())
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("no status at {} ({e}); is the agent running?", path.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check => {
            let cfg = match AgentConfig::load(&cli.config) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    eprintln!("invalid configuration: {e}");
                    return ExitCode::from(2);
                }
            };
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
            let rows = rt.block_on(check_all(cfg, ClientConfig::default()));
            print!("{}", table(&rows));
            let failed = rows.iter().filter(|r| r.outcome.is_err()).count();
            println!("{} of {} devices answered", rows.len() - failed, rows.len());
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::CheckConfig => match AgentConfig::load(&cli.config) {
            Ok(cfg) => {
                println!(
                    "{}: valid; agent {} delivers to {} over {:?}",
                    cli.config.display(),
                    cfg.agent.id,
                    cfg.server.endpoint,
                    cfg.server.uplink
                );
                println!("{:<38} {:<24} {:<14} credentials", "device", "address", "transport");
                for d in &cfg.devices {
                    let port = d.port.unwrap_or(d.transport.default_port());
                    println!(
                        "{:<38} {:<24} {:<14} {}",
                        d.id,
                        format!("{}:{port}", d.host),
                        format!("{:?}", d.transport),
                        d.credentials
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid configuration: {e}");
                ExitCode::from(2)
            }
        },
    }
}
