//! Builds the example plugins (`plugins/guest`) for `wasm32-unknown-unknown` once per test
//! process, or says why it cannot (the target is missing): the tests then skip with a message,
//! unless `TOD_REQUIRE_WASM` makes the plugins mandatory (`.ci/run` sets it).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn build() -> Result<PathBuf, String> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("wasm-plugins");
    tod_plugin_host::build_example_plugins(&target_dir)
}

/// The bytes of example plugin `name` (e.g. `"aim"`), or `None` after a skip message.
pub fn plugin(name: &str) -> Option<Vec<u8>> {
    match BUILT.get_or_init(build) {
        Ok(dir) => {
            let file = dir.join(format!("tod_plugin_{}.wasm", name.replace('-', "_")));
            Some(std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
        }
        Err(why) => {
            if std::env::var_os("TOD_REQUIRE_WASM").is_some() {
                panic!("the example plugins are required but did not build:\n{why}");
            }
            eprintln!("SKIP: the example plugins did not build (rustup target add wasm32-unknown-unknown):\n{why}");
            None
        }
    }
}
