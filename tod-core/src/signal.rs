//! Signal history: time bucketing for the charts, and trend detection for slow degradation.
//!
//! Bucketing groups a client's signal samples into UTC-epoch-aligned buckets whose width depends on
//! the requested range (24h → 5 min, 7d → 1 h, 30d → 4 h) and reports the rounded mean, min and
//! max of each non-empty bucket. Trend detection compares the mean of the last 7 days with the mean
//! of the 7 days before (disjoint windows, unlike the original's overlapping 7 d vs 14 d, which
//! halved the sensitivity), ignoring 0 dBm "unknown" sentinels, and needs a minimum number of
//! samples in each window.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// One signal sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When the AP reported it.
    pub at: DateTime<Utc>,
    /// Signal in dBm.
    pub dbm: i16,
}

/// A history range the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Range {
    /// Last 24 hours in 5-minute buckets.
    #[serde(rename = "24h")]
    Day,
    /// Last 7 days in 1-hour buckets (the default).
    #[serde(rename = "7d")]
    #[default]
    Week,
    /// Last 30 days in 4-hour buckets.
    #[serde(rename = "30d")]
    Month,
}

/// A range string the API does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("range must be one of: 24h, 7d, 30d")]
pub struct InvalidRange;

impl Range {
    /// Bucket width in seconds.
    pub const fn bucket_secs(self) -> i64 {
        match self {
            Self::Day => 300,
            Self::Week => 3_600,
            Self::Month => 14_400,
        }
    }
    /// Look-back in seconds.
    pub const fn lookback_secs(self) -> i64 {
        match self {
            Self::Day => 86_400,
            Self::Week => 7 * 86_400,
            Self::Month => 30 * 86_400,
        }
    }
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Day => "24h",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }
}

impl FromStr for Range {
    type Err = InvalidRange;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "24h" => Ok(Self::Day),
            "7d" => Ok(Self::Week),
            "30d" => Ok(Self::Month),
            _ => Err(InvalidRange),
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One non-empty bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket (epoch-aligned).
    pub timestamp: DateTime<Utc>,
    /// Mean, rounded half away from zero.
    pub signal_avg: i16,
    /// Weakest sample.
    pub signal_min: i16,
    /// Strongest sample.
    pub signal_max: i16,
    /// Number of samples in the bucket.
    pub samples: u32,
}

/// Integer mean rounded half away from zero (what Postgres' numeric → int cast does).
pub fn mean_half_away(sum: i64, count: i64) -> i64 {
    debug_assert!(count > 0);
    if sum >= 0 {
        (2 * sum + count) / (2 * count)
    } else {
        -((-2 * sum + count) / (2 * count))
    }
}

#[derive(Clone, Copy)]
struct Acc {
    sum: i64,
    count: u32,
    min: i16,
    max: i16,
}

const EMPTY: Acc = Acc {
    sum: 0,
    count: 0,
    min: i16::MAX,
    max: i16::MIN,
};

/// One bucket's partial sums, as a database can compute them by grouping samples on
/// `start = ⌊t / width⌋ × width` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSum {
    /// The bucket's start, Unix seconds, a multiple of the range's bucket width.
    pub start: i64,
    /// Sum of the samples, dBm.
    pub sum: i64,
    /// How many.
    pub count: u32,
    /// Weakest.
    pub min: i16,
    /// Strongest.
    pub max: i16,
}

