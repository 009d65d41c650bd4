//! tod-core micro-benches, each beside a baseline that does the least work the job allows on the
//! same data (its physical floor on this machine), so the README can quote ratios that survive a
//! noisy 2-core box.
//!
//! Run: `cargo bench -p tod-benches --bench core`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tod_benches::{bench_now, metrics, samples, ten_rules};
use tod_core::alerts::device::DeviceContext;
use tod_core::alerts::{DeviceRuleEngine, FlapPolicy, Metric};
use tod_core::links::LinkConfig;
use tod_core::signal::{Range, bucket};
use tod_core::telemetry::Registration;
use tod_core::{DeviceId, MacAddr};
use tod_examples::Fleet;

const APS: usize = 10_000;
const CLIENTS: usize = 50;

fn link_tracker(c: &mut Criterion) {
    let fleet = Fleet::new(APS, CLIENTS, 1);
    // One poll cycle: every AP's table, pre-built so the bench measures the tracker only.
    let tables: Vec<Vec<Registration>> = (0..APS).map(|ap| fleet.registrations(ap, 0, |_| true)).collect();
    let entries = (APS * CLIENTS) as u64;
    let mut g = c.benchmark_group("link_tracker_10k_aps_x_50");
    g.throughput(Throughput::Elements(entries));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("poll_cycle", |b| {
        let mut tracker = fleet.tracker(LinkConfig::default());
        let mut poll = 0u64;
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let at = fleet.poll_time(poll, 60);
                for (ap, table) in tables.iter().enumerate() {
                    black_box(tracker.apply_registrations(fleet.aps[ap].id, at, table));
                }
                poll += 1;
            }
            start.elapsed()
        });
    });
    // Floor: resolve each MAC and touch one link slot — two hash lookups per entry, nothing else.
    g.bench_function("baseline_two_hash_lookups", |b| {
        let mut macs: HashMap<MacAddr, DeviceId> = HashMap::new();
        let mut slots: HashMap<(DeviceId, DeviceId), u32> = HashMap::new();
        for ap in &fleet.aps {
            for cpe in &ap.clients {
                macs.insert(cpe.mac, cpe.id);
                slots.insert((ap.id, cpe.id), 0);
            }
        }
        b.iter(|| {
            for (ap, table) in tables.iter().enumerate() {
                let ap_id = fleet.aps[ap].id;
                for r in table {
                    if let Some(cpe) = macs.get(&r.mac)
                        && let Some(s) = slots.get_mut(&(ap_id, *cpe))
                    {
                        *s += 1;
                    }
                }
            }
        });
    });
    g.finish();
}

fn bucketing(c: &mut Criterion) {
    let now = bench_now();
    let data = samples(1_000_000, now);
    let mut g = c.benchmark_group("signal_bucketing_1m_samples");
    g.throughput(Throughput::Elements(data.len() as u64));
    g.sample_size(20);
    for range in [Range::Day, Range::Month] {
        g.bench_function(format!("bucket_{range}"), |b| {
            b.iter(|| black_box(bucket(data.iter().copied(), range, now)))
        });
    }
    // Floor: one pass summing the same samples (memory bandwidth plus a branch).
    g.bench_function("baseline_sum_pass", |b| {
        b.iter(|| {
            let cutoff = now.timestamp() - 86_400;
            let mut sum = 0i64;
            for s in &data {
                if s.at.timestamp() > cutoff {
                    sum += i64::from(s.dbm);
                }
            }
            black_box(sum)
        })
    });
    g.finish();
}

fn alert_evaluation(c: &mut Criterion) {
    const DEVICES: u64 = 100_000;
    let rules = ten_rules();
    let inputs: Vec<_> = (0..4)
        .map(|p| (0..DEVICES).map(|d| metrics(d, p)).collect::<Vec<_>>())
        .collect();
    let ids: Vec<DeviceId> = (0..DEVICES).map(|d| DeviceId::from_u128(u128::from(d) + 1)).collect();
    let mut g = c.benchmark_group("alert_eval_100k_devices_x_10_rules");
    g.throughput(Throughput::Elements(DEVICES * rules.len() as u64));
    g.sample_size(10);
    g.bench_function("device_rule_engine", |b| {
        let mut engine = DeviceRuleEngine::new(rules.clone(), FlapPolicy::default());
        let now = bench_now();
        let mut poll = 0usize;
        b.iter_batched_ref(
            || {
                poll += 1;
                poll
            },
            |p| {
                let at = now + chrono::Duration::minutes(*p as i64);
                let batch = &inputs[*p % inputs.len()];
                for (i, m) in batch.iter().enumerate() {
                    let ctx = DeviceContext {
                        id: ids[i],
                        hostname: "dev",
                        site: None,
                        groups: &[],
                    };
                    black_box(engine.evaluate(ctx, m, at, &[]));
                }
            },
            BatchSize::SmallInput,
        );
    });
    // Floor: the comparisons alone, no applicability, no state.
    g.bench_function("baseline_bare_comparisons", |b| {
        let flat: Vec<(Metric, f64, bool)> = rules
            .iter()
            .map(|r| (r.metric, r.threshold, r.metric == Metric::SignalStrength))
            .collect();
        b.iter(|| {
            let mut hits = 0u32;
            for m in &inputs[0] {
                for &(metric, threshold, lt) in &flat {
                    if let Some(v) = m.get(metric) {
                        hits += u32::from(if lt { v < threshold } else { v > threshold });
                    }
                }
            }
            black_box(hits)
        })
    });
    g.finish();
}

criterion_group!(benches, link_tracker, bucketing, alert_evaluation);
criterion_main!(benches);
