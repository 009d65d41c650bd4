//! What each menu prints: rows rendered as RouterOS renders them, per package and version.

use super::state::{DeviceState, Faults, Runtime};
use super::truth::heard;
use super::world::{Client, Device, Package, Role, World, mix, pick, unit};

/// One row: property names and values in print order.
pub type Row = Vec<(String, String)>;

/// A `!trap` to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrapReply {
    /// `=category=`.
    pub category: Option<u8>,
    /// `=message=`.
    pub message: String,
}

impl TrapReply {
    pub(crate) fn new(category: Option<u8>, message: &str) -> Self {
        Self {
            category,
            message: message.into(),
        }
    }
}

/// Formats seconds as RouterOS does (`1w2d3h4m5s`, `0s`).
pub fn fmt_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [('w', 604_800), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

fn row(pairs: &[(&str, String)]) -> Row {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// Everything a menu renderer needs.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The world.
    pub world: &'a World,
    /// The device.
    pub device: &'a Device,
    /// Its runtime facts.
    pub runtime: Runtime,
    /// Its faults.
    pub faults: &'a Faults,
    /// Simulated time, seconds.
    pub now: f64,
    /// For a CPE: its access point is switched off (`offline_until`), so it hears no AP.
    pub ap_offline: bool,
    /// Every device's state: an access point does not hear a client whose radio is switched off.
    pub states: &'a [DeviceState],
}

impl Ctx<'_> {
    /// A client's signal at this moment, as the access point hears it: the world's, less the
    /// injected fades (its access point's, and its own radio's); `None` when it is not
    /// associated, or its radio is switched off. The truth's own rule ([`heard`]).
    fn signal(&self, ap: usize, radio: usize, slot: usize, c: &Client) -> Option<i16> {
        heard(self.world, ap, radio, slot, c, self.now, &|d| self.states[d].faults())
    }

    fn uptime(&self) -> u64 {
        (self.now - self.runtime.boot_time).max(0.0) as u64
    }

    fn cpu(&self) -> u64 {
        let d = self.device;
        let base = 5.0 + 25.0 * unit(d.seed, 1, 0);
        let wave = 10.0 * (self.now / 86_400.0 * std::f64::consts::TAU + unit(d.seed, 2, 0) * 6.0).sin();
        let minute = (self.now / 60.0) as u64;
        let spike = if pick(d.seed ^ minute, 3, 0, 200) == 0 {
            60.0
        } else {
            0.0
        };
        let noise = pick(d.seed ^ minute, 4, 0, 7) as f64;
        (base + wave + noise + spike).clamp(0.0, 100.0) as u64
    }

    /// Monotonic counter: the integral of a diurnal rate since boot.
    fn counter(&self, iface: usize, which: u64) -> u64 {
        let r0 = 20_000.0 + 2_000_000.0 * unit(self.device.seed, 20 + iface as u64, which);
        let up = self.uptime() as f64;
        let w = std::f64::consts::TAU / 86_400.0;
        (r0 * up + r0 * 0.5 / w * (1.0 - (w * up).cos())) as u64
    }
}

