//! Time windows for metric series: what a caller may ask for, and how samples fall into
//! UTC-epoch-aligned buckets. The metrics API asks [`Window::new`] to check a requested range
//! (start before end, at most [`MAX_SPAN_SECS`], at most [`MAX_BUCKETS`] buckets) and to pick a
//! bucket width when none is given, then groups samples with [`Window::bucket_of`].

use chrono::{DateTime, Duration, TimeZone, Utc};

/// The longest range a series covers (31 days): beyond it, history has aged out anyway.
pub const MAX_SPAN_SECS: i64 = 31 * 86_400;
/// The most buckets one series returns.
pub const MAX_BUCKETS: i64 = 2_000;
/// The narrowest bucket: one poll interval.
pub const MIN_BUCKET_SECS: i64 = 60;
/// Automatic widths, narrowest first; the first that gives at most [`AUTO_BUCKETS`] buckets wins.
pub const AUTO_WIDTHS: [i64; 7] = [60, 300, 900, 3_600, 14_400, 43_200, 86_400];
/// The number of buckets an automatic width aims below.
pub const AUTO_BUCKETS: i64 = 300;

/// A range and bucket width that the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
    /// Bucket width, seconds.
    pub bucket_secs: i64,
}

/// Why a window was refused; the text names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWindow {
    /// `start` is not before `end`.
    #[error("start must be before end")]
    Empty,
    /// The range is longer than allowed.
    #[error("the range may span at most 31 days")]
    TooLong,
    /// The bucket width is too small or gives too many buckets.
    #[error("bucket_secs must be at least 60 and give at most 2000 buckets")]
    BadBucket,
}

impl Window {
    /// Checks a requested range; `bucket_secs = None` picks the narrowest automatic width.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>, bucket_secs: Option<i64>) -> Result<Self, InvalidWindow> {
        let span = (end - start).num_seconds();
        if span <= 0 {
            return Err(InvalidWindow::Empty);
        }
        if span > MAX_SPAN_SECS {
            return Err(InvalidWindow::TooLong);
        }
        let bucket_secs = match bucket_secs {
            Some(b) if b < MIN_BUCKET_SECS || buckets(span, b) > MAX_BUCKETS => return Err(InvalidWindow::BadBucket),
            Some(b) => b,
            None => AUTO_WIDTHS
                .into_iter()
                .find(|w| buckets(span, *w) <= AUTO_BUCKETS)
                .unwrap_or(AUTO_WIDTHS[AUTO_WIDTHS.len() - 1]),
        };
        Ok(Self {
            start,
            end,
            bucket_secs,
        })
    }

    /// The start of the bucket `t` falls in (aligned to the width since the epoch, UTC).
    pub fn bucket_of(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let secs = t.timestamp().div_euclid(self.bucket_secs) * self.bucket_secs;
        Utc.timestamp_opt(secs, 0).single().unwrap_or(t)
    }

    /// The bucket width.
    pub fn width(&self) -> Duration {
        Duration::seconds(self.bucket_secs)
    }
}

/// Buckets of `width` seconds needed to cover `span` seconds (both positive).
fn buckets(span: i64, width: i64) -> i64 {
    (span + width - 1) / width
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, h, m, s).unwrap()
    }

    #[test]
    fn automatic_width_keeps_a_day_near_three_hundred_buckets() {
        let day = Window::new(at(0, 0, 0), at(0, 0, 0) + Duration::days(1), None).unwrap();
        assert_eq!(day.bucket_secs, 300);
        let hour = Window::new(at(1, 0, 0), at(2, 0, 0), None).unwrap();
        assert_eq!(hour.bucket_secs, 60);
        let month = Window::new(at(0, 0, 0), at(0, 0, 0) + Duration::days(31), None).unwrap();
        assert_eq!(month.bucket_secs, 14_400);
    }

    #[test]
    fn refuses_empty_overlong_and_unbucketable_ranges() {
        assert_eq!(Window::new(at(2, 0, 0), at(2, 0, 0), None), Err(InvalidWindow::Empty));
        assert_eq!(Window::new(at(3, 0, 0), at(2, 0, 0), None), Err(InvalidWindow::Empty));
        let long = at(0, 0, 0) + Duration::days(31) + Duration::seconds(1);
        assert_eq!(Window::new(at(0, 0, 0), long, None), Err(InvalidWindow::TooLong));
        assert_eq!(
            Window::new(at(0, 0, 0), at(1, 0, 0), Some(59)),
            Err(InvalidWindow::BadBucket)
        );
        let week = at(0, 0, 0) + Duration::days(7);
        assert_eq!(Window::new(at(0, 0, 0), week, Some(60)), Err(InvalidWindow::BadBucket));
        assert_eq!(Window::new(at(0, 0, 0), week, Some(3_600)).unwrap().bucket_secs, 3_600);
    }

    #[test]
    fn buckets_align_to_the_epoch() {
        let w = Window::new(at(0, 0, 0), at(6, 0, 0), Some(900)).unwrap();
        assert_eq!(w.bucket_of(at(1, 14, 59)), at(1, 0, 0));
        assert_eq!(w.bucket_of(at(1, 15, 0)), at(1, 15, 0));
        assert_eq!(w.width(), Duration::minutes(15));
    }
}
