//! RouterOS rows → `tod_core::telemetry`. Pure functions; every value goes through tod-core's
//! parsers. A value that does not parse becomes `None` plus a warning naming the row and field —
//! the rest of the report is kept. A registration row without a valid MAC cannot be attributed to
//! anyone and is dropped, with a warning.

use tod_core::MacAddr;
use tod_core::routeros::{parse_bool, parse_channel, parse_duration, parse_pair, parse_signal};
use tod_core::telemetry::{Interface, Registration, Resources, RfStats, SystemInfo, WirelessPackage};

use crate::routeros::Sentence;

/// Where a problem was found, for the report's warnings.
fn warn(warnings: &mut Vec<String>, what: &str, row: usize, field: &str, err: impl std::fmt::Display) {
    warnings.push(format!("{what} row {row}: field {field}: {err}"));
}

fn text(s: &Sentence, field: &str) -> Option<String> {
    s.get(field).map(|v| v.into_owned()).filter(|v| !v.is_empty())
}

fn num<T: std::str::FromStr>(
    s: &Sentence,
    field: &str,
    what: &str,
    row: usize,
    warnings: &mut Vec<String>,
) -> Option<T> {
    let v = s.get(field)?;
    if v.is_empty() {
        return None;
    }
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => {
            warn(warnings, what, row, field, format!("not a number: {v:?}"));
            None
        }
    }
}

/// The wireless menu from `/system/package/print` rows (names of enabled packages).
pub fn package_from_packages(rows: &[Sentence]) -> WirelessPackage {
    let enabled = |name: &str| {
        rows.iter().any(|r| {
            r.get("name")
                .is_some_and(|n| n == name || n.starts_with(&format!("{name}-")))
                && r.get("disabled").is_none_or(|d| d != "true" && d != "yes")
        })
    };
    if enabled("wifi-qcom") || enabled("wifi") {
        WirelessPackage::Wifi
    } else if enabled("wifiwave2") {
        WirelessPackage::Wifiwave2
    } else if enabled("wireless") {
        WirelessPackage::Wireless
    } else {
        WirelessPackage::None
    }
}

/// The menu prefix of a package.
pub fn menu(package: WirelessPackage) -> Option<&'static str> {
    match package {
        WirelessPackage::Wireless => Some("/interface/wireless"),
        WirelessPackage::Wifiwave2 => Some("/interface/wifiwave2"),
        WirelessPackage::Wifi => Some("/interface/wifi"),
        WirelessPackage::None => None,
    }
}

/// What `/system/routerboard` says, kept as owned text (a session holds it between probes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routerboard {
    /// `serial-number`.
    pub serial_number: Option<String>,
    /// `current-firmware`.
    pub firmware: Option<String>,
}

impl Routerboard {
    /// From a `/system/routerboard/print` row.
    pub fn from_row(r: &Sentence) -> Self {
        Self {
            serial_number: text(r, "serial-number"),
            firmware: text(r, "current-firmware"),
        }
    }
}

/// Identity and version from `/system/resource` and what the probe read from `/system/routerboard`.
pub fn system_info(
    resource: &Sentence,
    routerboard: &Routerboard,
    package: WirelessPackage,
    warnings: &mut Vec<String>,
) -> SystemInfo {
    let uptime_secs = match s_duration(resource, "uptime") {
        Ok(v) => v,
        Err(e) => {
            warn(warnings, "resource", 0, "uptime", e);
            None
        }
    };
    SystemInfo {
        routeros_version: text(resource, "version").unwrap_or_default(),
        board_name: text(resource, "board-name"),
        architecture: text(resource, "architecture-name"),
        serial_number: routerboard.serial_number.clone(),
        firmware_version: routerboard.firmware.clone(),
        uptime_secs,
        wireless_package: package,
    }
}

fn s_duration(s: &Sentence, field: &str) -> Result<Option<u64>, tod_core::routeros::ValueError> {
    Ok(s.get(field)
        .map(|v| parse_duration(&v))
        .transpose()?
        .flatten()
        .map(|d| d.as_secs()))
}

