//! A sector whose clients are still there but can no longer move data: average CCQ below
//! `ccq_min` (default 40 %), or throughput below `throughput_min_bps` when that is set, with at
//! least `min_clients` (default 3) clients. RouterOS v7 reports no CCQ; such sectors are judged on
//! throughput only (no CCQ is not "CCQ 0").

use tod_plugin_sdk::*;

struct SectorCollapse;

impl Plugin for SectorCollapse {
    fn metadata() -> Metadata {
        Metadata {
            name: "Sector collapse".into(),
            version: "1.0.0".into(),
            inputs: vec![Input::Sectors],
        }
    }

    fn evaluate(snapshot: Snapshot) -> Result<Vec<Finding>, String> {
        let ccq_min = config_f64("ccq_min", 40.0);
        let bps_min = config_f64("throughput_min_bps", 0.0);
        let min_clients = config_f64("min_clients", 3.0);
        let mut out = Vec::new();
        for s in &snapshot.sectors {
            if f64::from(s.clients_now) < min_clients {
                continue;
            }
            if let Some(ccq) = s.avg_ccq.filter(|c| *c < ccq_min) {
                out.push(finding(
                    Subject::Sector(s.id),
                    Severity::Critical,
                    format!(
                        "average CCQ {ccq:.0} % below {ccq_min:.0} % with {} clients",
                        s.clients_now
                    ),
                    Some(ccq),
                ));
            } else if let Some(bps) = s.throughput_bps.filter(|b| bps_min > 0.0 && *b < bps_min) {
                out.push(finding(
                    Subject::Sector(s.id),
                    Severity::Critical,
                    format!(
                        "throughput {:.1} Mbit/s below {:.1} Mbit/s with {} clients",
                        bps / 1e6,
                        bps_min / 1e6,
                        s.clients_now
                    ),
                    Some(bps),
                ));
            }
        }
        Ok(out)
    }
}

export_plugin!(SectorCollapse);
