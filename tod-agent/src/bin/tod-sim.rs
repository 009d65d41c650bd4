use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tod_agent::sim::{SimConfig, Simulator, control};

/// Simulated MikroTik fleet: N devices on loopback, each a real RouterOS API endpoint.
///
/// Device i serves the plain API on BASE_PORT + i (and api-ssl on TLS_BASE_PORT + i when given),
/// user `admin` with the password from --password. Runs until Ctrl-C or SIGTERM.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Number of devices (at least 1).
    #[arg(long, default_value_t = 100, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    devices: usize,
    /// World seed: the same seed gives the same world and the same values.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Plain API port of device 0.
    #[arg(long, default_value_t = 20_000)]
    base_port: u16,
    /// api-ssl port of device 0 (TLS listeners only when set).
    #[arg(long)]
    tls_base_port: Option<u16>,
    /// Address to bind (a loopback address).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// One loopback address per device instead of one port per device: device i listens on
    /// this address + i, at --base-port (and --tls-base-port).
    #[arg(long)]
    ip_per_device: Option<std::net::Ipv4Addr>,
    /// Password of the `admin` user.
    #[arg(long, default_value = "admin")]
    password: String,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Write a JSON list of the devices here once they listen.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Serve the HTTP/JSON control surface on this address.
    #[arg(long)]
    control: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    if cli.base_port as usize + cli.devices > 65_536
        || cli.tls_base_port.is_some_and(|p| p as usize + cli.devices > 65_536)
    {
        eprintln!("--devices {} does not fit above the base port", cli.devices);
        return ExitCode::from(2);
    }
    let config = SimConfig {
        seed: cli.seed,
        devices: cli.devices,
        bind: cli.bind,
        ip_per_device: cli.ip_per_device,
        base_port: cli.base_port,
        tls_base_port: cli.tls_base_port,
        password: cli.password.clone(),
        speed: cli.speed,
        ..SimConfig::default()
    };
    let sim = match Simulator::start(config).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("cannot start the simulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &cli.manifest {
        let text = serde_json::to_string_pretty(&sim.manifest()).expect("manifest serialises");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("cannot write the manifest {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(addr) = cli.control {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                let app = control::router(sim.clone());
                tokio::spawn(async move { axum::serve(l, app).await });
            }
            Err(e) => {
                eprintln!("cannot bind the control surface on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "tod-sim: {} devices on {}:{}..{}{} (seed {}, user admin)",
        cli.devices,
        cli.bind,
        cli.base_port,
        cli.base_port as usize + cli.devices - 1,
        cli.tls_base_port.map_or(String::new(), |p| format!(
            ", api-ssl on {p}..{}",
            p as usize + cli.devices - 1
        )),
        cli.seed
    );
    shutdown_signal().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