/// Resources from `/system/resource` plus the temperature from `/system/health` (v6 flat, or v7
/// name/value rows; the CPU sensor wins over the board sensor).
pub fn resources(resource: &Sentence, health: &[Sentence], warnings: &mut Vec<String>) -> Resources {
    let mut temps: Vec<(u8, f64)> = Vec::new();
    for (i, h) in health.iter().enumerate() {
        let mut consider = |name: &str, value: Option<std::borrow::Cow<'_, str>>| {
            let rank = match name {
                "cpu-temperature" => 0,
                "temperature" => 1,
                n if n.starts_with("board-temperature") => 2,
                _ => return,
            };
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                match v.trim().parse::<f64>() {
                    Ok(t) => temps.push((rank, t)),
                    Err(_) => warn(warnings, "health", i, name, format!("not a number: {v:?}")),
                }
            }
        };
        match h.get("name") {
            Some(name) => consider(&name, h.get("value")),
            None => {
                for (k, _) in &h.attrs {
                    consider(k, h.get(k));
                }
            }
        }
    }
    temps.sort_by_key(|t| t.0);
    Resources {
        cpu_load: num(resource, "cpu-load", "resource", 0, warnings),
        free_memory: num(resource, "free-memory", "resource", 0, warnings),
        total_memory: num(resource, "total-memory", "resource", 0, warnings),
        free_hdd: num(resource, "free-hdd-space", "resource", 0, warnings),
        total_hdd: num(resource, "total-hdd-space", "resource", 0, warnings),
        temperature_c: temps.first().map(|t| t.1),
    }
}

/// Interfaces from one `/interface/print` (identity and counters together).
pub fn interfaces(rows: &[Sentence], warnings: &mut Vec<String>) -> Vec<Interface> {
    rows.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let name = text(r, "name")?;
            let mac = match r.get("mac-address").filter(|m| !m.is_empty()) {
                None => None,
                Some(m) => match MacAddr::parse(&m) {
                    Ok(mac) => Some(mac),
                    Err(e) => {
                        warn(warnings, "interface", i, "mac-address", e);
                        None
                    }
                },
            };
            let running = match r.get("running").map(|v| parse_bool(&v)) {
                Some(Ok(b)) => b.unwrap_or(false),
                Some(Err(e)) => {
                    warn(warnings, "interface", i, "running", e);
                    false
                }
                None => false,
            };
            Some(Interface {
                name,
                mac,
                kind: text(r, "type").unwrap_or_default(),
                running,
                rx_bytes: num(r, "rx-byte", "interface", i, warnings),
                tx_bytes: num(r, "tx-byte", "interface", i, warnings),
            })
        })
        .collect()
}

/// Registration rows of any package: `signal-strength` (wireless) or `signal` (wifi/wifiwave2);
/// CCQ only where the package has it.
pub fn registrations(rows: &[Sentence], warnings: &mut Vec<String>) -> Vec<Registration> {
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let mac = match r.get("mac-address").map(|m| MacAddr::parse(&m)) {
            Some(Ok(mac)) => mac,
            Some(Err(e)) => {
                warn(warnings, "registration", i, "mac-address", format!("{e}; row dropped"));
                continue;
            }
            None => {
                warn(warnings, "registration", i, "mac-address", "missing; row dropped");
                continue;
            }
        };
        let signal_field = if r.get("signal-strength").is_some() {
            "signal-strength"
        } else {
            "signal"
        };
        let mut signal = |field: &str| match r.get(field).map(|v| parse_signal(&v)) {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                warn(warnings, "registration", i, field, e);
                None
            }
            None => None,
        };
        let signal_dbm = signal(signal_field);
        let tx_signal_dbm = signal("tx-signal-strength");
        let uptime_secs = match s_duration(r, "uptime") {
            Ok(v) => v,
            Err(e) => {
                warn(warnings, "registration", i, "uptime", e);
                None
            }
        };
        let (tx_bytes, rx_bytes) = match r.get("bytes").map(|b| parse_pair::<u64>(&b)) {
            Some(Ok(Some((tx, rx)))) => (Some(tx), Some(rx)),
            Some(Err(e)) => {
                warn(warnings, "registration", i, "bytes", e);
                (None, None)
            }
            _ => (None, None),
        };
        out.push(Registration {
            interface: text(r, "interface").unwrap_or_default(),
            mac,
            signal_dbm,
            tx_signal_dbm,
            tx_ccq: num::<u8>(r, "tx-ccq", "registration", i, warnings).filter(|c| *c <= 100),
            tx_rate: text(r, "tx-rate"),
            rx_rate: text(r, "rx-rate"),
            uptime_secs,
            distance_m: num(r, "distance", "registration", i, warnings),
            last_ip: text(r, "last-ip"),
            tx_bytes,
            rx_bytes,
        });
    }
    out
}