/// [`bucket`]'s answer from sums computed elsewhere over the samples of `(now − lookback, now]`:
/// sums for the same bucket are merged, buckets outside the range and empty ones dropped, the
/// mean rounded half away from zero.
pub fn bucket_sums(sums: impl IntoIterator<Item = BucketSum>, range: Range, now: DateTime<Utc>) -> Vec<Bucket> {
    let width = range.bucket_secs();
    let end = now.timestamp();
    let first = (end - range.lookback_secs() + 1).div_euclid(width) * width;
    let mut merged: std::collections::BTreeMap<i64, Acc> = std::collections::BTreeMap::new();
    for s in sums {
        if s.count == 0 || s.start < first || s.start > end || s.start.rem_euclid(width) != 0 {
            continue;
        }
        let a = merged.entry(s.start).or_insert(EMPTY);
        a.sum += s.sum;
        a.count += s.count;
        a.min = a.min.min(s.min);
        a.max = a.max.max(s.max);
    }
    merged
        .into_iter()
        .filter_map(|(start, a)| {
            Some(Bucket {
                timestamp: Utc.timestamp_opt(start, 0).single()?,
                signal_avg: mean_half_away(a.sum, i64::from(a.count)) as i16,
                signal_min: a.min,
                signal_max: a.max,
                samples: a.count,
            })
        })
        .collect()
}

/// Buckets the samples that fall in `(now − lookback, now]`, in any order, in O(n) time.
///
/// Buckets are aligned to multiples of the width since the Unix epoch (so 5-minute buckets start at
/// :00, :05, ... UTC) and returned in ascending order; empty buckets are omitted.
pub fn bucket(samples: impl IntoIterator<Item = Sample>, range: Range, now: DateTime<Utc>) -> Vec<Bucket> {
    let width = range.bucket_secs();
    let end = now.timestamp();
    let start = end - range.lookback_secs();
    // First bucket that can hold a sample newer than `start`.
    let first = (start + 1).div_euclid(width) * width;
    let n = ((end.div_euclid(width) * width - first) / width + 1) as usize;
    let mut acc = vec![EMPTY; n];
    let now_nanos = now.timestamp_subsec_nanos();
    for s in samples {
        let t = s.at.timestamp();
        // (start, end] with sub-second precision at the upper edge.
        if t <= start || t > end || (t == end && s.at.timestamp_subsec_nanos() > now_nanos) {
            continue;
        }
        let a = &mut acc[((t - first) / width) as usize];
        a.sum += i64::from(s.dbm);
        a.count += 1;
        a.min = a.min.min(s.dbm);
        a.max = a.max.max(s.dbm);
    }
    acc.iter()
        .enumerate()
        .filter(|(_, a)| a.count > 0)
        .map(|(i, a)| Bucket {
            timestamp: Utc
                .timestamp_opt(first + i as i64 * width, 0)
                .single()
                .expect("in range"),
            signal_avg: mean_half_away(a.sum, i64::from(a.count)) as i16,
            signal_min: a.min,
            signal_max: a.max,
            samples: a.count,
        })
        .collect()
}

/// Trend detection settings.
///
/// The recent window is compared with one that ended `gap_secs` before it began. The defaults
/// are the design's: the last week against the week before (no gap). A slow drift of `r` dB a
/// day shows as `r × (window + gap)`: adjacent weeks see the −0.5 dB a day of a creeping antenna
/// alignment as 3.5 dB, under the 5 dB threshold for ever, where a week's gap (the last week
/// against the week two weeks before it, a change over two weeks) sees 7 dB. A sudden drop shows
/// as soon as the recent window holds it, either way.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrendConfig {
    /// Length of each of the two disjoint windows.
    pub window_secs: i64,
    /// Time between the end of the earlier window and the start of the recent one.
    #[serde(default)]
    pub gap_secs: i64,
    /// A drop of at least this many dB (previous mean − recent mean) raises the trend.
    pub threshold_db: f64,
    /// An active trend clears only when the drop falls below `threshold_db − clear_margin_db`.
    pub clear_margin_db: f64,
    /// Minimum usable samples in each window; fewer means "not enough data".
    pub min_samples: u32,
}

impl Default for TrendConfig {
    fn default() -> Self {
        Self {
            window_secs: 7 * 86_400,
            gap_secs: 0,
            threshold_db: 5.0,
            clear_margin_db: 2.0,
            min_samples: 12,
        }
    }
}

/// Means of the two windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrendStats {
    /// Mean of the earlier window, dBm.
    pub previous_avg: f64,
    /// Mean of the recent window, dBm.
    pub recent_avg: f64,
    /// `previous_avg − recent_avg`: positive means the signal got weaker.
    pub delta_db: f64,
    /// Usable samples in the earlier window.
    pub previous_samples: u32,
    /// Usable samples in the recent window.
    pub recent_samples: u32,
    /// Time between the windows' starts (the span the change is over), seconds.
    #[serde(default)]
    pub span_secs: i64,
}

