//! Rain fade: many links dropping together across several sites is weather, not equipment. A
//! link "drops" when its mean signal over the last `window_min` minutes (default 15) is at least
//! `drop_db` (default 6) below its mean over the hour before. When at least `min_links` (default 3)
//! links at `min_sites` (default 2) or more sites drop at once, each affected site gets one
//! finding (not one per link), with the count as evidence.

use std::collections::{BTreeMap, BTreeSet};

use tod_plugin_sdk::*;

struct RainFade;

impl Plugin for RainFade {
    fn metadata() -> Metadata {
        Metadata {
            name: "Rain fade".into(),
            version: "1.0.0".into(),
            inputs: vec![Input::Links, Input::History],
        }
    }

    fn evaluate(snapshot: Snapshot) -> Result<Vec<Finding>, String> {
        let window_ms = (config_f64("window_min", 15.0) * 60_000.0) as i64;
        let drop_db = config_f64("drop_db", 6.0);
        let min_links = config_f64("min_links", 3.0) as usize;
        let min_sites = config_f64("min_sites", 2.0) as usize;
        let recent_from = snapshot.at_ms - window_ms;
        let base_from = recent_from - 60 * 60_000;
        // (ap, cpe) → (recent sum, n, baseline sum, n)
        let mut sums: BTreeMap<(Id, Id), (f64, u32, f64, u32)> = BTreeMap::new();
        for h in &snapshot.history {
            if h.at_ms > snapshot.at_ms || h.at_ms <= base_from || h.dbm == 0 {
                continue;
            }
            let e = sums.entry((h.ap, h.cpe)).or_default();
            if h.at_ms > recent_from {
                e.0 += f64::from(h.dbm);
                e.1 += 1;
            } else {
                e.2 += f64::from(h.dbm);
                e.3 += 1;
            }
        }
        let site_of: BTreeMap<(Id, Id), Id> = snapshot
            .links
            .iter()
            .filter_map(|l| Some(((l.ap, l.cpe), l.site?)))
            .collect();
        let mut dropped: BTreeMap<Id, Vec<f64>> = BTreeMap::new();
        for (link, (rs, rn, bs, bn)) in &sums {
            if *rn == 0 || *bn == 0 {
                continue;
            }
            let drop = bs / f64::from(*bn) - rs / f64::from(*rn);
            if drop >= drop_db
                && let Some(site) = site_of.get(link)
            {
                dropped.entry(*site).or_default().push(drop);
            }
        }
        let links: usize = dropped.values().map(Vec::len).sum();
        let sites: BTreeSet<Id> = dropped.keys().copied().collect();
        if links < min_links || sites.len() < min_sites {
            return Ok(Vec::new());
        }
        Ok(dropped
            .iter()
            .map(|(site, drops)| {
                let worst = drops.iter().copied().fold(0.0, f64::max);
                let mut f = finding(
                    Subject::Site(*site),
                    Severity::Warning,
                    format!(
                        "rain fade: {} links here and {links} at {} sites dropped {drop_db:.0} dB or more together (worst {worst:.1} dB)",
                        drops.len(),
                        sites.len()
                    ),
                    Some(worst),
                );
                f.evidence = vec![
                    ("links_here".into(), drops.len().to_string()),
                    ("links_total".into(), links.to_string()),
                    ("sites".into(), sites.len().to_string()),
                ];
                f
            })
            .collect())
    }
}

export_plugin!(RainFade);
