//! Parsers for the value strings RouterOS puts in API replies.
//!
//! RouterOS sends every value as text, with units and suffixes that vary by version and wireless
//! package. Each parser here accepts the real-world forms, returns `Ok(None)` where RouterOS sends
//! an empty value (absent data), and a typed [`ValueError`] for anything else. None of them
//! substitutes 0 for "unknown": the original product did, and then averaged those zeros into
//! signal history and alerts.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A RouterOS value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RouterOS {kind} value {input:?}")]
pub struct ValueError {
    /// Which kind of value was expected (`signal`, `duration`, ...).
    pub kind: &'static str,
    /// The rejected input (truncated to 64 characters).
    pub input: String,
}

fn err(kind: &'static str, input: &str) -> ValueError {
    ValueError {
        kind,
        input: input.chars().take(64).collect(),
    }
}

/// Parses a signal strength in dBm: `-67`, `-67@HT40`, `-80@5GHz-Ce/a/ac/an`, `-65dBm@6Mbps`.
///
/// Everything from the first `@` is a rate/mode annotation and is dropped; an optional `dBm` unit
/// is accepted. Empty input means "not reported" (`Ok(None)`); values outside −150…+40 dBm are
/// errors, as is anything non-numeric.
pub fn parse_signal(input: &str) -> Result<Option<i16>, ValueError> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let head = s.split_once('@').map_or(s, |(h, _)| h).trim_end();
    let head = head
        .strip_suffix("dBm")
        .or_else(|| head.strip_suffix("dbm"))
        .unwrap_or(head)
        .trim_end();
    match head.parse::<i16>() {
        Ok(v) if (-150..=40).contains(&v) => Ok(Some(v)),
        _ => Err(err("signal", input)),
    }
}

/// A PHY rate as RouterOS reports it: `130Mbps`, `5.5Mbps`, `866.7Mbps-80MHz/2S/SGI`, `1.2Gbps-160MHz/2S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// The rate in bits per second.
    pub bits_per_second: u64,
    /// Channel width the rate was negotiated at, when given (`-20MHz`).
    pub width_mhz: Option<u16>,
    /// Spatial streams, when given (`/2S`).
    pub spatial_streams: Option<u8>,
    /// Short guard interval (`/SGI`).
    pub short_guard_interval: bool,
}

/// Parses a PHY rate. Empty input is `Ok(None)`. Unknown `/`-separated annotations after the
/// width (`/HE-MCS11`, ...) are ignored; an unknown unit is an error.
pub fn parse_rate(input: &str) -> Result<Option<Rate>, ValueError> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || err("rate", input);
    let (speed, rest) = match s.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let split = speed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = speed.split_at(split);
    let multiplier: f64 = match unit {
        "bps" => 1.0,
        "kbps" | "Kbps" => 1e3,
        "Mbps" => 1e6,
        "Gbps" => 1e9,
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bps = value * multiplier;
    if !bps.is_finite() || bps > 1e12 {
        return Err(bad());
    }
    let mut rate = Rate {
        bits_per_second: bps.round() as u64,
        width_mhz: None,
        spatial_streams: None,
        short_guard_interval: false,
    };
    for part in rest.into_iter().flat_map(|r| r.split('/')) {
        if let Some(w) = part.strip_suffix("MHz") {
            rate.width_mhz = Some(w.parse().map_err(|_| bad())?);
        } else if part == "SGI" {
            rate.short_guard_interval = true;
        } else if let Some(n) = part.strip_suffix('S')
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            rate.spatial_streams = Some(n.parse().map_err(|_| bad())?);
        }
    }
    Ok(Some(rate))
}