impl TrendStats {
    /// What an operator reads: `Signal degraded 6.3 dB week over week (from -60 dBm to -66 dBm)`,
    /// or `… over 2 weeks …` when the windows are two weeks apart.
    pub fn describe(&self) -> String {
        let over = match self.span_secs {
            s if s == 7 * 86_400 => "week over week".to_owned(),
            s if s > 0 && s % (7 * 86_400) == 0 => format!("over {} weeks", s / (7 * 86_400)),
            s if s >= 86_400 => format!("over {:.0} days", s as f64 / 86_400.0),
            s => format!("over {:.0} hours", s as f64 / 3_600.0),
        };
        format!(
            "Signal degraded {:.1} dB {over} (from {:.0} dBm to {:.0} dBm)",
            self.delta_db, self.previous_avg, self.recent_avg
        )
    }
}

/// The outcome of one trend evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum TrendVerdict {
    /// One of the windows has fewer than `min_samples`; the previous state should be kept.
    InsufficientData,
    /// Enough data; `degraded` is the new state after hysteresis.
    Evaluated {
        /// The window means.
        stats: TrendStats,
        /// Whether a degradation is (still) in effect.
        degraded: bool,
    },
}

/// Compares the recent window `(now − w, now]` with the previous one `(now − 2w − g, now − w − g]`
/// (`w` the window, `g` the gap).
///
/// `currently_degraded` is the state after the previous evaluation; it selects the threshold
/// (raise at `threshold_db`, clear below `threshold_db − clear_margin_db`) so a delta that hovers
/// around the threshold does not flap. Samples of exactly 0 dBm are the original poller's
/// "unknown" sentinel and are ignored.
pub fn detect_trend(
    samples: impl IntoIterator<Item = Sample>,
    now: DateTime<Utc>,
    config: &TrendConfig,
    currently_degraded: bool,
) -> TrendVerdict {
    let (w, g) = (
        Duration::seconds(config.window_secs),
        Duration::seconds(config.gap_secs.max(0)),
    );
    let recent_start = now - w;
    let (previous_start, previous_end) = (recent_start - g - w, recent_start - g);
    let (mut rs, mut rn, mut ps, mut pn) = (0i64, 0u32, 0i64, 0u32);
    for s in samples {
        if s.dbm == 0 || s.at > now || s.at <= previous_start {
            continue;
        }
        if s.at > recent_start {
            rs += i64::from(s.dbm);
            rn += 1;
        } else if s.at <= previous_end {
            ps += i64::from(s.dbm);
            pn += 1;
        }
    }
    judge_trend((ps, pn), (rs, rn), config, currently_degraded)
}

