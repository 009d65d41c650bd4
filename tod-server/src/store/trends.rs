//! The fleet-wide signal trend detector (hourly, one replica under the `trend-detection` lease):
//! every active or degraded link whose AP is at a site is judged by tod-core's
//! [`judge_trend`](tod_core::signal::judge_trend) — last week's mean signal against the week before,
//! disjoint windows, 0 dBm sentinels ignored, a clear margin — and a link whose signal fell raises
//! one `signal_trend` site alert event (no rule; the CPE in `device_id`, the AP in
//! `ap_device_id`). The event resolves when the signal recovers, and also when the link stops
//! being active (the original left those forever). A site with its own enabled
//! `signal_degradation` rule is judged by that rule instead, so a link is never reported twice.
//! Written once for both backends: [`impl_trend_store!`] expands in each.

use chrono::{DateTime, Utc};
use tod_core::signal::TrendConfig;

use super::StoreError;

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
                use tod_core::signal::{TrendVerdict, judge_trend};
                let mut pass = $crate::store::trends::TrendPass::default();
                let window = chrono::Duration::seconds(config.window_secs);
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
                    let (_w, mut tx) = self.wtx(Some(tenant)).await?;
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
                    let mut sums = Vec::new();
                    let mut sums_of = None;
                    for (ap, cpe, mac, site, name) in &links {
                        if sums_of != Some(*ap) {
                            sums = trend_sums(&mut tx, tenant, *ap, now, window).await?;
                            sums_of = Some(*ap);
                        }
                        pass.links += 1;
                        judged.insert((*ap, *cpe));
                        let current = open
                            .iter()
                            .find(|(_, a, c, _)| *a == Some(*ap) && *c == Some(*cpe))
                            .map(|(id, ..)| *id);
                        let Some(s) = sums.iter().find(|s| s.0 == *mac) else { continue };
                        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
                        let verdict = judge_trend(
                            (s.3.unwrap_or(0), count(s.4)),
                            (s.1.unwrap_or(0), count(s.2)),
                            config,
                            current.is_some(),
                        );
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

        /// Per client of an AP: its signal's sums over (now − 2w, now − w] and (now − w, now]
        /// (`w` = `window`); 0 dBm is the "unknown" sentinel and does not count.
        pub(crate) async fn trend_sums(
            tx: &mut Tx,
            tenant: TenantId,
            ap: Uuid,
            now: DateTime<Utc>,
            window: chrono::Duration,
        ) -> Result<Vec<TrendRow>, StoreError> {
            sqlx::query_as(
                "SELECT mac, \
                 SUM(CASE WHEN collected_at > $4 THEN signal_dbm END), \
                 COUNT(CASE WHEN collected_at > $4 THEN 1 END), \
                 SUM(CASE WHEN collected_at <= $4 THEN signal_dbm END), \
                 COUNT(CASE WHEN collected_at <= $4 THEN 1 END) \
                 FROM registrations WHERE tenant_id = $1 AND device_id = $2 \
                 AND collected_at > $3 AND collected_at <= $5 \
                 AND signal_dbm IS NOT NULL AND signal_dbm <> 0 GROUP BY mac",
            )
            .bind(tenant.0)
            .bind(ap)
            .bind(micros(now - window - window))
            .bind(micros(now - window))
            .bind(micros(now))
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)
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
