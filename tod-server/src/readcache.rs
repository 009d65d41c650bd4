//! Short-lived answers to expensive tenant-wide reads (the sites list with its health rollup
//! counts every device of the tenant), so a dashboard polled by many operators at once costs one
//! computation per second, not one per request.
//!
//! An answer is served for at most the cache's lifetime (default 1 s). A successful write of a user
//! or API key through this replica's API forgets its tenant's answers (a platform-wide caller's:
//! every tenant's), so a client that changes something reads its change back; what agents' batches
//! (over HTTP as over the brokers), other replicas and the background passes change shows within
//! the lifetime — a fleet's agents deliver many batches a second, and forgetting on each would
//! leave nothing to serve. A computation that was running while a write to its tenant landed is
//! not kept.
//!
//! One request at a time refreshes an expired answer; while it computes, the others are served
//! the expired one (if it is younger than twice the lifetime), so a dashboard's poll does not stall
//! every request for the length of the computation once a second. With no answer to serve (the
//! first read, or one a write forgot), one request at a time computes it and the others wait for
//! it, so a burst of reads after a write costs one computation, not one each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tod_core::TenantId;

/// Rendered answers by (tenant, read).
#[derive(Debug)]
pub struct ReadCache {
    ttl: Duration,
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// Bumped by every write that forgets every tenant's answers.
    generation: u64,
    /// Bumped by every write to one tenant: with `generation`, a computation that overlapped a
    /// write to its tenant is not kept.
    tenant_generations: HashMap<TenantId, u64>,
    answers: HashMap<(TenantId, &'static str), (Instant, Bytes)>,
    /// Answers being computed again after they expired.
    refreshing: std::collections::HashSet<(TenantId, &'static str)>,
    /// Whose turn it is to compute an answer there is none of.
    turns: HashMap<(TenantId, &'static str), std::sync::Arc<tokio::sync::Mutex<()>>>,
}

/// Ends a refresh however its computation ends (an error, or a request given up).
struct Refresh<'a> {
    cache: &'a ReadCache,
    key: Option<(TenantId, &'static str)>,
}

impl Drop for Refresh<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key
            && let Ok(mut inner) = self.cache.inner.lock()
        {
            inner.refreshing.remove(&key);
        }
    }
}

impl ReadCache {
    /// A cache whose answers live `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::new(Entries::default()),
        }
    }

    /// The answer to `read` for `tenant`: kept, or computed by `compute` and kept.
    pub async fn get_or_compute<E, F>(&self, tenant: TenantId, read: &'static str, compute: F) -> Result<Bytes, E>
    where
        F: std::future::Future<Output = Result<Bytes, E>>,
    {
        let key = (tenant, read);
        let mut refresh = Refresh { cache: self, key: None };
        let turn = {
            let mut inner = self.inner.lock().expect("read cache lock");
            match inner
                .answers
                .get(&key)
                .map(|(at, answer)| (at.elapsed(), answer.clone()))
            {
                Some((age, answer)) if age < self.ttl || (age < 2 * self.ttl && inner.refreshing.contains(&key)) => {
                    return Ok(answer);
                }
                // Expired: this request refreshes it, the others get the expired one meanwhile.
                Some(_) if inner.refreshing.insert(key) => {
                    refresh.key = Some(key);
                    None
                }
                // Nothing to serve (none yet, or forgotten by a write): one request at a time
                // computes it, and the others wait their turn and take what it kept.
                _ => Some(inner.turns.entry(key).or_default().clone()),
            }
        };
        // Its turn taken, what the one before it kept may be what it came for.
        let held = match turn {
            Some(turn) => Some(turn.lock_owned().await),
            None => None,
        };
        let generation = {
            let inner = self.inner.lock().expect("read cache lock");
            if let Some((at, answer)) = inner.answers.get(&key)
                && held.is_some()
                && at.elapsed() < self.ttl
            {
                return Ok(answer.clone());
            }
            inner.generation_of(tenant)
        };
        let started = Instant::now();
        let answer = compute.await?;
        drop(refresh);
        let mut inner = self.inner.lock().expect("read cache lock");
        if inner.generation_of(tenant) == generation && !self.ttl.is_zero() {
            inner.answers.retain(|_, (at, _)| at.elapsed() < 2 * self.ttl);
            inner.answers.insert((tenant, read), (started, answer.clone()));
        }
        Ok(answer)
    }

    /// Forgets every answer (a platform-wide write landed).
    pub fn forget_all(&self) {
        let mut inner = self.inner.lock().expect("read cache lock");
        inner.generation += 1;
        inner.answers.clear();
    }

    /// Forgets `tenant`'s answers (a write to it landed).
    pub fn forget(&self, tenant: TenantId) {
        let mut inner = self.inner.lock().expect("read cache lock");
        *inner.tenant_generations.entry(tenant).or_default() += 1;
        inner.answers.retain(|(t, _), _| *t != tenant);
    }
}

impl Entries {
    /// What a computation for `tenant` must find unchanged to be kept.
    fn generation_of(&self, tenant: TenantId) -> (u64, u64) {
        (
            self.generation,
            self.tenant_generations.get(&tenant).copied().unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::from_u128(7)
    }

    async fn answer(n: &std::sync::atomic::AtomicU32) -> Result<Bytes, ()> {
        let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Bytes::from(k.to_string()))
    }

