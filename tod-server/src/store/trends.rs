//! The fleet-wide signal trend detector (hourly, one replica under the `trend-detection` lease):
//! every active or degraded link whose AP is at a site is judged by tod-core's
//! [`judge_trend`](tod_core::signal::judge_trend) — last week's mean signal against the week before (or the config's gap before),
//! disjoint windows, 0 dBm sentinels ignored, a clear margin — and a link whose signal fell raises
//! one `signal_trend` site alert event (no rule; the CPE in `device_id`, the AP in
//! `ap_device_id`). The event resolves when the signal recovers, and also when the link stops
//! being active (the original left those forever). A site with its own enabled
//! `signal_degradation` rule is judged by that rule instead, so a link is never reported twice.
//! The weeks are whole hours ([`trend_end`]), read from the hourly signal sums where they are
//! summed; the same sums (`trend_sums`, written into each backend) serve `signal_degradation`
//! rules, plugins' `trend-delta-db` and backtests. Written once for both backends:
//! [`impl_trend_store!`] expands in each.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tod_core::signal::{TrendConfig, TrendVerdict, judge_trend};
use uuid::Uuid;

use super::StoreError;
use super::fleet::ROLLUP_GRACE;

/// A client's signal sums for a trend, by (AP, client MAC): recent sum, recent samples, previous
/// sum, previous samples.
pub(crate) type TrendSums = HashMap<(Uuid, String), [i64; 4]>;

/// Where a trend judged at `at` ends: its two windows are whole hours, so the hourly signal sums
/// serve them, and an hour counts once it has been summed ([`ROLLUP_GRACE`] after it closed).
/// The trend moves once an hour, which a two-week comparison does not notice.
pub fn trend_end(at: DateTime<Utc>) -> DateTime<Utc> {
    super::fleet::hour_floor(at - ROLLUP_GRACE)
}

/// tod-core's verdict on one client's sums; `degraded`: a trend is already raised for it.
pub(crate) fn judge_sums(s: &[i64; 4], config: &TrendConfig, degraded: bool) -> TrendVerdict {
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    judge_trend((s[2], count(s[3])), (s[0], count(s[1])), config, degraded)
}

/// Each client's week-over-week drop in dB, where both weeks have enough samples.
pub(crate) fn trend_deltas<'a>(sums: &'a TrendSums, config: &TrendConfig) -> HashMap<&'a (Uuid, String), f64> {
    sums.iter()
        .filter_map(|(key, s)| match judge_sums(s, config, false) {
            TrendVerdict::Evaluated { stats, .. } => Some((key, stats.delta_db)),
            TrendVerdict::InsufficientData => None,
        })
        .collect()
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrendPass {
    /// Links judged.
    pub links: usize,
    /// Events raised.
    pub raised: usize,
    /// Events resolved.
    pub resolved: usize,
}

/// The trend detector's storage.
#[async_trait::async_trait]
pub trait TrendStore: Send + Sync {
    /// One pass at `now`, each tenant in its own transaction.
    async fn detect_trends(&self, now: DateTime<Utc>, config: &TrendConfig) -> Result<TrendPass, StoreError>;
}

/// A link the detector judges: (AP, CPE, client MAC, the AP's site, the CPE's name).
pub(crate) type TrendLink = (uuid::Uuid, uuid::Uuid, String, uuid::Uuid, String);

