//! The application: state, the router with its middleware, and start-up (keys, bootstrap).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::{Json, response::IntoResponse};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::auth::TokenKeys;
use crate::error::ApiError;
use crate::limits::AuthLimiter;
use crate::settings::{Environment, Settings};
use crate::store::{Audit, NewUser, PLATFORM_CHAIN, Store, StoreError};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Token keys and lifetimes.
    pub keys: Arc<TokenKeys>,
    /// The authentication endpoints' rate limit.
    pub auth_limiter: Arc<AuthLimiter>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpAddr]>,
    /// Browser origins allowed to call with credentials.
    pub cors_origins: Arc<[HeaderValue]>,
    /// `TOD_ENV=dev`: the documentation viewers are served.
    pub dev: bool,
    /// The NATS consumer, when one is configured (readiness checks its connection).
    pub broker: Option<Arc<crate::consume::NatsConsumer>>,
    /// The MQTT consumer, when one is configured (readiness checks its connection).
    pub mqtt: Option<Arc<crate::consume::MqttConsumer>>,
    /// Seals device credentials and channel secrets; `None` outside dev without `TOD_MASTER_KEY`.
    pub vault: Option<Arc<crate::vault::Vault>>,
    /// Sends alert notifications (the dispatcher's passes and channel tests).
    pub notifier: crate::notify::Notifier,
    /// The embedded WireGuard gateway, once started ([`crate::vpn::Vpn::start`]).
    pub vpn: Option<Arc<crate::vpn::Vpn>>,
    /// Compiles and runs WASM plugins (its compile cache is shared by the API and the
    /// evaluator).
    pub plugins: tod_plugin_host::PluginHost,
    /// Turns true when the server starts shutting down: long-lived responses (event streams) end
    /// then, so the graceful shutdown does not wait on them.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Short-lived answers of expensive tenant-wide reads, forgotten on every write.
    pub reads: Arc<crate::readcache::ReadCache>,
    /// The windows sector aggregates and signal history are taken over (site rules, plugins,
    /// backtests).
    pub windows: tod_core::alerts::SnapshotWindows,
    /// The clock background work and ingest read ([`Settings::clock`]).
    pub clock: tod_agent::clock::Clock,
    /// The fleet trend detector's windows and threshold.
    pub trend: tod_core::signal::TrendConfig,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.backend())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State for a store and settings: the JWT key from the settings or, in `dev`, generated once
    /// and kept in the database; the first super admin created if the database has no users.
    pub async fn start(store: Arc<dyn Store>, settings: &Settings) -> Result<Self, String> {
        settings.validate().map_err(|e| e.to_string())?;
        let secret = match &settings.jwt_secret {
            Some(k) => k.as_bytes().to_vec(),
            None => store
                .secret("jwt_signing_key", &|| {
                    crate::auth::random_bytes::<32>()
                        .map(|b| b.to_vec())
                        .unwrap_or_default()
                })
                .await
                .map_err(|e| format!("JWT key: {e}"))?,
        };
        if secret.len() < 32 {
            return Err("JWT key: fewer than 32 bytes".into());
        }
        bootstrap_admin(store.as_ref(), settings).await?;
        let vault = match (&settings.master_key, settings.environment) {
            (Some(k), _) => Some(crate::vault::Vault::new(k.as_bytes())),
            // Dev only: the key sits beside what it protects, which is no protection at rest.
            (None, Environment::Dev) => Some(crate::vault::Vault::new(
                &store
                    .secret("vault_master_key", &|| {
                        crate::auth::random_bytes::<32>()
                            .map(|b| b.to_vec())
                            .unwrap_or_default()
                    })
                    .await
                    .map_err(|e| format!("vault key: {e}"))?,
            )),
            (None, _) => None,
        };
        let vault = vault.map(Arc::new);
        let notifier = crate::notify::Notifier::new(store.clone(), vault.clone())?;
        let cors_origins: Vec<HeaderValue> = settings
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        Ok(Self {
            store,
            keys: Arc::new(TokenKeys::new(&secret, settings.environment != Environment::Dev)),
            auth_limiter: Arc::new(AuthLimiter::new(settings.auth_rate_limit)),
            trusted_proxies: settings.trusted_proxies.clone().into(),
            cors_origins: cors_origins.into(),
            dev: settings.environment == Environment::Dev,
            broker: None,
            mqtt: None,
            notifier,
            vault,
            vpn: None,
            plugins: tod_plugin_host::PluginHost::new(tod_plugin_host::Limits::default())
                .map_err(|e| format!("plugin host: {e}"))?,
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
            reads: Arc::new(crate::readcache::ReadCache::new(Duration::from_secs(1))),
            windows: settings.snapshot_windows(),
            clock: settings.clock,
            trend: tod_core::signal::TrendConfig {
                gap_secs: i64::from(settings.trend_gap_secs),
                ..tod_core::signal::TrendConfig::default()
            },
        })
    }
}

