//! The one MAC address type of TOD.
//!
//! RouterOS reports registration MACs in upper case, interface MACs come back in whatever case the
//! board uses, and operators paste MACs in Cisco dot form. The original product compared these as
//! strings and lost links, signal history and hostnames to case mismatches. Every MAC that enters
//! TOD is parsed here once; it is stored and displayed in one canonical form,
//! lower-case colon-separated (`aa:bb:cc:dd:ee:ff`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {input:?}: {reason}")]
pub struct MacParseError {
    /// The rejected input (truncated to 64 characters).
    pub input: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

impl MacAddr {
    /// Builds a MAC from its six octets.
    pub const fn new(octets: [u8; 6]) -> Self {
        Self(octets)
    }

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Builds a MAC from the low 48 bits of a number (fixtures and simulations).
    pub const fn from_u64(n: u64) -> Self {
        let b = n.to_be_bytes();
        Self([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// Parses any of the accepted forms:
    /// `AA:BB:CC:DD:EE:FF`, `aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff` and `AABBCCDDEEFF`
    /// (any letter case, surrounding whitespace ignored).
    pub fn parse(input: &str) -> Result<Self, MacParseError> {
        let err = |reason| MacParseError {
            input: input.chars().take(64).collect(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let bytes = s.as_bytes();
        let mut digits = [0u8; 12];
        let mut n = 0usize;
        // The separator layout decides the form: group sizes must be all 2 (':' or '-'),
        // all 4 ('.') or a single group of 12.
        let sep = bytes.iter().copied().find(|b| matches!(b, b':' | b'-' | b'.'));
        let group_len = match sep {
            None => 12,
            Some(b'.') => 4,
            Some(_) => 2,
        };
        let mut in_group = 0usize;
        for &b in bytes {
            if Some(b) == sep {
                if in_group != group_len {
                    return Err(err("wrong group length"));
                }
                in_group = 0;
                continue;
            }
            let v = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                b':' | b'-' | b'.' => return Err(err("mixed separators")),
                _ => return Err(err("not a hexadecimal digit")),
            };
            if n == 12 {
                return Err(err("too many digits"));
            }
            digits[n] = v;
            n += 1;
            in_group += 1;
        }
        if in_group != group_len {
            return Err(err("wrong group length"));
        }
        if n != 12 {
            return Err(err("expected 12 hexadecimal digits"));
        }
        let mut out = [0u8; 6];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (digits[2 * i] << 4) | digits[2 * i + 1];
        }
        Ok(Self(out))
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CANONICAL: &str = "aa:bb:cc:0d:ee:f1";

    #[test]
    fn every_accepted_form_parses_to_the_same_address() {
        for form in [
            "AA:BB:CC:0D:EE:F1",
            "aa:bb:cc:0d:ee:f1",
            "aa-bb-cc-0d-ee-f1",
            "AA-BB-CC-0D-EE-F1",
            "aabb.cc0d.eef1",
            "AABBCC0DEEF1",
            "  Aa:bB:cc:0D:ee:F1 \n",
        ] {
            assert_eq!(MacAddr::parse(form).unwrap().to_string(), CANONICAL, "{form}");
        }
    }

    #[test]
    fn malformed_addresses_are_typed_errors() {
        for (bad, reason) in [
            ("", "empty"),
            ("aa:bb:cc:dd:ee", "expected 12 hexadecimal digits"),
            ("aa:bb:cc:dd:ee:ff:00", "too many digits"),
            ("aa:bb:cc:dd:ee:fg", "not a hexadecimal digit"),
            ("aa:bb-cc:dd:ee:ff", "mixed separators"),
            ("aab:bcc:dde:eff", "wrong group length"),
            ("aabb.ccdd.eef", "wrong group length"),
            ("a:bb:cc:dd:ee:fff", "wrong group length"),
            ("aabbccddeeff0", "too many digits"),
            ("aa:bb:cc:dd:ee:ff:", "wrong group length"),
        ] {
            let e = MacAddr::parse(bad).unwrap_err();
            assert_eq!(e.reason, reason, "{bad:?}");
        }
    }

    #[test]
    fn serde_uses_the_canonical_form_and_validates() {
        let mac: MacAddr = serde_json::from_str("\"AA-BB-CC-0D-EE-F1\"").unwrap();
        assert_eq!(serde_json::to_string(&mac).unwrap(), format!("\"{CANONICAL}\""));
        assert!(serde_json::from_str::<MacAddr>("\"nope\"").is_err());
    }

    #[test]
    fn from_u64_uses_the_low_48_bits() {
        assert_eq!(MacAddr::from_u64(0x0001_0203_0405).to_string(), "00:01:02:03:04:05");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".*") {
            let _ = MacAddr::parse(&s);
        }

        #[test]
        fn display_round_trips(octets in any::<[u8; 6]>()) {
            let mac = MacAddr(octets);
            prop_assert_eq!(MacAddr::parse(&mac.to_string()).unwrap(), mac);
            let bare: String = mac.to_string().replace(':', "").to_uppercase();
            prop_assert_eq!(MacAddr::parse(&bare).unwrap(), mac);
        }
    }
}