    #[tokio::test]
    async fn an_answer_is_kept_for_its_lifetime_and_forgotten_on_a_write() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let n = std::sync::atomic::AtomicU32::new(0);
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("0"))
        );
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("0"))
        );
        assert_eq!(
            cache.get_or_compute(TenantId::from_u128(8), "sites", answer(&n)).await,
            Ok(Bytes::from("1")),
            "another tenant has its own answer"
        );
        cache.forget_all();
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("2"))
        );
    }

    #[tokio::test]
    async fn a_write_to_one_tenant_forgets_only_its_answers() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let n = std::sync::atomic::AtomicU32::new(0);
        let other = TenantId::from_u128(8);
        cache.get_or_compute(tenant(), "sites", answer(&n)).await.unwrap();
        cache.get_or_compute(other, "sites", answer(&n)).await.unwrap();
        cache.forget(tenant());
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("2"))
        );
        assert_eq!(
            cache.get_or_compute(other, "sites", answer(&n)).await,
            Ok(Bytes::from("1")),
            "another tenant's answer is kept"
        );
        // A computation for one tenant is kept across a write to another, not across its own.
        let across_other = async {
            cache.forget(TenantId::from_u128(9));
            answer(&n).await
        };
        cache.forget(other);
        assert_eq!(
            cache.get_or_compute(other, "sites", across_other).await,
            Ok(Bytes::from("3"))
        );
        assert_eq!(
            cache.get_or_compute(other, "sites", answer(&n)).await,
            Ok(Bytes::from("3"))
        );
        let across_own = async {
            cache.forget(other);
            answer(&n).await
        };
        cache.forget(other);
        assert_eq!(
            cache.get_or_compute(other, "sites", across_own).await,
            Ok(Bytes::from("4"))
        );
        assert_eq!(
            cache.get_or_compute(other, "sites", answer(&n)).await,
            Ok(Bytes::from("5")),
            "computed across a write to its own tenant: not kept"
        );
    }

    #[tokio::test]
    async fn an_expired_answer_is_computed_again() {
        let cache = ReadCache::new(Duration::from_millis(20));
        let n = std::sync::atomic::AtomicU32::new(0);
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("0"))
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("1"))
        );
    }

    #[tokio::test]
    async fn while_one_request_refreshes_an_expired_answer_the_others_get_the_expired_one() {
        let cache = ReadCache::new(Duration::from_millis(200));
        let n = std::sync::atomic::AtomicU32::new(0);
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("0"))
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let gate = tokio::sync::Notify::new();
        let refresh = cache.get_or_compute(tenant(), "sites", async {
            gate.notified().await;
            answer(&n).await
        });
        let other = async {
            tokio::task::yield_now().await;
            let served = cache.get_or_compute(tenant(), "sites", answer(&n)).await;
            gate.notify_one();
            served
        };
        let (refreshed, served) = tokio::join!(refresh, other);
        assert_eq!(
            served,
            Ok(Bytes::from("0")),
            "the expired answer, not a computation of its own"
        );
        assert_eq!(refreshed, Ok(Bytes::from("1")));
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("1")),
            "the refreshed answer is kept"
        );
        // Past twice the lifetime nothing that old is served, refresh or not.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("2"))
        );
    }

    #[tokio::test]
    async fn with_no_answer_one_request_computes_and_the_others_take_its_answer() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let n = std::sync::atomic::AtomicU32::new(0);
        let gate = tokio::sync::Notify::new();
        let first = cache.get_or_compute(tenant(), "sites", async {
            gate.notified().await;
            answer(&n).await
        });
        let others = async {
            tokio::task::yield_now().await;
            let waiting =
                futures_util::future::join_all((0..5).map(|_| cache.get_or_compute(tenant(), "sites", answer(&n))));
            let release = async {
                tokio::task::yield_now().await;
                gate.notify_one();
            };
            tokio::join!(waiting, release).0
        };
        let (first, others) = tokio::join!(first, others);
        assert_eq!(first, Ok(Bytes::from("0")));
        assert!(others.iter().all(|o| *o == Ok(Bytes::from("0"))), "{others:?}");
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1, "computed once");
        // A write while it computes: the answer is not kept, so the next turn computes afresh.
        cache.forget(tenant());
        let overlapping = cache.get_or_compute(tenant(), "sites", async {
            cache.forget(tenant());
            answer(&n).await
        });
        assert_eq!(overlapping.await, Ok(Bytes::from("1")));
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("2"))
        );
    }

    #[tokio::test]
    async fn an_answer_computed_across_a_write_is_not_kept() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let n = std::sync::atomic::AtomicU32::new(0);
        let overlapping = async {
            cache.forget_all(); // a write lands while the answer is being computed
            answer(&n).await
        };
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", overlapping).await,
            Ok(Bytes::from("0"))
        );
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("1")),
            "the overlapping answer was served once and not kept"
        );
    }

    #[tokio::test]
    async fn a_zero_lifetime_keeps_nothing() {
        let cache = ReadCache::new(Duration::ZERO);
        let n = std::sync::atomic::AtomicU32::new(0);
        cache.get_or_compute(tenant(), "sites", answer(&n)).await.unwrap();
        assert_eq!(
            cache.get_or_compute(tenant(), "sites", answer(&n)).await,
            Ok(Bytes::from("1"))
        );
    }
}