/// Creates the first super admin from `TOD_ADMIN_EMAIL`/`TOD_ADMIN_PASSWORD` when there are no
/// users. The password only feeds the SRP verifier; it is not stored or logged.
async fn bootstrap_admin(store: &dyn Store, settings: &Settings) -> Result<(), String> {
    if store.count_users().await.map_err(|e| e.to_string())? > 0 {
        return Ok(());
    }
    let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) else {
        tracing::warn!("no users yet: set TOD_ADMIN_EMAIL and TOD_ADMIN_PASSWORD to create the first super admin");
        return Ok(());
    };
    let salt = crate::auth::random_bytes::<{ tod_core::srp::SALT_LEN }>().map_err(|e| e.detail)?;
    let enrolment = tod_core::srp::enrol(email, password, salt);
    let new = NewUser {
        email,
        name: "Administrator",
        role: tod_core::rbac::Role::SuperAdmin,
        tenant: None,
        salt: &enrolment.salt,
        verifier: &enrolment.verifier,
    };
    let audit = Audit {
        chain: PLATFORM_CHAIN,
        actor_user: None,
        actor_api_key: None,
        action: "user.bootstrapped".into(),
        resource_type: None,
        resource_id: None,
        details: json!({ "email": tod_core::srp::identity(email) }),
        ip: None,
    };
    match store.create_user(new, chrono::Utc::now(), &audit).await {
        // Another replica bootstrapped at the same moment.
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(format!("bootstrap admin: {e}")),
    }
}

/// The server as `tod-server serve` runs it: store opened and migrated, state, the broker
/// consumers that are configured, the API listener bound, the WireGuard gateway forwarding to it,
/// the rate limiter's pruning and the background work.
pub struct Server {
    /// The state the API serves.
    pub state: AppState,
    listener: tokio::net::TcpListener,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Starts everything but the HTTP service itself ([`Server::serve`]).
    pub async fn start(settings: &Settings) -> Result<Self, String> {
        settings.validate().map_err(|e| e.to_string())?;
        let store = crate::store::open(&settings.database_url)
            .await
            .map_err(|e| format!("database: {e}"))?;
        let mut state = AppState::start(store, settings).await?;
        let mut relay = None;
        if let Some(url) = &settings.nats_url {
            relay = Some(
                crate::relay::NatsRelay::start(crate::relay::NatsRelayConfig::at(url), state.store.clone())
                    .await
                    .map_err(|e| format!("nats_url (TOD_NATS_URL): {e}"))?,
            );
            let ingest = crate::consume::NatsIngest {
                clock: settings.clock,
                ..crate::consume::NatsIngest::at(url)
            };
            let consumer = crate::consume::NatsConsumer::start(ingest, state.store.clone())
                .await
                .map_err(|e| format!("nats_url (TOD_NATS_URL): {e}"))?;
            state.broker = Some(Arc::new(consumer));
        }
        if let Some(url) = &settings.mqtt_url {
            let (host, port) = url
                .trim_start_matches("mqtt://")
                .rsplit_once(':')
                .expect("validated host:port");
            let ingest = crate::consume::MqttIngest {
                clock: settings.clock,
                ..crate::consume::MqttIngest::at(
                    host,
                    port.parse().expect("validated port"),
                    &settings.mqtt_client_id(),
                )
            };
            let consumer = crate::consume::MqttConsumer::start(ingest, state.store.clone());
            state.mqtt = Some(Arc::new(consumer));
        }
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| format!("listen {}: {e}", settings.listen))?;
        let api = listener.local_addr().map_err(|e| e.to_string())?;
        state.vpn = crate::vpn::Vpn::start(settings, state.vault.as_deref(), state.store.clone(), api).await?;
        let limiter = state.auth_limiter.clone();
        let prune = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                limiter.prune();
            }
        });
        let background = spawn_background(&state, settings.agent_poll_interval_secs);
        let site_alerts = spawn_site_alerts(&state, settings.alert_evaluation_interval_secs);
        let notifications = crate::notify::spawn(state.notifier.clone(), Duration::from_secs(1));
        let trends = spawn_trends(&state, settings.trend_detection_interval_secs);
        tracing::info!(listen = %api, database = state.store.backend(), "tod-server ready");
        Ok(Self {
            state,
            listener,
            tasks: [prune, background, site_alerts, notifications, trends]
                .into_iter()
                .chain(relay.map(crate::relay::NatsRelay::into_task))
                .collect(),
        })
    }

    /// The bound API address.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves the API until `shutdown` resolves, then stops the background work.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), String> {
        let stopping = self.state.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        let app = app(self.state);
        let served = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        for task in self.tasks {
            task.abort();
        }
        served.map_err(|e| e.to_string())
    }
}