/// Rows of `menu` (a path without the verb), or the trap RouterOS answers with.
pub fn print(ctx: &Ctx<'_>, menu: &str) -> Result<Vec<Row>, TrapReply> {
    let d = ctx.device;
    let v = d.version;
    let package = ctx.runtime.package;
    let pkg_menu = package.menu();
    match menu {
        "/system/resource" => {
            let total_mem: u64 = if d.role == Role::Router { 4 << 30 } else { 128 << 20 };
            let free_mem = (total_mem as f64 * (0.35 + 0.2 * unit(d.seed, 5, (ctx.now / 600.0) as u64))) as u64;
            let total_hdd: u64 = if d.role == Role::Router { 128 << 20 } else { 16 << 20 };
            let free_hdd = (total_hdd as f64 * (0.3 + 0.5 * unit(d.seed, 6, 0))) as u64;
            Ok(vec![row(&[
                ("uptime", fmt_duration(ctx.uptime())),
                ("version", v.to_string()),
                ("build-time", "2025-01-15 10:00:00".into()),
                ("free-memory", free_mem.to_string()),
                ("total-memory", total_mem.to_string()),
                (
                    "cpu",
                    if d.role == Role::Router {
                        "ARM64".into()
                    } else {
                        "MIPS 74Kc V4.12".into()
                    },
                ),
                (
                    "cpu-count",
                    if d.role == Role::Router { "4".into() } else { "1".into() },
                ),
                ("cpu-load", ctx.cpu().to_string()),
                ("free-hdd-space", free_hdd.to_string()),
                ("total-hdd-space", total_hdd.to_string()),
                (
                    "architecture-name",
                    if d.role == Role::Router {
                        "arm64".into()
                    } else {
                        "mipsbe".into()
                    },
                ),
                ("board-name", d.board.clone()),
                ("platform", "MikroTik".into()),
            ])])
        }
        "/system/routerboard" => Ok(vec![row(&[
            ("routerboard", "true".into()),
            ("model", d.board.clone()),
            ("serial-number", d.serial.clone()),
            ("firmware-type", "qca9550L".into()),
            ("current-firmware", format!("{}.{}.{}", v.major, v.minor, v.patch)),
            ("upgrade-firmware", format!("{}.{}.{}", v.major, v.minor, v.patch)),
        ])]),
        "/system/identity" => Ok(vec![row(&[("name", d.name.clone())])]),
        "/system/health" => {
            let temp = 35 + ctx.cpu() / 4;
            if v.major == 6 {
                Ok(vec![row(&[
                    ("voltage", "24.1".into()),
                    ("temperature", temp.to_string()),
                ])])
            } else {
                Ok(vec![
                    row(&[
                        ("name", "cpu-temperature".into()),
                        ("value", temp.to_string()),
                        ("type", "C".into()),
                    ]),
                    row(&[
                        ("name", "board-temperature1".into()),
                        ("value", (temp - 6).to_string()),
                        ("type", "C".into()),
                    ]),
                    row(&[
                        ("name", "voltage".into()),
                        ("value", "24.1".into()),
                        ("type", "V".into()),
                    ]),
                ])
            }
        }
        "/system/package" => {
            let mut rows = vec![row(&[
                (".id", "*1".into()),
                ("name", "routeros".into()),
                ("version", format!("{}.{}.{}", v.major, v.minor, v.patch)),
                ("disabled", "false".into()),
            ])];
            if let Some(name) = package.package_name() {
                rows.push(row(&[
                    (".id", "*2".into()),
                    ("name", name.into()),
                    ("version", format!("{}.{}.{}", v.major, v.minor, v.patch)),
                    ("disabled", "false".into()),
                ]));
            }
            Ok(rows)
        }
        "/system/package/update" => Ok(vec![row(&[
            (
                "channel",
                if v.long_term {
                    "long-term".into()
                } else {
                    "stable".into()
                },
            ),
            ("installed-version", format!("{}.{}.{}", v.major, v.minor, v.patch)),
            ("status", "ERROR: could not resolve dns name".into()),
        ])]),
        "/interface" => Ok(d
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut r = row(&[
                    (".id", format!("*{:X}", i + 1)),
                    ("name", f.name.clone()),
                    ("type", f.kind.clone()),
                    ("mtu", "1500".into()),
                    ("mac-address", f.mac.to_string().to_uppercase()),
                    ("running", "true".into()),
                    ("disabled", "false".into()),
                    ("rx-byte", ctx.counter(i, 0).to_string()),
                    ("tx-byte", ctx.counter(i, 1).to_string()),
                    ("rx-packet", (ctx.counter(i, 0) / 900).to_string()),
                    ("tx-packet", (ctx.counter(i, 1) / 900).to_string()),
                    ("rx-error", "0".into()),
                    ("tx-error", "0".into()),
                    ("rx-drop", "0".into()),
                    ("tx-drop", "0".into()),
                ]);
                if ctx.faults.long_comment_bytes > 0 {
                    r.push(("comment".into(), "x".repeat(ctx.faults.long_comment_bytes)));
                }
                r
            })
            .collect()),
        "/ip/address" => Ok(vec![row(&[
            (".id", "*1".into()),
            (
                "address",
                format!("10.{}.{}.{}/24", d.site % 250, d.index / 250 % 250, d.index % 250 + 2),
            ),
            ("network", format!("10.{}.{}.0", d.site % 250, d.index / 250 % 250)),
            ("interface", "ether1".into()),
            ("disabled", "false".into()),
        ])]),
        "/ip/neighbor" => Ok(ctx
            .world
            .devices
            .iter()
            .filter(|n| n.site == d.site && n.index != d.index && n.role != Role::Cpe && d.role != Role::Cpe)
            .map(|n| {
                row(&[
                    ("interface", "ether1".into()),
                    ("mac-address", n.interfaces[0].mac.to_string().to_uppercase()),
                    ("identity", n.name.clone()),
                    ("platform", "MikroTik".into()),
                    ("version", n.version.to_string()),
                    ("board", n.board.clone()),
                ])
            })
            .collect()),
        m if Some(m) == pkg_menu => Ok(radios(ctx, package)),
        m if pkg_menu.is_some_and(|p| m.strip_prefix(p) == Some("/registration-table")) => {
            Ok(registrations(ctx, package))
        }
        _ => Err(TrapReply::new(Some(0), "no such command prefix")),
    }
}