/// RF monitor of one radio (`monitor =once=`): frequency, width and power from the `channel`
/// string where the package puts them there; clients from `registered-clients` or
/// `registered-peers`.
pub fn rf_stats(interface: &str, row: &Sentence, warnings: &mut Vec<String>) -> RfStats {
    let channel = match row.get("channel").map(|c| parse_channel(&c)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            warn(warnings, "monitor", 0, "channel", e);
            None
        }
        None => None,
    };
    let clients = num(row, "registered-clients", "monitor", 0, warnings)
        .or_else(|| num(row, "registered-peers", "monitor", 0, warnings));
    RfStats {
        interface: interface.to_owned(),
        noise_floor_dbm: num(row, "noise-floor", "monitor", 0, warnings),
        frequency_mhz: channel.as_ref().map(|c| c.frequency_mhz),
        channel_width_mhz: channel.as_ref().and_then(|c| c.width_mhz),
        tx_power_dbm: channel.as_ref().and_then(|c| c.tx_power_dbm),
        registered_clients: clients,
        role: None,
    }
}

/// Per-interface byte counters between two polls, with 32-bit wrap and reboot handling.
#[derive(Debug, Default, Clone)]
pub struct CounterDeltas {
    last: std::collections::HashMap<String, (u64, u64)>,
    last_uptime: Option<u64>,
}

