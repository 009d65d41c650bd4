//! Write TOD alert plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`] — its [`Metadata`] and one `evaluate` function
//! over a [`Snapshot`] — exported with [`export_plugin!`]. Build it for
//! `wasm32-unknown-unknown` as a `cdylib`; TOD turns the module into a component when it is
//! uploaded. See the README for a complete example.
//!
//! The host gives a plugin three things: the evaluation time ([`now_ms`]), a log ([`log`]) and
//! its own configuration ([`config`], [`config_f64`]). Nothing else — no files, network or clock
//! beyond that — and every call runs on a CPU and memory budget. Ids ([`Id`]) are UUIDs as two
//! 64-bit halves: comparable, hashable, printable, and free to pass.

/// The generated bindings of the `tod:plugin` world.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export_plugin",
        default_bindings_module: "tod_plugin_sdk::bindings",
    });
}

pub use bindings::Guest as Plugin;
pub use bindings::export_plugin;
pub use bindings::tod::plugin::host::{config, log, now_ms};
pub use bindings::tod::plugin::types::*;

/// Shorthand for a finding.
pub fn finding(subject: Subject, severity: Severity, message: impl Into<String>, value: Option<f64>) -> Finding {
    Finding {
        subject,
        severity,
        message: message.into(),
        value,
        evidence: Vec::new(),
    }
}

/// A configuration value, or `default` when it is absent or not a number.
pub fn config_f64(key: &str, default: f64) -> f64 {
    config()
        .into_iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A configuration value as text.
pub fn config_str(key: &str) -> Option<String> {
    config().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The median of `values` (`None` when empty); NaNs sort last.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

impl Id {
    /// The id as one number (the UUID's 128 bits).
    pub fn as_u128(&self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        (self.hi, self.lo) == (other.hi, other.lo)
    }
}

impl Eq for Id {}

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.hi, self.lo).hash(state);
    }
}

impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Id {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.hi, self.lo).cmp(&(other.hi, other.lo))
    }
}

/// The UUID form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.as_u128();
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            v >> 96,
            (v >> 80) & 0xffff,
            (v >> 64) & 0xffff,
            (v >> 48) & 0xffff,
            v & 0xffff_ffff_ffff
        )
    }
}
