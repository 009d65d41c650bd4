//! An aim problem: a client radio whose signal is far below the other clients of its access
//! point — a misaligned or obstructed CPE rather than a failing sector. Configuration:
//! `margin_db` (default 10), `min_clients` (default 3, the AP's up links with a signal).

use std::collections::BTreeMap;

use tod_plugin_sdk::*;

struct Aim;

impl Plugin for Aim {
    fn metadata() -> Metadata {
        Metadata {
            name: "CPE aim".into(),
            version: "1.0.0".into(),
            inputs: vec![Input::Links],
        }
    }

    fn evaluate(snapshot: Snapshot) -> Result<Vec<Finding>, String> {
        let margin = config_f64("margin_db", 10.0);
        let min_clients = config_f64("min_clients", 3.0) as usize;
        let mut by_ap: BTreeMap<Id, Vec<&Link>> = BTreeMap::new();
        for l in &snapshot.links {
            let up = matches!(l.state, LinkState::Active | LinkState::Degraded);
            if up && l.signal_dbm.is_some() {
                by_ap.entry(l.ap).or_default().push(l);
            }
        }
        let mut out = Vec::new();
        for links in by_ap.values().filter(|v| v.len() >= min_clients) {
            let mut signals: Vec<f64> = links.iter().filter_map(|l| l.signal_dbm.map(f64::from)).collect();
            let Some(median) = median(&mut signals) else { continue };
            for l in links {
                let dbm = f64::from(l.signal_dbm.unwrap_or_default());
                if median - dbm > margin {
                    let mut f = finding(
                        Subject::Link((l.ap, l.cpe)),
                        Severity::Warning,
                        format!(
                            "client signal {dbm} dBm is {:.1} dB below its access point's median ({median:.1} dBm): check the CPE's aim",
                            median - dbm
                        ),
                        Some(dbm),
                    );
                    f.evidence = vec![
                        ("ap_median_dbm".into(), format!("{median:.1}")),
                        ("clients".into(), links.len().to_string()),
                    ];
                    out.push(f);
                }
            }
        }
        Ok(out)
    }
}

export_plugin!(Aim);
