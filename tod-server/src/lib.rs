//! tod-server: ingest, storage, the domain engines and the REST API.
//!
//! | module | owns |
//! |---|---|
//! | [`settings`] | flags and `TOD_*` variables |
//! | [`store`] | the storage interface and its SQLite and PostgreSQL backends |
//! | [`error`] | the `{"detail": ...}` error answer and its status codes |
//! | [`auth`] | tokens, API keys, cookies and the authenticated caller |
//! | [`client`] | SRP login and enrolment for scripts (`tod-server login`, `tod-server enrol`) |
//! | [`consume`] | the NATS JetStream input of ingest (durable pull consumer, dead letters) |
//! | [`ingest`] | the one ingest pipeline (decode, check, store) behind HTTP and the brokers |
//! | [`limits`] | the per-address rate limit of the authentication endpoints |
//! | [`api`] | the route table, its guard (authentication + tod-core RBAC) and the handlers |
//! | [`notify`] | alert notifications: webhook (signed), Slack-compatible and e-mail channels, retries, delivery log |
//! | [`site_alerts`] | the site/sector alert rule and plugin passes (one replica, under a lease) |
//! | [`score`] | field truth: the demo's system scored against the simulator's truth |
//! | [`plugins`] | WASM plugins in the server: loaded instances, scoping, backtests |
//! | [`vault`] | device credentials sealed at rest (XChaCha20-Poly1305, per-tenant keys) |
//! | [`vpn`] | the embedded WireGuard gateway: key, peers from the store, forwards to our services |
//! | [`app`] | state, middleware (security headers, request id, CORS, access log), start-up |
//!

pub mod api;
pub mod app;
pub mod auth;
pub mod client;
pub mod consume;
pub mod demo;
pub mod error;
pub mod ingest;
pub mod limits;
pub mod notify;
pub mod plugins;
pub mod readcache;
pub mod relay;
pub mod scenario;
pub mod score;
pub mod settings;
pub mod site_alerts;
pub mod store;
pub mod vault;
pub mod vpn;
