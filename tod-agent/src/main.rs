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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