/// Writes `impl TrendStore` for a backend type.
macro_rules! impl_trend_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::trends::TrendStore for $store {
            async fn detect_trends(
                &self,
                now: DateTime<Utc>,
                config: &tod_core::signal::TrendConfig,
            ) -> Result<$crate::store::trends::TrendPass, StoreError> {
                use tod_core::signal::TrendVerdict;
                let mut pass = $crate::store::trends::TrendPass::default();
                let tenants: Vec<Uuid> = {
                    let mut tx = self.tx(None).await?;
                    sqlx::query_scalar(
                        "SELECT tenant_id FROM wireless_links WHERE state IN ('active', 'degraded') \
                         UNION SELECT tenant_id FROM site_alert_events WHERE kind = 'signal_trend' \
                         AND state = 'active'",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?
                };
                for tenant in tenants.into_iter().map(TenantId) {
                    // Read first, outside the write transaction: ingest is not held up by the sums.
                    let (links, sums) = {
                        let mut tx = self.tx(Some(tenant)).await?;
                        let links: Vec<$crate::store::trends::TrendLink> = sqlx::query_as(
                            "SELECT l.ap_device_id, l.cpe_device_id, l.client_mac, ap.site_id, cpe.name \
                             FROM wireless_links l JOIN devices ap ON ap.id = l.ap_device_id \
                             JOIN devices cpe ON cpe.id = l.cpe_device_id \
                             WHERE l.tenant_id = $1 AND l.state IN ('active', 'degraded') AND ap.site_id IS NOT NULL \
                             AND NOT EXISTS (SELECT 1 FROM site_alert_rules r WHERE r.tenant_id = $1 \
                             AND r.site_id = ap.site_id AND r.rule_type = 'signal_degradation' AND r.enabled) \
                             ORDER BY l.ap_device_id, l.cpe_device_id",
                        )
                        .bind(tenant.0)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                        let sums = if links.is_empty() {
                            $crate::store::trends::TrendSums::new()
                        } else {
                            trend_sums(&mut tx, tenant, None, now, config).await?
                        };
                        (links, sums)
                    };
                    let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                    let open: Vec<(Uuid, Option<Uuid>, Option<Uuid>, Uuid)> = sqlx::query_as(
                        "SELECT id, ap_device_id, device_id, site_id FROM site_alert_events WHERE tenant_id = $1 \
                         AND kind = 'signal_trend' AND rule_id IS NULL AND state = 'active'",
                    )
                    .bind(tenant.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let mut stream = Vec::new();
                    let mut judged = std::collections::HashSet::new();
                    for (ap, cpe, mac, site, name) in &links {
                        pass.links += 1;
                        judged.insert((*ap, *cpe));
                        let current = open
                            .iter()
                            .find(|(_, a, c, _)| *a == Some(*ap) && *c == Some(*cpe))
                            .map(|(id, ..)| *id);
                        let Some(s) = sums.get(&(*ap, mac.clone())) else { continue };
                        let verdict = $crate::store::trends::judge_sums(s, config, current.is_some());
                        match (verdict, current) {
                            (TrendVerdict::Evaluated { stats, degraded: true }, None) => {
                                let id = Uuid::new_v4();
                                let message = format!("{name}: {}", stats.describe());
                                sqlx::query(
                                    "INSERT INTO site_alert_events (id, tenant_id, site_id, device_id, ap_device_id, \
                                     kind, severity, message, state, consecutive_hits, triggered_at) \
                                     VALUES ($1, $2, $3, $4, $5, 'signal_trend', 'warning', $6, 'active', 1, $7)",
                                )
                                .bind(id)
                                .bind(tenant.0)
                                .bind(site)
                                .bind(cpe)
                                .bind(ap)
                                .bind(&message)
                                .bind(micros(now))
                                .execute(&mut *tx)
                                .await
                                .map_err(map_err)?;
                                pass.raised += 1;
                                stream.push(StreamItem {
                                    kind: "site_alert.raised",
                                    data: serde_json::json!({
                                        "event_id": id, "site_id": site, "kind": "signal_trend",
                                        "device_id": cpe, "ap_device_id": ap, "hostname": name,
                                        "severity": "warning", "message": message,
                                        "delta_db": stats.delta_db,
                                    }),
                                    at: now,
                                });
                            }
                            (TrendVerdict::Evaluated { degraded: false, .. }, Some(id)) => {
                                stream.push(
                                    resolve_trend_event(&mut tx, id, *site, *ap, *cpe, "cleared", now)
                                        .await?,
                                );
                                pass.resolved += 1;
                            }
                            _ => {}
                        }
                    }
                    // Events of links that are no longer judged (down, stale, gone, or their site
                    // now has its own rule) end too.
                    for (id, ap, cpe, site) in &open {
                        let (Some(ap), Some(cpe)) = (ap, cpe) else {
                            stream.push(
                                resolve_trend_event(
                                    &mut tx,
                                    *id,
                                    *site,
                                    ap.unwrap_or_default(),
                                    cpe.unwrap_or_default(),
                                    "link_gone",
                                    now,
                                )
                                .await?,
                            );
                            pass.resolved += 1;
                            continue;
                        };
                        if !judged.contains(&(*ap, *cpe)) {
                            stream.push(
                                resolve_trend_event(&mut tx, *id, *site, *ap, *cpe, "link_inactive", now)
                                    .await?,
                            );
                            pass.resolved += 1;
                        }
                    }
                    push_stream(&mut tx, tenant, &stream, now).await?;
                    tx.commit().await.map_err(map_err)?;
                }
                Ok(pass)
            }
        }

        /// Every client's signal sums of the tenant's APs (of one site) for a trend judged at
        /// `at`: the two windows of whole hours before [`trend_end`](crate::store::trends::trend_end)
        /// (the recent one ending there, the earlier one the config's gap before it),
        /// from the hourly sums where an hour is summed and clean, and from the registrations
        /// for the rest (hours not summed yet, dirty ones) — the same sums either way. 0 dBm is
        /// the "unknown" sentinel and does not count.
        pub(crate) async fn trend_sums(
            tx: &mut Tx,
            tenant: TenantId,
            site: Option<Uuid>,
            at: DateTime<Utc>,
            config: &tod_core::signal::TrendConfig,
        ) -> Result<$crate::store::trends::TrendSums, StoreError> {
            let window = chrono::Duration::seconds(config.window_secs);
            let end = $crate::store::trends::trend_end(at);
            // The recent window starts at `mid`; the earlier one ends at `previous_end`.
            let mid = end - window;
            let previous_end = mid - chrono::Duration::seconds(config.gap_secs.max(0));
            let start = previous_end - window;
            let hour = chrono::Duration::hours(1);
            let mut sums = $crate::store::trends::TrendSums::new();
            let mut add = |rows: Vec<(Uuid, String, i64, i64, i64, i64)>| {
                for (ap, mac, rs, rn, ps, pn) in rows {
                    let s = sums.entry((ap, mac)).or_default();
                    for (into, v) in s.iter_mut().zip([rs, rn, ps, pn]) {
                        *into += v;
                    }
                }
            };
            let rolled: Option<DateTime<Utc>> =
                sqlx::query_scalar("SELECT rolled_until FROM signal_rollup_state WHERE id = 1")
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(map_err)?;
            let summed_to = rolled.map_or(start, |r| r.clamp(start, end));
            // What the registrations must give: the hours not summed yet, and the dirty ones.
            let mut raw = Vec::new();
            if summed_to > start {
                let dirty: Vec<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT hour FROM signal_hourly_dirty WHERE tenant_id = $1 AND hour >= $2 AND hour < $3",
                )
                .bind(tenant.0)
                .bind(start)
                .bind(summed_to)
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?;
                raw.extend(dirty.into_iter().map(|h| (h, h + hour)));
                add(sqlx::query_as(
                    "SELECT h.device_id, h.mac, \
                     CAST(SUM(CASE WHEN h.hour >= $4 THEN h.signal_sum ELSE 0 END) AS BIGINT), \
                     CAST(SUM(CASE WHEN h.hour >= $4 THEN h.samples - h.zero_samples ELSE 0 END) AS BIGINT), \
                     CAST(SUM(CASE WHEN h.hour < $6 THEN h.signal_sum ELSE 0 END) AS BIGINT), \
                     CAST(SUM(CASE WHEN h.hour < $6 THEN h.samples - h.zero_samples ELSE 0 END) AS BIGINT) \
                     FROM signal_hourly h WHERE h.tenant_id = $1 AND h.hour >= $2 AND h.hour < $3 \
                     AND ($5 IS NULL OR h.device_id IN (SELECT id FROM devices WHERE tenant_id = $1 AND site_id = $5)) \
                     AND NOT EXISTS (SELECT 1 FROM signal_hourly_dirty x WHERE x.tenant_id = $1 AND x.hour = h.hour) \
                     GROUP BY h.device_id, h.mac",
                )
                .bind(tenant.0)
                .bind(start)
                .bind(summed_to)
                .bind(mid)
                .bind(site)
                .bind(previous_end)
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?);
            }
            if end > summed_to {
                raw.push((summed_to, end));
            }
            for (from, to) in raw {
                add(sqlx::query_as(TREND_RAW)
                    .bind(tenant.0)
                    .bind(from)
                    .bind(to)
                    .bind(mid)
                    .bind(site)
                    .bind(previous_end)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(map_err)?);
            }
            Ok(sums)
        }

        pub(crate) async fn resolve_trend_event(
            tx: &mut Tx,
            id: Uuid,
            site: Uuid,
            ap: Uuid,
            cpe: Uuid,
            reason: &'static str,
            now: DateTime<Utc>,
        ) -> Result<StreamItem, StoreError> {
            sqlx::query("UPDATE site_alert_events SET state = 'resolved', resolved_at = $2 WHERE id = $1")
                .bind(id)
                .bind(micros(now))
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            let nil = |u: Uuid| (!u.is_nil()).then_some(u);
            Ok(StreamItem {
                kind: "site_alert.resolved",
                data: serde_json::json!({
                    "event_id": id, "site_id": site, "kind": "signal_trend",
                    "device_id": nil(cpe), "ap_device_id": nil(ap), "reason": reason,
                }),
                at: now,
            })
        }
    };
}
pub(crate) use impl_trend_store;
