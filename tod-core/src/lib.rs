//! # tod-core — the WISP domain of TOD as a pure, embeddable library
//!
//! Everything here is deterministic functions and state machines over plain data. There is no
//! async runtime, no database, no network, and no clock: every function that needs the time takes
//! it as a parameter (`now: DateTime<Utc>`), so state machines are tested with fixed clocks and the
//! simulator can run them accelerated.
//!
//! | module | owns |
//! |---|---|
//! | [`mac`] | the one MAC address type every MAC in TOD passes through |
//! | [`routeros`] | parsers for RouterOS value strings (signal, rates, durations, versions, channels, pairs) |
//! | [`telemetry`] | the versioned report an agent sends, and its batch envelope |
//! | [`rbac`] | roles, API-key scopes, and the one role × scope × action matrix |
//! | [`signal`] | signal-history bucketing and trend detection |
//! | [`links`] | wireless link discovery and its state machine |
//! | [`alerts`] | the `Rule` trait, alert lifecycle with hysteresis, device and site/sector rules |
//! | [`notify`] | alert notices from the event stream: keys, webhook/Slack/e-mail bodies, retry schedule |
//! | [`srp`] | SRP-6a password login, client and server side, with TOD's wire conventions |
//! | [`sites`] | site health rollups and sector statistics |
//! | [`model`] | id newtypes and the device status shared by the modules above |

pub mod alerts;
pub mod events;
pub mod links;
pub mod mac;
pub mod model;
pub mod notify;
pub mod rbac;
pub mod routeros;
pub mod series;
pub mod signal;
pub mod sites;
pub mod srp;
pub mod telemetry;
pub mod wireless;

pub use mac::MacAddr;
pub use model::*;
