//! A plugin that misbehaves on purpose, as its configuration's `mode` says: `loop` (never
//! returns), `grow` (allocates until it is stopped), `trap` (panics), `flood` (returns a million
//! findings), `nan` (a value that is not a number), `decline` (returns an error value),
//! `log` (logs a thousand lines), anything else behaves. The host's tests use it.

use tod_plugin_sdk::*;

struct Hostile;

impl Plugin for Hostile {
    fn metadata() -> Metadata {
        Metadata {
            name: "Hostile".into(),
            version: "6.6.6".into(),
            inputs: vec![Input::Devices],
        }
    }

    fn evaluate(snapshot: Snapshot) -> Result<Vec<Finding>, String> {
        let site = || Subject::Site(Id { hi: 0, lo: 1 });
        match config_str("mode").as_deref() {
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("grow") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("trap") => panic!("hostile plugin panics"),
            Some("flood") => Ok((0..1_000_000)
                .map(|i| finding(site(), Severity::Info, "flood", Some(f64::from(i))))
                .collect()),
            Some("nan") => Ok(vec![finding(site(), Severity::Info, "x", Some(f64::NAN))]),
            Some("decline") => Err("no data yet".into()),
            Some("log") => {
                for i in 0..1000 {
                    log(LogLevel::Info, &format!("line {i}"));
                }
                Ok(Vec::new())
            }
            _ => Ok(vec![finding(
                site(),
                Severity::Info,
                format!("{} devices seen at {}", snapshot.devices.len(), now_ms()),
                Some(snapshot.devices.len() as f64),
            )]),
        }
    }
}

export_plugin!(Hostile);
