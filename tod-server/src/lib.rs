//! tod-server: ingest, storage, the domain engines and the REST API.
//!
//! | module | owns |
//! |---|---|
//! | [`settings`] | flags and `TOD_*` variables |
//! | [`store`] | the storage interface and its SQLite and PostgreSQL backends |
//! | [`error`] | the `{"detail": ...}` error answer and its status codes |
//! | [`app`] | the router |
//!
//! Not built yet: authentication, RBAC on routes, tenants/users/API keys/sites over HTTP, ingest,
//! the fleet API groups, the WireGuard gateway.

pub mod app;
pub mod error;
pub mod settings;
pub mod store;