/// Whether `menu` exists on the device (so an unknown verb is "no such command", not "prefix").
pub fn menu_exists(ctx: &Ctx<'_>, menu: &str) -> bool {
    print(ctx, menu).is_ok()
}

fn radio_ifaces(ctx: &Ctx<'_>) -> Vec<(usize, String)> {
    let d = ctx.device;
    if d.role == Role::Cpe {
        return d
            .interfaces
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind != "ether")
            .map(|(i, f)| (i, f.name.clone()))
            .collect();
    }
    d.radios
        .iter()
        .map(|r| (r.iface, d.interfaces[r.iface].name.clone()))
        .collect()
}

fn radios(ctx: &Ctx<'_>, package: Package) -> Vec<Row> {
    radio_ifaces(ctx)
        .into_iter()
        .enumerate()
        .map(|(n, (i, name))| {
            let f = &ctx.device.interfaces[i];
            let freq = ctx.device.radios.get(n).map_or(5180, |r| r.frequency_mhz);
            let mode = if ctx.device.role == Role::Cpe {
                "station"
            } else {
                "ap-bridge"
            };
            match package {
                Package::Wireless => row(&[
                    (".id", format!("*{:X}", i + 1)),
                    ("name", name),
                    ("mac-address", f.mac.to_string().to_uppercase()),
                    ("mode", mode.into()),
                    ("band", "5ghz-a/n/ac".into()),
                    ("frequency", freq.to_string()),
                    ("ssid", format!("site{}", ctx.device.site)),
                    ("running", "true".into()),
                    ("disabled", "false".into()),
                ]),
                _ => row(&[
                    (".id", format!("*{:X}", i + 1)),
                    ("name", name),
                    ("mac-address", f.mac.to_string().to_uppercase()),
                    (
                        "configuration.mode",
                        if mode == "station" {
                            "station".into()
                        } else {
                            "ap".into()
                        },
                    ),
                    ("channel.frequency", freq.to_string()),
                    ("configuration.ssid", format!("site{}", ctx.device.site)),
                    ("running", "true".into()),
                    ("disabled", "false".into()),
                ]),
            }
        })
        .collect()
}

/// The signal a CPE sees from its AP (its own registration table shows the AP).
fn cpe_view(ctx: &Ctx<'_>) -> Option<(String, String, i16, u32)> {
    if ctx.ap_offline {
        return None;
    }
    let (ap, r) = ctx.device.ap?;
    let ap_dev = &ctx.world.devices[ap];
    let radio = &ap_dev.radios[r];
    let slot = radio.clients.iter().position(|c| c.cpe == Some(ctx.device.index))?;
    let c = &radio.clients[slot];
    let s = ctx.signal(ap, r, slot, c)?;
    let iface = radio_ifaces(ctx).first()?.1.clone();
    Some((
        iface,
        ap_dev.interfaces[radio.iface].mac.to_string().to_uppercase(),
        s - 1,
        c.distance_m,
    ))
}