/// Wall time one rollup pass may take: the first pass over a fleet with 30 days of history takes
/// several, a step at a time.
const ROLLUP_BUDGET: Duration = Duration::from_secs(2);

/// Background work: every half poll interval (at most 30 s), whichever replica holds the
/// `fleet-aging` lease ages links by time and marks the devices of silent agents unreachable, the
/// holder of the `signal-rollup` lease sums closed hours of signal for the history reads
/// ([`crate::store::FleetStore::rollup_signal`]), and the holder of the `statistics` lease
/// refreshes the planner's statistics of tables that changed much
/// ([`crate::store::Store::refresh_statistics`]); hourly, the holder of the `retention`
/// lease deletes registrations older than 30 days, metrics and link events older than 90 days,
/// and expired sessions.
pub fn spawn_background(state: &AppState, poll_interval_secs: u32) -> tokio::task::JoinHandle<()> {
    let (store, clock) = (state.store.clone(), state.clock);
    let me = uuid::Uuid::new_v4();
    let every = clock_interval(&clock, poll_interval_secs / 2).min(Duration::from_secs(30));
    let ttl = lease_ttl(&clock, every * 3);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut last_retention: Option<chrono::DateTime<chrono::Utc>> = None;
        loop {
            tick.tick().await;
            let now = clock.now();
            match store.try_lease("fleet-aging", me, now, ttl).await {
                Ok(true) => match store.age_fleet(now, i64::from(poll_interval_secs)).await {
                    Ok(a) if a.link_changes > 0 || a.devices_unreachable > 0 => {
                        tracing::info!(
                            links = a.link_changes,
                            unreachable = a.devices_unreachable,
                            "fleet aged"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "fleet aging failed"),
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "fleet-aging lease"),
            }
            match store.try_lease("signal-rollup", me, now, ttl).await {
                Ok(true) => match store.rollup_signal(now, ROLLUP_BUDGET).await {
                    Ok(r) if r.hours > 0 || r.dirty > 0 => {
                        tracing::debug!(
                            hours = r.hours,
                            dirty = r.dirty,
                            caught_up = r.caught_up,
                            "signal summed"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "signal rollup failed"),
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "signal-rollup lease"),
            }
            match store.try_lease("statistics", me, now, ttl).await {
                Ok(true) => match store.refresh_statistics().await {
                    Ok(tables) if !tables.is_empty() => tracing::debug!(?tables, "planner statistics gathered"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "gathering planner statistics failed"),
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "statistics lease"),
            }
            if last_retention.is_none_or(|t| now - t >= chrono::Duration::hours(1)) {
                last_retention = Some(now);
                let hour = chrono::Duration::hours(1);
                if let Ok(true) = store.try_lease("retention", me, now, hour).await {
                    match store
                        .retain(
                            now,
                            chrono::Utc::now(),
                            chrono::Duration::days(30),
                            chrono::Duration::days(90),
                        )
                        .await
                    {
                        Ok(n) if n > 0 => tracing::info!(rows = n, "retention"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "retention failed"),
                    }
                }
            }
        }
    })
}