impl CounterDeltas {
    /// Deltas `(rx, tx)` per interface since the previous call. After a reboot (uptime went
    /// down) the raw value is the delta; a decrease without a reboot within 32 bits is a wrap; a
    /// larger decrease is a counter reset and counts from zero. First sight of an interface gives
    /// `None`.
    pub fn update(&mut self, uptime_secs: Option<u64>, ifaces: &[Interface]) -> Vec<(String, Option<(u64, u64)>)> {
        let rebooted = matches!((self.last_uptime, uptime_secs), (Some(a), Some(b)) if b < a);
        self.last_uptime = uptime_secs.or(self.last_uptime);
        let delta = |prev: u64, cur: u64| -> u64 {
            if rebooted || cur >= prev {
                if rebooted { cur } else { cur - prev }
            } else if prev <= u64::from(u32::MAX) {
                (u64::from(u32::MAX) - prev) + cur + 1
            } else {
                cur
            }
        };
        ifaces
            .iter()
            .map(|f| {
                let cur = (f.rx_bytes.unwrap_or(0), f.tx_bytes.unwrap_or(0));
                let d = self
                    .last
                    .insert(f.name.clone(), cur)
                    .map(|prev| (delta(prev.0, cur.0), delta(prev.1, cur.1)));
                (f.name.clone(), d)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn row(pairs: &[(&str, &str)]) -> Sentence {
        let mut s = Sentence::new(crate::routeros::Kind::Re);
        for (k, v) in pairs {
            s.attrs.push(((*k).to_owned(), Bytes::copy_from_slice(v.as_bytes())));
        }
        s
    }

    #[test]
    fn registrations_of_both_packages_and_bad_values_become_warnings() {
        let rows = [
            row(&[
                ("interface", "wlan1"),
                ("mac-address", "AA:BB:CC:00:00:01"),
                ("signal-strength", "-64@HT20-7"),
                ("tx-ccq", "91"),
                ("uptime", "3d4h"),
                ("bytes", "10,20"),
            ]),
            row(&[
                ("interface", "wifi1"),
                ("mac-address", "aa:bb:cc:00:00:02"),
                ("signal", "-58"),
                ("uptime", "1d02:03:04"),
            ]),
            row(&[
                ("interface", "wlan1"),
                ("mac-address", "nope"),
                ("signal-strength", "-60"),
            ]),
            row(&[
                ("interface", "wlan1"),
                ("mac-address", "AA:BB:CC:00:00:03"),
                ("signal-strength", "garbage"),
                ("bytes", "x"),
            ]),
        ];
        let mut w = Vec::new();
        let regs = registrations(&rows, &mut w);
        assert_eq!(regs.len(), 3, "the row without a valid MAC is dropped");
        assert_eq!(
            (regs[0].signal_dbm, regs[0].tx_ccq, regs[0].uptime_secs),
            (Some(-64), Some(91), Some(3 * 86_400 + 4 * 3600))
        );
        assert_eq!((regs[0].tx_bytes, regs[0].rx_bytes), (Some(10), Some(20)));
        assert_eq!((regs[1].signal_dbm, regs[1].tx_ccq), (Some(-58), None));
        assert_eq!(regs[2].signal_dbm, None, "garbage is no signal, not 0 dBm");
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("registration row 2") && w[0].contains("dropped"));
    }

    #[test]
    fn health_temperature_v6_flat_and_v7_rows() {
        let res = row(&[("cpu-load", "12"), ("free-memory", "100"), ("total-memory", "400")]);
        let mut w = Vec::new();
        let v6 = resources(&res, &[row(&[("voltage", "24.1"), ("temperature", "41")])], &mut w);
        assert_eq!(
            (v6.cpu_load, v6.temperature_c, v6.memory_used_pct()),
            (Some(12.0), Some(41.0), Some(75.0))
        );
        let v7 = resources(
            &res,
            &[
                row(&[("name", "board-temperature1"), ("value", "35")]),
                row(&[("name", "cpu-temperature"), ("value", "41.5")]),
            ],
            &mut w,
        );
        assert_eq!(v7.temperature_c, Some(41.5), "the CPU sensor wins");
        assert!(w.is_empty());
    }

    #[test]
    fn packages_choose_the_menu() {
        let pk = |names: &[&str]| package_from_packages(&names.iter().map(|n| row(&[("name", n)])).collect::<Vec<_>>());
        assert_eq!(pk(&["routeros", "wifi-qcom"]), WirelessPackage::Wifi);
        assert_eq!(pk(&["routeros", "wifiwave2"]), WirelessPackage::Wifiwave2);
        assert_eq!(pk(&["routeros", "wireless"]), WirelessPackage::Wireless);
        assert_eq!(pk(&["routeros"]), WirelessPackage::None);
        let disabled = [row(&[("name", "wireless"), ("disabled", "true")])];
        assert_eq!(package_from_packages(&disabled), WirelessPackage::None);
    }

    #[test]
    fn rf_stats_from_the_channel_string() {
        let mut w = Vec::new();
        let v6 = rf_stats(
            "wlan1",
            &row(&[
                ("channel", "5180/20-Ceee/ac(23dBm)"),
                ("noise-floor", "-102"),
                ("registered-clients", "7"),
            ]),
            &mut w,
        );
        assert_eq!(
            (
                v6.frequency_mhz,
                v6.channel_width_mhz,
                v6.tx_power_dbm,
                v6.noise_floor_dbm,
                v6.registered_clients
            ),
            (Some(5180), Some(80), Some(23), Some(-102), Some(7))
        );
        let v7 = rf_stats(
            "wifi1",
            &row(&[("channel", "5180/ax/Ceee"), ("registered-peers", "3")]),
            &mut w,
        );
        assert_eq!(
            (v7.channel_width_mhz, v7.registered_clients, v7.noise_floor_dbm),
            (Some(80), Some(3), None)
        );
        assert!(w.is_empty());
    }

    fn iface(name: &str, rx: u64, tx: u64) -> Interface {
        Interface {
            name: name.into(),
            mac: None,
            kind: "ether".into(),
            running: true,
            rx_bytes: Some(rx),
            tx_bytes: Some(tx),
        }
    }

    #[test]
    fn counter_deltas_handle_wrap_and_reboot() {
        let mut c = CounterDeltas::default();
        assert_eq!(c.update(Some(100), &[iface("e1", 1000, 50)])[0].1, None);
        assert_eq!(c.update(Some(160), &[iface("e1", 1500, 80)])[0].1, Some((500, 30)));
        // 32-bit wrap on rx.
        let near = u64::from(u32::MAX) - 9;
        c.update(Some(220), &[iface("e1", near, 100)]);
        assert_eq!(c.update(Some(280), &[iface("e1", 5, 110)])[0].1, Some((15, 10)));
        // Reboot: uptime went down, the raw value is the delta.
        assert_eq!(c.update(Some(20), &[iface("e1", 300, 40)])[0].1, Some((300, 40)));
    }
}