fn registrations(ctx: &Ctx<'_>, package: Package) -> Vec<Row> {
    let d = ctx.device;
    let mut entries: Vec<(String, String, i16, u32, u64)> = Vec::new();
    if d.role == Role::Cpe {
        if let Some((iface, mac, s, dist)) = cpe_view(ctx) {
            entries.push((iface, mac, s, dist, 0));
        }
    } else {
        for (r, radio) in d.radios.iter().enumerate() {
            let iface = d.interfaces[radio.iface].name.clone();
            for (slot, c) in radio.clients.iter().enumerate() {
                if let Some(s) = ctx.signal(d.index, r, slot, c) {
                    entries.push((
                        iface.clone(),
                        c.mac.to_string().to_uppercase(),
                        s,
                        c.distance_m,
                        (r * 64 + slot) as u64,
                    ));
                }
            }
        }
    }
    let noise_floor = -100 - pick(d.seed, 30, 0, 6) as i16;
    entries
        .into_iter()
        .enumerate()
        .map(|(n, (iface, mac, s, dist, h))| {
            let snr = s - noise_floor;
            let rate_mbps = match snr {
                x if x >= 30 => 866.7,
                x if x >= 25 => 650.0,
                x if x >= 20 => 390.0,
                x if x >= 15 => 195.0,
                _ => 58.5,
            };
            let up = (ctx.now.max(0.0) as u64 % 604_800) + 60;
            let tx_bytes = (up as f64 * 40_000.0 * unit(d.seed, h, 40)) as u64;
            let rx_bytes = (up as f64 * 9_000.0 * unit(d.seed, h, 41)) as u64;
            let mut r = row(&[
                (".id", format!("*{:X}", n + 1)),
                ("interface", iface),
                ("mac-address", mac),
            ]);
            match package {
                Package::Wireless => {
                    let ccq =
                        (40 + snr.clamp(0, 40) + pick(d.seed ^ (ctx.now / 60.0) as u64, h, 42, 20) as i16).min(100);
                    r.extend(row(&[
                        ("ap", "false".into()),
                        ("signal-strength", format!("{s}@HT20-7")),
                        ("signal-to-noise", snr.to_string()),
                        ("tx-signal-strength", (s - 2).to_string()),
                        ("tx-ccq", ccq.to_string()),
                        ("tx-rate", format!("{rate_mbps}Mbps-80MHz/2S/SGI")),
                        ("rx-rate", format!("{}Mbps-80MHz/2S", rate_mbps * 0.9)),
                        ("uptime", fmt_duration(up)),
                        ("last-activity", "10ms".into()),
                        ("distance", dist.to_string()),
                        (
                            "last-ip",
                            format!("100.64.{}.{}", (mix(h) % 250) as u8, (h % 250) as u8 + 2),
                        ),
                        ("bytes", format!("{tx_bytes},{rx_bytes}")),
                        ("packets", format!("{},{}", tx_bytes / 1200, rx_bytes / 600)),
                    ]));
                }
                _ => r.extend(row(&[
                    ("signal", s.to_string()),
                    ("tx-rate", format!("{rate_mbps}Mbps-80MHz/2S/SGI")),
                    ("rx-rate", format!("{}Mbps-80MHz/2S", rate_mbps * 0.9)),
                    ("uptime", fmt_duration(up)),
                    ("last-activity", "20ms".into()),
                    ("band", "5ghz-ax".into()),
                    ("ssid", format!("site{}", d.site)),
                    ("bytes", format!("{tx_bytes},{rx_bytes}")),
                    ("packets", format!("{},{}", tx_bytes / 1200, rx_bytes / 600)),
                ])),
            }
            r
        })
        .collect()
}

/// `monitor =numbers=<radio> =once=` of the package menu.
pub fn monitor(ctx: &Ctx<'_>, menu: &str, numbers: &str) -> Result<Row, TrapReply> {
    let package = ctx.runtime.package;
    if package.menu() != Some(menu) {
        return Err(TrapReply::new(Some(0), "no such command prefix"));
    }
    let ifaces = radio_ifaces(ctx);
    let Some(pos) = ifaces
        .iter()
        .position(|(i, name)| name == numbers || format!("*{:X}", i + 1) == numbers)
    else {
        return Err(TrapReply::new(Some(1), "no such item"));
    };
    let d = ctx.device;
    let freq = d.radios.get(pos).map_or(5180, |r| r.frequency_mhz);
    let clients = if d.role == Role::Cpe {
        u32::from(cpe_view(ctx).is_some())
    } else {
        let r = &d.radios[pos];
        r.clients
            .iter()
            .enumerate()
            .filter(|(slot, c)| ctx.signal(d.index, pos, *slot, c).is_some())
            .count() as u32
    };
    let noise_floor = -100 - pick(d.seed, 30, 0, 6) as i16;
    Ok(match package {
        Package::Wireless => row(&[
            (
                "status",
                if d.role == Role::Cpe {
                    "connected-to-ess".into()
                } else {
                    "running-ap".into()
                },
            ),
            ("channel", format!("{freq}/20-Ceee/ac(23dBm)")),
            ("noise-floor", noise_floor.to_string()),
            (
                "overall-tx-ccq",
                (70 + pick(d.seed, 31, (ctx.now / 60.0) as u64, 25)).to_string(),
            ),
            ("registered-clients", clients.to_string()),
            ("authenticated-clients", clients.to_string()),
        ]),
        _ => row(&[
            ("state", "running".into()),
            ("channel", format!("{freq}/ax/Ceee")),
            ("registered-peers", clients.to_string()),
            ("authorized-peers", clients.to_string()),
        ]),
    })
}

