//! The simplest plugin: a link whose signal is below a threshold (`threshold`, default -75 dBm).
//! The benchmark compares it with the same rule built in.

use tod_plugin_sdk::*;

struct Threshold;

impl Plugin for Threshold {
    fn metadata() -> Metadata {
        Metadata {
            name: "Weak link".into(),
            version: "1.0.0".into(),
            inputs: vec![Input::Links],
        }
    }

    fn evaluate(snapshot: Snapshot) -> Result<Vec<Finding>, String> {
        let threshold = config_f64("threshold", -75.0);
        Ok(snapshot
            .links
            .into_iter()
            .filter_map(|l| {
                let dbm = f64::from(l.signal_dbm?);
                (dbm < threshold).then(|| {
                    finding(
                        Subject::Link((l.ap, l.cpe)),
                        Severity::Warning,
                        format!("signal {dbm} dBm below {threshold} dBm"),
                        Some(dbm),
                    )
                })
            })
            .collect())
    }
}

export_plugin!(Threshold);