/// Site and sector alert rules: a pass at start and then every `interval_secs`, by whichever
/// replica holds the `site-alerts` lease ([`crate::site_alerts`]).
pub fn spawn_site_alerts(state: &AppState, interval_secs: u32) -> tokio::task::JoinHandle<()> {
    let (store, clock) = (state.store.clone(), state.clock);
    let host = state.plugins.clone();
    let windows = state.windows;
    let me = uuid::Uuid::new_v4();
    let every = clock_interval(&clock, interval_secs);
    let ttl = lease_ttl(&clock, every * 3);
    tokio::spawn(async move {
        let mut evaluator = crate::site_alerts::SiteAlerts::with_host(host).with_windows(windows);
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let now = clock.now();
            match store.try_lease("site-alerts", me, now, ttl).await {
                Ok(true) => match evaluator.pass(store.as_ref(), now).await {
                    Ok(p) if p.raised + p.resolved + p.failed > 0 => {
                        tracing::info!(
                            rules = p.rules,
                            raised = p.raised,
                            resolved = p.resolved,
                            failed = p.failed,
                            "site alerts"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "site alert pass failed"),
                },
                Ok(false) => evaluator.reset(),
                Err(e) => tracing::warn!(error = %e, "site-alerts lease"),
            }
        }
    })
}

/// The fleet-wide signal trend detector: a pass at start and then every `interval_secs`, by
/// whichever replica holds the `trend-detection` lease ([`crate::store::TrendStore`]).
pub fn spawn_trends(state: &AppState, interval_secs: u32) -> tokio::task::JoinHandle<()> {
    let (store, clock, config) = (state.store.clone(), state.clock, state.trend);
    let me = uuid::Uuid::new_v4();
    let every = clock_interval(&clock, interval_secs);
    let ttl = lease_ttl(&clock, every * 2);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let now = clock.now();
            match store.try_lease("trend-detection", me, now, ttl).await {
                Ok(true) => match store.detect_trends(now, &config).await {
                    Ok(p) if p.raised + p.resolved > 0 => {
                        tracing::info!(
                            links = p.links,
                            raised = p.raised,
                            resolved = p.resolved,
                            "signal trends"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "trend detection failed"),
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "trend-detection lease"),
            }
        }
    })
}

/// How often, in real time, a job runs that runs every `clock_secs` of the server's clock (at
/// least every 200 ms however fast the clock).
fn clock_interval(clock: &tod_agent::clock::Clock, clock_secs: u32) -> Duration {
    clock
        .real(f64::from(clock_secs.max(1)))
        .clamp(Duration::from_millis(200), Duration::from_secs(86_400))
}

/// A lease that lasts `real` on the server's clock.
fn lease_ttl(clock: &tod_agent::clock::Clock, real: Duration) -> chrono::Duration {
    chrono::Duration::from_std(real.mul_f64(clock.speed().max(1.0))).unwrap_or(chrono::Duration::hours(2))
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let cors = if state.cors_origins.is_empty() {
        CorsLayer::new()
    } else {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(state.cors_origins.iter().cloned()))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
            ])
            .max_age(Duration::from_secs(600))
    };
    let request_id = HeaderName::from_static("x-request-id");
    crate::api::router(&state)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async { ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") })
        .with_state(state)
        .layer(cors)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned();
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                // One structured line per request: status and latency, inside the span above.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Liveness: the process answers.
pub(crate) async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Readiness: 200 only when the database — and the broker, when one is configured — answers.
pub(crate) async fn ready(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    st.store.ping().await?;
    if st.broker.as_ref().is_some_and(|b| !b.connected()) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker unavailable: NATS is not connected",
        ));
    }
    Ok(Json(
        json!({ "status": "ready", "database": st.store.backend(), "broker": st.broker.is_some() }),
    ))
}