/// Parses a RouterOS duration.
///
/// Accepts unit form (`1w2d3h4m5s`, `3d12h5m`, `500ms`, `1s250ms`, `10us`), clock form
/// (`00:01:02`, `01:02:03.250`), and the mixed form RouterOS uses for long uptimes
/// (`1d02:03:04`, `2w1d00:00:05`). Empty input is `Ok(None)`.
pub fn parse_duration(input: &str) -> Result<Option<Duration>, ValueError> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || err("duration", input);
    let mut total = Duration::ZERO;
    let mut rest = s;
    let mut last_rank = u8::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(bad());
        }
        let after = &rest[digits..];
        if after.starts_with(':') {
            // The clock part must be last: hh:mm:ss(.fraction)
            total = total.checked_add(parse_clock(rest).ok_or_else(bad)?).ok_or_else(bad)?;
            return Ok(Some(total));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let (unit_len, rank, unit) = if after.starts_with("ms") {
            (2, 1, Duration::from_millis(1))
        } else if after.starts_with("us") {
            (2, 0, Duration::from_micros(1))
        } else {
            let secs = match after.as_bytes().first() {
                Some(b'w') => (7, 604_800),
                Some(b'd') => (6, 86_400),
                Some(b'h') => (5, 3_600),
                Some(b'm') => (4, 60),
                Some(b's') => (3, 1),
                _ => return Err(bad()),
            };
            (1, secs.0, Duration::from_secs(secs.1))
        };
        // Units must come largest first, each at most once ("5s3m" is not a duration).
        if rank >= last_rank {
            return Err(bad());
        }
        last_rank = rank;
        let part = unit.checked_mul(u32::try_from(n).map_err(|_| bad())?).ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = &after[unit_len..];
    }
    Ok(Some(total))
}

fn parse_clock(s: &str) -> Option<Duration> {
    let mut fields = s.split(':');
    let (h, m, sec) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let num = |f: &str| -> Option<u64> {
        (!f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()))
            .then(|| f.parse().ok())
            .flatten()
    };
    let (sec, frac) = match sec.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (sec, None),
    };
    let (h, m, s) = (num(h)?, num(m)?, num(sec)?);
    if m >= 60 || s >= 60 || sec.len() != 2 {
        return None;
    }
    let mut d = Duration::from_secs(h * 3600 + m * 60 + s);
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let nanos: u32 = f.parse().ok()?;
        d += Duration::from_nanos(u64::from(nanos) * 10u64.pow(9 - f.len() as u32));
    }
    Some(d)
}

/// The release channel printed after a RouterOS version, `7.16.2 (stable)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseChannel {
    /// `(stable)`
    Stable,
    /// `(long-term)`
    LongTerm,
    /// `(testing)`
    Testing,
    /// `(development)`
    Development,
}

/// A pre-release marker: `7.17rc3`, `7.18beta2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreRelease {
    /// `betaN` (sorts before rc)
    Beta(u16),
    /// `rcN`
    Rc(u16),
}

/// A RouterOS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouterOsVersion {
    /// Major (6, 7).
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Patch, when printed (`7.16.2`); `7.16` has none and equals `7.16.0` in ordering.
    pub patch: Option<u16>,
    /// Pre-release marker, if any.
    pub pre: Option<PreRelease>,
    /// Release channel, when printed.
    pub channel: Option<ReleaseChannel>,
}

impl RouterOsVersion {
    /// Parses `7.16.2 (stable)`, `6.49.10 (long-term)`, `7.17rc3`, `7.18beta2 (testing)`, `7.1`.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let bad = || err("version", input);
        let s = input.trim();
        let (core, channel) = match s.split_once(' ') {
            Some((core, rest)) => {
                let ch = match rest.trim() {
                    "(stable)" => ReleaseChannel::Stable,
                    "(long-term)" => ReleaseChannel::LongTerm,
                    "(testing)" => ReleaseChannel::Testing,
                    "(development)" => ReleaseChannel::Development,
                    _ => return Err(bad()),
                };
                (core, Some(ch))
            }
            None => (s, None),
        };
        let (numbers, pre) = if let Some(i) = core.find("rc") {
            (
                &core[..i],
                Some(PreRelease::Rc(core[i + 2..].parse().map_err(|_| bad())?)),
            )
        } else if let Some(i) = core.find("beta") {
            (
                &core[..i],
                Some(PreRelease::Beta(core[i + 4..].parse().map_err(|_| bad())?)),
            )
        } else {
            (core, None)
        };
        let mut parts = numbers.split('.');
        let num = |p: Option<&str>| -> Result<u16, ValueError> {
            let p = p.ok_or_else(bad)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        let patch = parts.next().map(|p| num(Some(p))).transpose()?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            major,
            minor,
            patch,
            pre,
            channel,
        })
    }

    /// RouterOS 6.43 introduced plain-text `/login =name= =password=`; older needs the MD5 challenge.
    pub fn supports_plain_login(&self) -> bool {
        self.cmp(&Self::plain(6, 43, 0)) != Ordering::Less
    }

    /// A plain release version, for comparisons.
    pub const fn plain(major: u16, minor: u16, patch: u16) -> Self {
        Self {
            major,
            minor,
            patch: Some(patch),
            pre: None,
            channel: None,
        }
    }

    fn sort_key(&self) -> (u16, u16, u16, u8, u16) {
        let (rank, n) = match self.pre {
            Some(PreRelease::Beta(n)) => (0, n),
            Some(PreRelease::Rc(n)) => (1, n),
            None => (2, 0),
        };
        (self.major, self.minor, self.patch.unwrap_or(0), rank, n)
    }
}

