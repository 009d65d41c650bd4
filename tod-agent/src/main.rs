use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tod_agent::config::AgentConfig;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
