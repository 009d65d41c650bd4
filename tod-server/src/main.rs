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
    /// Run the server: migrate the database, then serve the API until Ctrl-C or SIGTERM.
    Serve,
    /// Validate the settings (flags and TOD_* variables) and print the effective values.
    CheckConfig,
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    settings.backend().map_err(|e| e.to_string())?;
    let store = tod_server::store::open(&settings.database_url)
        .await
        .map_err(|e| format!("database: {e}"))?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("listen {}: {e}", settings.listen))?;
    tracing::info!(listen = %settings.listen, database = store.backend(), "tod-server ready");
    let app = tod_server::app::app(tod_server::app::AppState { store });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
            match rt.block_on(serve(cli.settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tod-server: {e}");
                    ExitCode::FAILURE
                }
            }
        }
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
