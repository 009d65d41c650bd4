use std::io::BufRead;
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
    /// The whole system in one process: the server on SQLite with its WireGuard gateway, a
    /// simulated fleet of towers, and one agent per tower delivering through its tunnel.
    Demo(tod_server::demo::DemoOptions),
    /// Field truth: run the demo's system through a scenario and score what the API reports
    /// against the simulator's truth (link-state accuracy, fault detection, alert storms).
    Score(tod_server::score::ScoreOptions),
    /// Validate the settings (flags and TOD_* variables) and print the effective values.
    CheckConfig,
    /// Log in to a server with SRP-6a and print the tokens as JSON (password from TOD_PASSWORD,
    /// else the first line of standard input).
    Login {
        /// Server base URL, e.g. http://127.0.0.1:8080.
        #[arg(long, env = "TOD_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Account e-mail.
        #[arg(long)]
        email: String,
    },
    /// Print the OpenAPI document of this build's API.
    Openapi,
    /// Print the SRP salt and verifier for an account as JSON, for `POST /api/users` or
    /// `POST /api/auth/change-password` (password from TOD_PASSWORD, else standard input).
    Enrol {
        /// Account e-mail.
        #[arg(long)]
        email: String,
    },
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    tod_server::app::Server::start(&settings)
        .await?
        .serve(shutdown_signal())
        .await
}

async fn demo(opts: tod_server::demo::DemoOptions) -> Result<(), String> {
    println!(
        "TOD demo: {} simulated devices at {}x speed; setting up server, simulator, agents and tunnels...",
        opts.devices, opts.speed
    );
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<tod_server::demo::DemoAccess>();
    let printer = tokio::spawn(async move {
        if let Ok(a) = ready_rx.await {
            println!(
                "\n  towers     {}, each with its own agent polling over the RouterOS API and a WireGuard tunnel",
                a.towers
            );
            println!(
                "  API        {}   (OpenAPI at /api/openapi.json, Swagger UI at /docs)",
                a.url
            );
            println!("  admin      {} / {}", a.email, a.password);
            println!("  API key    {}   (X-API-Key; tenant {})", a.api_key, a.tenant);
            println!(
                "  try        curl -H 'X-API-Key: {}' {}/api/tenants/{}/links",
                a.api_key, a.url, a.tenant
            );
            println!(
                "  live       curl -N -H 'X-API-Key: {}' {}/api/sse/events   (device, link and alert events as they happen)\n",
                a.api_key, a.url
            );
            println!("Running until Ctrl-C.");
        }
    });
    let started = std::time::Instant::now();
    let result = tod_server::demo::run(
        opts,
        ready_tx,
        move |p| {
            if let Some(note) = &p.note {
                println!("[{:>5.0} s] {note}", started.elapsed().as_secs_f64());
            }
            println!(
                "[{:>5.0} s] devices online {}/{}  links {} ({} live)  tunnels up {}  site alerts {}  device alerts {}",
                started.elapsed().as_secs_f64(),
                p.online,
                p.devices,
                p.links,
                p.live_links,
                p.tunnels_up,
                p.active_alerts,
                p.device_alerts
            )
        },
        shutdown_signal(),
    )
    .await;
    let _ = printer.await;
    result
}

fn password() -> Result<String, String> {
    if let Ok(p) = std::env::var("TOD_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let run = |f: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>| {
        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        match rt.block_on(f) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tod-server: {e}");
                ExitCode::FAILURE
            }
        }
    };
    match cli.command {
        Command::Serve => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            run(Box::pin(serve(cli.settings)))
        }
        Command::Demo(opts) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        // The gateway retrying a handshake to the tower the demo took down is expected.
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,boringtun=error")),
                )
                .init();
            run(Box::pin(demo(opts)))
        }
        Command::Score(opts) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        // The gateway retrying a handshake to an agent a scenario cut off is expected.
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,boringtun=off")),
                )
                .init();
            run(Box::pin(async move {
                let score = tod_server::score::run(&opts, &|line| eprintln!("{line}")).await?;
                println!("{}", score.table());
                if let Some(path) = &opts.json {
                    let json = serde_json::to_string_pretty(&score).map_err(|e| e.to_string())?;
                    std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
                }
                Ok(())
            }))
        }
        Command::Login { url, email } => run(Box::pin(async move {
            let tokens = tod_server::client::login(&url, &email, &password()?).await?;
            println!("{tokens}");
            Ok(())
        })),
        Command::Openapi => match tod_server::api::doc::openapi().to_pretty_json() {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tod-server: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Enrol { email } => match password().and_then(|p| tod_server::client::enrolment(&email, &p)) {
            Ok(v) => {
                println!("{v}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tod-server: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig => match cli.settings.validate() {
            Ok(backend) => {
                let s = &cli.settings;
                println!("listen            {}", s.listen);
                println!("database backend  {backend:?}");
                println!("wireguard listen  {}", s.wireguard_listen);
                println!("environment       {:?}", s.environment);
                println!(
                    "jwt key           {}",
                    if s.jwt_secret.is_some() {
                        "set"
                    } else {
                        "generated (dev)"
                    }
                );
                println!("auth rate limit   {}/min", s.auth_rate_limit);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid settings: {e}");
                ExitCode::from(2)
            }
        },
    }
}
