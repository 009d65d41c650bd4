//! Signal history: a CPE whose antenna slowly loses alignment over two weeks. Prints the 24 h
//! chart buckets and the week-over-week trend verdict.
//!
//! Run: `cargo run -p tod-examples --example signal_history`

use chrono::{Duration, TimeZone, Utc};
use tod_core::signal::{Range, Sample, TrendConfig, TrendVerdict, bucket, detect_trend};
use tod_examples::pick;

fn main() {
    let now = Utc
        .with_ymd_and_hms(2026, 3, 19, 12, 0, 0)
        .single()
        .expect("valid time");
    // One sample a minute for 14 days: -61 dBm the first week, then sliding to -68 dBm over two days,
    // ±2 dB of noise, and now and then a 0 "unknown" from an old poller.
    let samples: Vec<Sample> = (0..14 * 24 * 60)
        .map(|m| {
            let age = 14 * 24 * 60 - m;
            let at = now - Duration::minutes(age);
            // The slide happens over two days, starting a week ago.
            let into_slide = (7 * 24 * 60 - age).max(0) as f64 / (2.0 * 24.0 * 60.0);
            let slide = into_slide.min(1.0) * 7.0;
            let noise = pick(42, m as u64, 0, 5) as i16 - 2;
            let dbm = if m % 997 == 0 {
                0
            } else {
                -61 - slide.round() as i16 + noise
            };
            Sample { at, dbm }
        })
        .collect();

    let recent: Vec<Sample> = samples.iter().copied().filter(|s| s.dbm != 0).collect();
    let buckets = bucket(recent.iter().copied(), Range::Day, now);
    println!("range 24h: {} buckets of 5 minutes; the last six:", buckets.len());
    for b in buckets.iter().rev().take(6).rev() {
        println!(
            "  {}  avg {:>4}  min {:>4}  max {:>4}  ({} samples)",
            b.timestamp.format("%H:%M"),
            b.signal_avg,
            b.signal_min,
            b.signal_max,
            b.samples
        );
    }
    let week = bucket(recent.iter().copied(), Range::Week, now);
    println!(
        "range 7d: {} buckets of 1 hour, first avg {} dBm, last avg {} dBm",
        week.len(),
        week[0].signal_avg,
        week[week.len() - 1].signal_avg
    );

    match detect_trend(samples, now, &TrendConfig::default(), false) {
        TrendVerdict::Evaluated { stats, degraded } => println!(
            "trend: previous week {:.1} dBm, last week {:.1} dBm, drop {:.1} dB -> {}",
            stats.previous_avg,
            stats.recent_avg,
            stats.delta_db,
            if degraded { "SIGNAL DEGRADATION" } else { "ok" }
        ),
        TrendVerdict::InsufficientData => println!("trend: not enough data"),
    }
}
