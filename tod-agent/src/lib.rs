//! tod-agent: the tower daemon. It polls RouterOS devices, spools what it collects on disk and
//! delivers it to tod-server through a userspace WireGuard tunnel.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the TOML configuration and its validation |
//! | [`routeros`] | the RouterOS API: sans-IO codec, sentence model, async client, TLS |
//! | [`poll`] | normalisation into `tod_core::telemetry`, device sessions, breaker, scheduler |
//! | [`clock`] | the wall clock the agent stamps with (the system's, or accelerated for tests) |
//! | [`check`] | `tod-agent check`: try every device once |
//! | [`daemon`] | `tod-agent run` and `status`: status file, `/metrics`, graceful stop |
//! | [`spool`] | the crash-safe, bounded on-disk store-and-forward queue |
//! | [`uplink`] | delivery transports behind one trait (HTTP, NATS JetStream, MQTT) |
//! | [`forward`] | spool → batches → uplink, acknowledged only after the server commits |
//! | [`pipeline`] | poller → spool → forwarder, started and stopped as one |
//! | [`sim`] | `tod-sim`, the simulated fleet used by tests, benches and the demo |
//!
//! The WireGuard tunnel itself is the `tod-tunnel` crate (`tod-agent/tunnel`); [`daemon`] starts it
//! from the `[tunnel]` section and points the uplinks at its local forwards.

pub mod check;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod forward;
pub mod pipeline;
pub mod poll;
pub mod routeros;
pub mod sim;
pub mod spool;
pub mod uplink;