/// Evaluates RouterOS query words against a row (a stack machine; what remains is ANDed).
pub fn matches(row: &Row, queries: &[String]) -> Result<bool, TrapReply> {
    let get = |name: &str| row.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let cmp = |name: &str, value: &str| -> Option<std::cmp::Ordering> {
        let have = get(name)?;
        Some(match (have.parse::<f64>(), value.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b)?,
            _ => have.cmp(value),
        })
    };
    let bad = || TrapReply::new(Some(1), "invalid query");
    let mut stack: Vec<bool> = Vec::new();
    for q in queries {
        if let Some(ops) = q.strip_prefix('#') {
            for op in ops.chars() {
                match op {
                    '!' => {
                        let top = stack.pop().ok_or_else(bad)?;
                        stack.push(!top);
                    }
                    '&' | '|' => {
                        let (b, a) = (stack.pop().ok_or_else(bad)?, stack.pop().ok_or_else(bad)?);
                        stack.push(if op == '&' { a && b } else { a || b });
                    }
                    '.' => {
                        let top = *stack.last().ok_or_else(bad)?;
                        stack.push(top);
                    }
                    n if n.is_ascii_digit() => {
                        let i = n.to_digit(10).expect("digit") as usize;
                        let v = *stack.get(i).ok_or_else(bad)?;
                        stack.push(v);
                    }
                    _ => return Err(bad()),
                }
            }
        } else if let Some(rest) = q.strip_prefix('<') {
            let (n, v) = rest.split_once('=').ok_or_else(bad)?;
            stack.push(cmp(n, v) == Some(std::cmp::Ordering::Less));
        } else if let Some(rest) = q.strip_prefix('>') {
            let (n, v) = rest.split_once('=').ok_or_else(bad)?;
            stack.push(cmp(n, v) == Some(std::cmp::Ordering::Greater));
        } else if let Some(name) = q.strip_prefix('-') {
            stack.push(get(name).is_none());
        } else {
            let q = q.strip_prefix('=').unwrap_or(q);
            match q.split_once('=') {
                Some((n, v)) => stack.push(get(n) == Some(v)),
                None => stack.push(get(q).is_some()),
            }
        }
    }
    Ok(stack.into_iter().all(|b| b))
}

/// Keeps only the requested properties, in the requested order.
pub fn project(row: Row, props: Option<&[String]>) -> Row {
    match props {
        None => row,
        Some(props) => props
            .iter()
            .filter_map(|p| row.iter().find(|(k, _)| k == p).cloned())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_like_routeros_and_parse_back() {
        assert_eq!(fmt_duration(0), "0s");
        assert_eq!(fmt_duration(694_925), "1w1d1h2m5s");
        assert_eq!(fmt_duration(3_600), "1h");
        for s in [1u64, 59, 61, 86_399, 1_000_000] {
            let back = tod_core::routeros::parse_duration(&fmt_duration(s)).unwrap().unwrap();
            assert_eq!(back.as_secs(), s);
        }
    }

    fn r(pairs: &[(&str, &str)]) -> Row {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn queries_are_a_stack_machine() {
        let ether = r(&[("name", "ether1"), ("type", "ether"), ("mtu", "1500")]);
        let vlan = r(&[("name", "vlan9"), ("type", "vlan"), ("mtu", "1496")]);
        let q = |qs: &[&str]| qs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let or = q(&["type=ether", "type=vlan", "#|"]);
        assert!(matches(&ether, &or).unwrap() && matches(&vlan, &or).unwrap());
        assert!(!matches(&vlan, &q(&["type=ether"])).unwrap());
        assert!(matches(&vlan, &q(&["type=ether", "#!"])).unwrap());
        assert!(matches(&ether, &q(&[">mtu=1499"])).unwrap());
        assert!(!matches(&vlan, &q(&[">mtu=1499"])).unwrap());
        assert!(matches(&vlan, &q(&["<mtu=1499", "name"])).unwrap());
        assert!(matches(&ether, &q(&["-comment", "=type=ether"])).unwrap());
        assert!(matches(&ether, &q(&["#&"])).is_err());
        assert!(matches(&ether, &[]).unwrap());
        assert_eq!(
            project(ether.clone(), Some(&["type".into(), "nope".into(), "name".into()])),
            r(&[("type", "ether"), ("name", "ether1")])
        );
    }
}