impl PartialOrd for RouterOsVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders by release; the channel does not take part (`7.16 (stable)` == `7.16` in order).
impl Ord for RouterOsVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl fmt::Display for RouterOsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(p) = self.patch {
            write!(f, ".{p}")?;
        }
        match self.pre {
            Some(PreRelease::Beta(n)) => write!(f, "beta{n}")?,
            Some(PreRelease::Rc(n)) => write!(f, "rc{n}")?,
            None => {}
        }
        Ok(())
    }
}

/// A radio channel as RouterOS prints it: `5180/20-Ce/ac`, `5180/ax/Ceee`, `5825/20/ac(10dBm)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// Centre frequency of the control channel in MHz.
    pub frequency_mhz: u32,
    /// Effective channel width in MHz: from the extension-channel pattern when present
    /// (`Ce` = 40, `Ceee` = 80, `Ceeeeeee` = 160), else the printed width.
    pub width_mhz: Option<u16>,
    /// Extension-channel pattern (`Ce`, `eC`, `Ceee`, ...).
    pub extension: Option<String>,
    /// PHY standard / band (`ac`, `ax`, `a/n`, `gn`, ...).
    pub standard: Option<String>,
    /// Transmit power when the channel string carries it (`(10dBm)`).
    pub tx_power_dbm: Option<i16>,
}

fn is_extension(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b == b'C' || b == b'e') && p.contains('C')
}

/// Parses a channel string. Empty input is `Ok(None)`.
pub fn parse_channel(input: &str) -> Result<Option<Channel>, ValueError> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || err("channel", input);
    let mut parts = s.split('/');
    let freq = parts.next().ok_or_else(bad)?;
    if freq.is_empty() || freq.len() > 6 || !freq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mut ch = Channel {
        frequency_mhz: freq.parse().map_err(|_| bad())?,
        width_mhz: None,
        extension: None,
        standard: None,
        tx_power_dbm: None,
    };
    let mut standard: Vec<&str> = Vec::new();
    for part in parts {
        let mut part = part;
        if let Some(open) = part.find('(') {
            let power = part[open + 1..].strip_suffix("dBm)").ok_or_else(bad)?;
            ch.tx_power_dbm = Some(power.parse().map_err(|_| bad())?);
            part = &part[..open];
        }
        let (head, ext) = match part.split_once('-') {
            Some((h, e)) if is_extension(e) => (h, Some(e)),
            _ => (part, None),
        };
        if let Some(e) = ext {
            ch.extension = Some(e.to_owned());
        }
        if head.is_empty() {
            continue;
        } else if head.bytes().all(|b| b.is_ascii_digit()) {
            ch.width_mhz = Some(head.parse().map_err(|_| bad())?);
        } else if is_extension(head) {
            ch.extension = Some(head.to_owned());
        } else if head.bytes().all(|b| b.is_ascii_alphanumeric()) {
            standard.push(head);
        } else {
            return Err(bad());
        }
    }
    if let Some(e) = &ch.extension {
        ch.width_mhz = Some(20 * e.len() as u16);
    }
    if !standard.is_empty() {
        ch.standard = Some(standard.join("/"));
    }
    Ok(Some(ch))
}

/// Parses a `tx,rx` pair (`bytes`, `packets`, `tx-rate,rx-rate` style values).
/// Empty input is `Ok(None)`.
pub fn parse_pair<T: std::str::FromStr>(input: &str) -> Result<Option<(T, T)>, ValueError> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let (a, b) = s.split_once(',').ok_or_else(|| err("pair", input))?;
    let a = a.trim().parse().map_err(|_| err("pair", input))?;
    let b = b.trim().parse().map_err(|_| err("pair", input))?;
    Ok(Some((a, b)))
}

