//! The `threshold` plugin as it was written for `tod:plugin@0.1.0`, whose snapshot is a list of
//! records per part, straight on `wit-bindgen` (the SDK now targets 0.2.0). The host's tests
//! check that plugins of the older world still load and judge the same as the current one.

#![allow(clippy::too_many_arguments)] // in the generated bindings

wit_bindgen::generate!({
    path: "../../../wit/0.1.0/tod-plugin.wit",
    world: "plugin",
});

use tod::plugin::host::config;
use tod::plugin::types::{Input, Severity, Subject};

struct Threshold;

impl Guest for Threshold {
    fn metadata() -> Metadata {
        Metadata {
            name: "Weak link (0.1.0)".into(),
            version: "1.0.0".into(),
            inputs: vec![Input::Links],
        }
    }

    fn evaluate(snapshot: Snapshot) -> Result<Vec<Finding>, String> {
        let threshold = config()
            .into_iter()
            .find(|(k, _)| k == "threshold")
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(-75.0);
        Ok(snapshot
            .links
            .into_iter()
            .filter_map(|l| {
                let dbm = f64::from(l.signal_dbm?);
                (dbm < threshold).then(|| Finding {
                    subject: Subject::Link((l.ap, l.cpe)),
                    severity: Severity::Warning,
                    message: format!("signal {dbm} dBm below {threshold} dBm"),
                    value: Some(dbm),
                    evidence: Vec::new(),
                })
            })
            .collect())
    }
}

export!(Threshold);
