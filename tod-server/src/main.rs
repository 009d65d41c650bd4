use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tod_server::settings::Settings;

/// TOD server: receives telemetry from tower agents, stores it, discovers wireless links,
/// evaluates alert rules and serves the REST API.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the settings (flags and TOD_* variables) and print the effective values.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig => match cli.settings.backend() {
            Ok(backend) => {
                let s = &cli.settings;
                println!("listen            {}", s.listen);
                println!("database backend  {backend:?}");
                println!("wireguard listen  {}", s.wireguard_listen);
                println!("environment       {:?}", s.environment);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid settings: {e}");
                ExitCode::from(2)
            }
        },
    }
}