/// Parses a RouterOS boolean (`true`/`false`, `yes`/`no`). Empty is `Ok(None)`.
pub fn parse_bool(input: &str) -> Result<Option<bool>, ValueError> {
    match input.trim() {
        "" => Ok(None),
        "true" | "yes" => Ok(Some(true)),
        "false" | "no" => Ok(Some(false)),
        _ => Err(err("boolean", input)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn signal_forms_from_the_field() {
        for (input, want) in [
            ("-67", Some(-67)),
            ("-67@5GHz", Some(-67)),
            ("-72@2.4GHz", Some(-72)),
            ("-67@HT40", Some(-67)),
            ("-55@HT20", Some(-55)),
            ("-80@5GHz-Ce/a/ac/an", Some(-80)),
            ("-65dBm@6Mbps", Some(-65)),
            ("-71@HT20-7", Some(-71)),
            ("-58@MCS7", Some(-58)),
            ("10", Some(10)),
            ("0", Some(0)),
            ("", None),
            ("   ", None),
        ] {
            assert_eq!(parse_signal(input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn garbage_signal_is_an_error_not_zero() {
        // A bare trailing '@' carries no annotation; the number before it is still the signal.
        assert_eq!(parse_signal("-67@"), Ok(Some(-67)));
        for bad in ["abc", "@HT20", "-67.5", "--67", "-999", "67 dB"] {
            let e = parse_signal(bad).unwrap_err();
            assert_eq!(e.kind, "signal", "{bad}");
        }
    }

    #[test]
    fn rates() {
        let r = parse_rate("866.7Mbps-80MHz/2S/SGI").unwrap().unwrap();
        assert_eq!(r.bits_per_second, 866_700_000);
        assert_eq!(r.width_mhz, Some(80));
        assert_eq!(r.spatial_streams, Some(2));
        assert!(r.short_guard_interval);
        let r = parse_rate("130Mbps-20MHz/2S/SGI").unwrap().unwrap();
        assert_eq!((r.bits_per_second, r.width_mhz), (130_000_000, Some(20)));
        let r = parse_rate("5.5Mbps").unwrap().unwrap();
        assert_eq!(r.bits_per_second, 5_500_000);
        assert_eq!(r.width_mhz, None);
        assert!(!r.short_guard_interval);
        let r = parse_rate("1.2Gbps-160MHz/2S/HE-MCS11").unwrap().unwrap();
        assert_eq!(r.bits_per_second, 1_200_000_000);
        assert_eq!(r.width_mhz, Some(160));
        assert_eq!(parse_rate(""), Ok(None));
        for bad in ["fast", "130", "130Xbps", "Mbps", "1e400Mbps", "130Mbps-xxMHz"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_in_every_form() {
        let s = Duration::from_secs;
        for (input, want) in [
            ("1w2d3h4m5s", s(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5)),
            ("3d12h5m", s(3 * 86_400 + 12 * 3600 + 5 * 60)),
            ("00:01:02", s(62)),
            ("1d02:03:04", s(86_400 + 2 * 3600 + 3 * 60 + 4)),
            ("2w1d00:00:05", s(15 * 86_400 + 5)),
            ("500ms", Duration::from_millis(500)),
            ("1s250ms", Duration::from_millis(1250)),
            ("10us", Duration::from_micros(10)),
            ("01:02:03.25", s(3723) + Duration::from_millis(250)),
            ("45s", s(45)),
            ("100:00:00", s(360_000)),
        ] {
            assert_eq!(parse_duration(input), Ok(Some(want)), "{input}");
        }
        assert_eq!(parse_duration(""), Ok(None));
    }

    #[test]
    fn malformed_durations_are_errors() {
        for bad in [
            "5s3m",
            "1h1h",
            "h",
            "12",
            "1x",
            "00:60:00",
            "00:00:60",
            "1:2:3",
            "00:01",
            "1d02:03:04s",
            "-5s",
            "1.5s",
            "00:00:00.",
            "99999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_parse_and_order() {
        let v = RouterOsVersion::parse("7.16.2 (stable)").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (7, 16, Some(2)));
        assert_eq!(v.channel, Some(ReleaseChannel::Stable));
        assert_eq!(v.to_string(), "7.16.2");
        let lt = RouterOsVersion::parse("6.49.10 (long-term)").unwrap();
        assert_eq!(lt.channel, Some(ReleaseChannel::LongTerm));
        let rc = RouterOsVersion::parse("7.17rc3").unwrap();
        assert_eq!(rc.pre, Some(PreRelease::Rc(3)));
        let beta = RouterOsVersion::parse("7.17beta2 (testing)").unwrap();
        assert_eq!(beta.pre, Some(PreRelease::Beta(2)));
        let release = RouterOsVersion::parse("7.17").unwrap();
        assert!(beta < rc && rc < release);
        assert!(lt < v);
        assert_eq!(
            RouterOsVersion::parse("7.16").unwrap(),
            RouterOsVersion::parse("7.16").unwrap()
        );
        assert!(RouterOsVersion::parse("7.16").unwrap() < v);
        assert!(RouterOsVersion::parse("6.43").unwrap().supports_plain_login());
        assert!(!RouterOsVersion::parse("6.42.12").unwrap().supports_plain_login());
        for bad in ["", "7", "seven.1", "7.16.2 (weird)", "7.16.2.1", "7.x", "7.17rc"] {
            assert!(RouterOsVersion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn channels_v6_and_v7() {
        let c = parse_channel("5180/20-Ce/ac").unwrap().unwrap();
        assert_eq!(c.frequency_mhz, 5180);
        assert_eq!(c.width_mhz, Some(40));
        assert_eq!(c.extension.as_deref(), Some("Ce"));
        assert_eq!(c.standard.as_deref(), Some("ac"));
        let c = parse_channel("5180/ax/Ceee").unwrap().unwrap();
        assert_eq!((c.frequency_mhz, c.width_mhz), (5180, Some(80)));
        assert_eq!(c.standard.as_deref(), Some("ax"));
        let c = parse_channel("5825/20/ac(10dBm)").unwrap().unwrap();
        assert_eq!((c.width_mhz, c.tx_power_dbm), (Some(20), Some(10)));
        let c = parse_channel("2412/20/gn").unwrap().unwrap();
        assert_eq!((c.frequency_mhz, c.width_mhz, c.extension), (2412, Some(20), None));
        assert_eq!(parse_channel(""), Ok(None));
        for bad in ["x/20", "5180/2 0", "5180/20/ac(10)", "/ac"] {
            assert!(parse_channel(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pairs_and_booleans() {
        assert_eq!(parse_pair::<u64>("1024,2048"), Ok(Some((1024, 2048))));
        assert_eq!(parse_pair::<u64>(""), Ok(None));
        assert!(parse_pair::<u64>("1024").is_err());
        assert!(parse_pair::<u64>("a,b").is_err());
        assert_eq!(parse_bool("true"), Ok(Some(true)));
        assert_eq!(parse_bool("no"), Ok(Some(false)));
        assert!(parse_bool("maybe").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,40}") {
            let _ = parse_signal(&s);
            let _ = parse_rate(&s);
            let _ = parse_duration(&s);
            let _ = RouterOsVersion::parse(&s);
            let _ = parse_channel(&s);
            let _ = parse_pair::<u64>(&s);
        }

        #[test]
        fn structured_inputs_never_panic(s in "[0-9wdhms:.@ -]{0,24}") {
            let _ = parse_duration(&s);
            let _ = parse_signal(&s);
        }

        #[test]
        fn unit_durations_round_trip(w in 0u64..10, d in 0u64..7, h in 0u64..24, m in 0u64..60, sec in 0u64..60) {
            let text = format!("{w}w{d}d{h}h{m}m{sec}s");
            let want = w * 604_800 + d * 86_400 + h * 3600 + m * 60 + sec;
            prop_assert_eq!(parse_duration(&text).unwrap(), Some(Duration::from_secs(want)));
        }

        #[test]
        fn every_in_range_signal_parses_with_any_suffix(v in -150i16..=40, suffix in "(@[A-Za-z0-9/.-]{0,12})?") {
            prop_assert_eq!(parse_signal(&format!("{v}{suffix}")).unwrap(), Some(v));
        }
    }
}