/// [`detect_trend`]'s judgement from the windows' sums and counts of usable samples (a database
/// can sum the windows itself): `previous` is `(now − 2w − g, now − w − g]`, `recent`
/// `(now − w, now]`.
pub fn judge_trend(
    previous: (i64, u32),
    recent: (i64, u32),
    config: &TrendConfig,
    currently_degraded: bool,
) -> TrendVerdict {
    let ((ps, pn), (rs, rn)) = (previous, recent);
    if rn < config.min_samples.max(1) || pn < config.min_samples.max(1) {
        return TrendVerdict::InsufficientData;
    }
    let previous_avg = ps as f64 / f64::from(pn);
    let recent_avg = rs as f64 / f64::from(rn);
    // Round to 0.01 dB so 5.0 computed as 4.999999 still counts as 5.
    let delta_db = ((previous_avg - recent_avg) * 100.0).round() / 100.0;
    let degraded = if currently_degraded {
        delta_db >= config.threshold_db - config.clear_margin_db
    } else {
        delta_db >= config.threshold_db
    };
    TrendVerdict::Evaluated {
        stats: TrendStats {
            previous_avg,
            recent_avg,
            delta_db,
            previous_samples: pn,
            recent_samples: rn,
            span_secs: config.window_secs + config.gap_secs.max(0),
        },
        degraded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    // 2026-03-19T08:00:00Z, a multiple of 4 h.
    const NOW: i64 = 1_773_907_200;

    #[test]
    fn ranges_parse_and_reject_anything_else() {
        assert_eq!("24h".parse::<Range>(), Ok(Range::Day));
        assert_eq!("7d".parse::<Range>(), Ok(Range::Week));
        assert_eq!("30d".parse::<Range>(), Ok(Range::Month));
        for bad in ["1h", "7D", "", "30 d", "week"] {
            assert_eq!(bad.parse::<Range>(), Err(InvalidRange));
        }
        assert_eq!(InvalidRange.to_string(), "range must be one of: 24h, 7d, 30d");
        assert_eq!(Range::default(), Range::Week);
    }

    #[test]
    fn buckets_are_epoch_aligned_with_rounded_mean_min_max() {
        let samples = [
            Sample {
                at: at(NOW - 3_600 + 10),
                dbm: -67,
            },
            Sample {
                at: at(NOW - 3_600 + 200),
                dbm: -68,
            },
            Sample {
                at: at(NOW - 1),
                dbm: -70,
            },
            Sample { at: at(NOW), dbm: -50 },
        ];
        let b = bucket(samples, Range::Week, at(NOW));
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].timestamp, at(NOW - 3_600));
        // mean of -67, -68, -70 = -68.33 → -68
        assert_eq!(
            (b[0].signal_avg, b[0].signal_min, b[0].signal_max, b[0].samples),
            (-68, -70, -67, 3)
        );
        assert_eq!((b[1].timestamp, b[1].signal_avg, b[1].samples), (at(NOW), -50, 1));
        let day = bucket(samples, Range::Day, at(NOW));
        let starts: Vec<i64> = day.iter().map(|b| NOW - b.timestamp.timestamp()).collect();
        assert_eq!(starts, vec![3_600, 300, 0]);
        assert_eq!(day[0].samples, 2);
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(mean_half_away(-135, 2), -68); // -67.5
        assert_eq!(mean_half_away(-133, 2), -67); // -66.5
        assert_eq!(mean_half_away(135, 2), 68);
        assert_eq!(mean_half_away(-134, 2), -67);
        let s = [
            Sample {
                at: at(NOW - 10),
                dbm: -67,
            },
            Sample {
                at: at(NOW - 20),
                dbm: -68,
            },
        ];
        assert_eq!(bucket(s, Range::Day, at(NOW))[0].signal_avg, -68);
    }

    #[test]
    fn window_edges_are_exclusive_at_the_start_and_inclusive_at_now() {
        let s = [
            Sample {
                at: at(NOW - 86_400),
                dbm: -90,
            },
            Sample {
                at: at(NOW - 86_399),
                dbm: -60,
            },
            Sample { at: at(NOW), dbm: -61 },
            Sample {
                at: at(NOW + 1),
                dbm: -99,
            },
        ];
        let b = bucket(s, Range::Day, at(NOW));
        let total: u32 = b.iter().map(|b| b.samples).sum();
        assert_eq!(total, 2);
        assert!(b.iter().all(|b| b.signal_min > -90));
        assert!(bucket([], Range::Month, at(NOW)).is_empty());
    }

    #[test]
    fn thirty_day_buckets_are_four_hours_wide() {
        let s: Vec<Sample> = (0..48)
            .map(|h| Sample {
                at: at(NOW - h * 3_600 - 1),
                dbm: -60,
            })
            .collect();
        let b = bucket(s, Range::Month, at(NOW));
        assert_eq!(b.len(), 12);
        assert!(
            b.iter()
                .all(|b| b.timestamp.timestamp() % 14_400 == 0 && b.samples == 4)
        );
    }

    /// Three weeks of hourly samples: the last week at `level_recent`, the two before at
    /// `level_prev`.
    fn steady(level_prev: i16, level_recent: i16) -> Vec<Sample> {
        let mut v = Vec::new();
        for h in 1..=21 * 24 {
            let dbm = if h <= 7 * 24 { level_recent } else { level_prev };
            v.push(Sample {
                at: at(NOW - h * 3_600 + 1),
                dbm,
            });
        }
        v
    }

    #[test]
    fn a_five_db_drop_fires_and_four_point_nine_does_not() {
        let cfg = TrendConfig::default();
        match detect_trend(steady(-60, -65), at(NOW), &cfg, false) {
            TrendVerdict::Evaluated { stats, degraded } => {
                assert_eq!(stats.delta_db, 5.0);
                assert!(degraded);
            }
            v => panic!("{v:?}"),
        }
        // -60 vs a recent mean of -64.9: mix -65 and -64 so the mean is -64.9.
        let mut s = steady(-60, -65);
        for (i, x) in s.iter_mut().enumerate() {
            if i < 168 && i % 10 == 0 {
                x.dbm = -64;
            }
        }
        match detect_trend(s.clone(), at(NOW), &cfg, false) {
            TrendVerdict::Evaluated { stats, degraded } => {
                assert!((stats.delta_db - 4.9).abs() < 0.011, "{}", stats.delta_db);
                assert!(!degraded);
            }
            v => panic!("{v:?}"),
        }
        // Once degraded, 4.9 dB keeps it degraded (clear margin) ...
        assert!(matches!(
            detect_trend(s, at(NOW), &cfg, true),
            TrendVerdict::Evaluated { degraded: true, .. }
        ));
        // ... and it clears only below threshold − margin.
        assert!(matches!(
            detect_trend(steady(-60, -62), at(NOW), &cfg, true),
            TrendVerdict::Evaluated { degraded: false, .. }
        ));
    }

    /// The simulator's drifting link: −0.5 dB a day from `start_days` ago, with its diurnal
    /// swing and ±2 dB of per-minute noise, sampled every 10 minutes over four weeks.
    fn drifting(start_days: i64, db_per_day: f64) -> Vec<Sample> {
        (1..=28 * 144)
            .map(|k: i64| {
                let t = NOW - k * 600;
                let days_in = (f64::from(i32::try_from(start_days * 86_400 - k * 600).unwrap()) / 86_400.0).max(0.0);
                let diurnal = (t as f64 / 86_400.0 * std::f64::consts::TAU).sin();
                let noise = (k * 7_919 % 5 - 2) as f64;
                let dbm = -60.0 - db_per_day * days_in + diurnal + noise;
                Sample {
                    at: at(t + 1),
                    dbm: dbm.round() as i16,
                }
            })
            .collect()
    }

    #[test]
    fn a_slow_drift_is_missed_week_over_week_and_seen_over_two_weeks() {
        let delta = |samples: Vec<Sample>, cfg: &TrendConfig| match detect_trend(samples, at(NOW), cfg, false) {
            TrendVerdict::Evaluated { stats, degraded } => (stats.delta_db, degraded),
            v => panic!("{v:?}"),
        };
        // The design's windows, week over week: three weeks of a −0.5 dB/day drift is 3.5 dB,
        // never raised.
        let adjacent = TrendConfig::default();
        let (d, raised) = delta(drifting(21, 0.5), &adjacent);
        assert!((3.0..=4.0).contains(&d) && !raised, "{d}");
        // With a week's gap (a change over two weeks) it is 7 dB, raised.
        let two_weeks = TrendConfig {
            gap_secs: 7 * 86_400,
            ..adjacent
        };
        let (d, raised) = delta(drifting(21, 0.5), &two_weeks);
        assert!((6.5..=7.5).contains(&d) && raised, "{d}");
        // Two weeks into the drift it is already past the threshold (the earlier week is clean).
        assert!(delta(drifting(14, 0.5), &two_weeks).1);
        // A steady link with the same noise is not, either way.
        for cfg in [&adjacent, &two_weeks] {
            let (d, raised) = delta(drifting(0, 0.5), cfg);
            assert!(d.abs() < 0.5 && !raised, "{d}");
        }
        let said = |cfg: &TrendConfig| match detect_trend(drifting(21, 0.5), at(NOW), cfg, false) {
            TrendVerdict::Evaluated { stats, .. } => stats.describe(),
            v => panic!("{v:?}"),
        };
        assert!(said(&adjacent).contains("dB week over week"), "{}", said(&adjacent));
        assert!(said(&two_weeks).contains("dB over 2 weeks"), "{}", said(&two_weeks));
    }

    #[test]
    fn zero_sentinels_are_ignored_and_thin_windows_are_insufficient() {
        let cfg = TrendConfig::default();
        let mut s = steady(-60, -60);
        // The original averaged these zeros in and saw an improving signal.
        for x in s.iter_mut().take(100) {
            x.dbm = 0;
        }
        match detect_trend(s, at(NOW), &cfg, false) {
            TrendVerdict::Evaluated { stats, .. } => {
                assert_eq!(stats.delta_db, 0.0);
                assert_eq!(stats.recent_samples, 68);
            }
            v => panic!("{v:?}"),
        }
        let few: Vec<Sample> = steady(-50, -70).into_iter().step_by(20).collect();
        assert_eq!(detect_trend(few, at(NOW), &cfg, false), TrendVerdict::InsufficientData);
    }

    proptest! {
        #[test]
        fn bucket_counts_add_up_to_the_in_window_samples(
            offsets in prop::collection::vec(-100_000i64..100_000, 0..400),
            range_i in 0usize..3,
            now_off in 0i64..86_400,
        ) {
            let range = [Range::Day, Range::Week, Range::Month][range_i];
            let now = at(NOW + now_off);
            let samples: Vec<Sample> = offsets.iter().map(|o| Sample { at: at(NOW + o), dbm: (o % 90) as i16 - 20 }).collect();
            let lookback = range.lookback_secs();
            let in_window = samples.iter().filter(|s| {
                let t = s.at.timestamp();
                t > now.timestamp() - lookback && t <= now.timestamp()
            }).count() as u32;
            let buckets = bucket(samples.iter().copied(), range, now);
            prop_assert_eq!(buckets.iter().map(|b| b.samples).sum::<u32>(), in_window);
            for w in buckets.windows(2) {
                prop_assert!(w[0].timestamp < w[1].timestamp);
            }
            for b in &buckets {
                prop_assert_eq!(b.timestamp.timestamp() % range.bucket_secs(), 0);
                prop_assert!(b.signal_min <= b.signal_avg && b.signal_avg <= b.signal_max);
            }
        }
    }

    proptest! {
        #[test]
        fn sums_give_the_same_buckets_as_samples(
            raw in proptest::collection::vec((0i64..40 * 86_400, -95i16..-30), 0..300),
            range in prop_oneof![Just(Range::Day), Just(Range::Week), Just(Range::Month)],
        ) {
            let now = at(NOW) + Duration::milliseconds(250);
            let samples: Vec<Sample> = raw
                .iter()
                .map(|(ago, dbm)| Sample { at: now - Duration::seconds(*ago), dbm: *dbm })
                .collect();
            // What a database grouping by ⌊t / width⌋ × width over (now − lookback, now] returns.
            let width = range.bucket_secs();
            let since = now - Duration::seconds(range.lookback_secs());
            let mut sums: Vec<BucketSum> = Vec::new();
            for s in samples.iter().filter(|s| s.at > since && s.at <= now) {
                let start = s.at.timestamp().div_euclid(width) * width;
                match sums.iter_mut().find(|b| b.start == start) {
                    Some(b) => {
                        b.sum += i64::from(s.dbm);
                        b.count += 1;
                        b.min = b.min.min(s.dbm);
                        b.max = b.max.max(s.dbm);
                    }
                    None => sums.push(BucketSum { start, sum: i64::from(s.dbm), count: 1, min: s.dbm, max: s.dbm }),
                }
            }
            prop_assert_eq!(bucket_sums(sums, range, now), bucket(samples, range, now));
        }
    }
}
