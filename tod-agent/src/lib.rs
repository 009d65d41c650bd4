//! tod-agent: the tower daemon. It will poll RouterOS devices, spool what it collects on disk and
//! deliver it to tod-server through a userspace WireGuard tunnel.
//!
//! What exists so far: the configuration file and its validation. Polling, the RouterOS client,
//! the spool and the uplinks are the next issues.

pub mod config;
pub mod poll;
pub mod routeros;
pub mod sim;
