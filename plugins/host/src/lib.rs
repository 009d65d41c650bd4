//! tod-plugin-host: runs TOD alert plugins — WebAssembly components of the `tod:plugin` world
//! (`plugins/wit`) — as tod-core [`Rule`]s, so a plugin's findings get exactly the lifecycle of
//! the built-in rules (hysteresis, flapping, maintenance windows, notifications).
//!
//! - **Sandbox.** The component model on wasmtime, with no WASI: a plugin can import only the
//!   three read-only host functions of the world (clock, log, its own configuration). A component
//!   that imports anything else is refused when it is loaded, with the import named.
//! - **Bounds.** Every call runs on a fuel budget (CPU) and a wall-clock deadline (epoch
//!   interruption, 10 ms resolution) with a memory cap; output is bounded
//!   (findings per call, message and evidence sizes, finite values); logs are truncated and
//!   counted.
//! - **Failure.** A trap, an exhausted budget, a memory cap reached or oversized output disables
//!   the plugin and records why ([`Status::Disabled`]); the host never panics on plugin
//!   behaviour, and other plugins keep running.
//! - **Speed.** Components are compiled once per content (an in-memory cache by SHA-256); an
//!   instance is kept and reused between calls; a snapshot can be converted once
//!   ([`Prepared`]) and handed to several plugins.
//!
//! Plugins may be given as components, or as core modules built by `wit-bindgen` for
//! `wasm32-unknown-unknown`, which are turned into components here (`wit-component`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tod_core::RuleId;
use tod_core::alerts::{Finding, Hysteresis, Rule, RuleError, Snapshot};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};

mod convert;

pub use convert::Prepared;

/// The generated bindings of the `tod:plugin@0.2.0` world (the current one: columnar snapshot).
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/tod-plugin.wit",
        world: "plugin",
    });
}

/// The generated bindings of the `tod:plugin@0.1.0` world, still served: its plugins get the
/// snapshot as rows.
mod bindings_v1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0/tod-plugin.wit",
        world: "plugin",
    });
}

use bindings::tod::plugin::types as wit;
use bindings_v1::tod::plugin::types as v1;

/// Limits applied to every plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted upload, bytes.
    pub max_component_bytes: usize,
    /// Fuel per call (roughly one unit per WebAssembly instruction).
    pub fuel_per_call: u64,
    /// Wall-clock time per call (to the next 10 ms): bounds what fuel does not count, such as
    /// time spent in host calls or a host that is itself slowed down.
    pub time_per_call: std::time::Duration,
    /// Linear memory cap per instance, bytes.
    pub max_memory_bytes: usize,
    /// Findings per call.
    pub max_findings: usize,
    /// Characters per message.
    pub max_message_chars: usize,
    /// Evidence pairs per finding.
    pub max_evidence: usize,
    /// Log lines kept per call (the rest are counted).
    pub max_log_lines: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_component_bytes: 8 * 1024 * 1024,
            fuel_per_call: 200_000_000,
            time_per_call: std::time::Duration::from_secs(2),
            max_memory_bytes: 64 * 1024 * 1024,
            max_findings: 10_000,
            max_message_chars: 2_000,
            max_evidence: 32,
            max_log_lines: 20,
        }
    }
}

/// Why a plugin could not be loaded or was disabled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The upload is over the size limit.
    #[error("the component is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a valid component or module, or not one of the `tod:plugin` world.
    #[error("not a TOD plugin: {0}")]
    Invalid(String),
    /// It imports something the host does not provide.
    #[error("the plugin imports something the host does not provide: {0}")]
    Import(String),
    /// A call failed: trap, fuel, memory, or output over the limits.
    #[error("{0}")]
    Failed(String),
}

/// A plugin's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Runs.
    Enabled,
    /// Stopped after a failure; the reason is what an operator reads.
    Disabled {
        /// Why.
        reason: String,
    },
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Whether it reads devices, links, sectors, history.
    pub inputs: Inputs,
}

/// The snapshot parts a plugin reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Devices and their metrics.
    pub devices: bool,
    /// Links.
    pub links: bool,
    /// Sector aggregates.
    pub sectors: bool,
    /// Signal history.
    pub history: bool,
}

impl Inputs {
    /// Everything.
    pub const ALL: Self = Self {
        devices: true,
        links: true,
        sectors: true,
        history: true,
    };
}

/// The per-store data: what host functions see.
struct State {
    limits: StoreLimits,
    now_ms: i64,
    config: Vec<(String, String)>,
    logs: u32,
    max_logs: u32,
    name: String,
}

impl State {
    /// A plugin's log line, counted, capped and truncated.
    fn log_line(&mut self, level: tracing::Level, message: &str) {
        self.logs = self.logs.saturating_add(1);
        if self.logs > self.max_logs {
            return;
        }
        let message: String = message.chars().take(500).collect();
        let plugin = self.name.as_str();
        match level {
            tracing::Level::DEBUG => tracing::debug!(plugin, "{message}"),
            tracing::Level::INFO => tracing::info!(plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(plugin, "{message}"),
            _ => tracing::error!(plugin, "{message}"),
        }
    }
}

impl wit::Host for State {}

impl bindings::tod::plugin::host::Host for State {
    fn now_ms(&mut self) -> i64 {
        self.now_ms
    }

    fn log(&mut self, level: wit::LogLevel, message: String) {
        let level = match level {
            wit::LogLevel::Debug => tracing::Level::DEBUG,
            wit::LogLevel::Info => tracing::Level::INFO,
            wit::LogLevel::Warn => tracing::Level::WARN,
            wit::LogLevel::Error => tracing::Level::ERROR,
        };
        self.log_line(level, &message);
    }

    fn config(&mut self) -> Vec<(String, String)> {
        self.config.clone()
    }
}

impl v1::Host for State {}

impl bindings_v1::tod::plugin::host::Host for State {
    fn now_ms(&mut self) -> i64 {
        self.now_ms
    }

    fn log(&mut self, level: v1::LogLevel, message: String) {
        let level = match level {
            v1::LogLevel::Debug => tracing::Level::DEBUG,
            v1::LogLevel::Info => tracing::Level::INFO,
            v1::LogLevel::Warn => tracing::Level::WARN,
            v1::LogLevel::Error => tracing::Level::ERROR,
        };
        self.log_line(level, &message);
    }

    fn config(&mut self) -> Vec<(String, String)> {
        self.config.clone()
    }
}

/// Compiles and instantiates plugins; one per process is enough.
#[derive(Clone)]
pub struct PluginHost {
    engine: Engine,
    linker: Arc<Linker<State>>,
    limits: Limits,
    cache: Arc<Mutex<HashMap<[u8; 32], Pre>>>,
}

/// A compiled plugin, linked and type-checked against the world it was built for.
#[derive(Clone)]
enum Pre {
    /// `tod:plugin@0.2.0`.
    Current(bindings::PluginPre<State>),
    /// `tod:plugin@0.1.0`.
    V1(bindings_v1::PluginPre<State>),
}

/// A live instance of either world.
enum Bindings {
    Current(bindings::Plugin),
    V1(bindings_v1::Plugin),
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// A host with these limits.
    pub fn new(limits: Limits) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| PluginError::Invalid(format!("engine: {e}")))?;
        // The clock of the time limit: one epoch per tick, until the last handle on the engine
        // is gone.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("tod-plugin-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PluginError::Invalid(format!("epoch thread: {e}")))?;
        let mut linker = Linker::new(&engine);
        bindings::Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Invalid(format!("linker: {e}")))?;
        bindings_v1::Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Invalid(format!("linker: {e}")))?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            limits,
            cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How many compiled components the cache holds.
    pub fn cached_components(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.len())
    }

    /// Validates and compiles `bytes` (a component, or a `wit-bindgen` core module), cached by
    /// content. Imports are checked here: a plugin that needs anything the host does not offer
    /// is refused now, not at its first evaluation.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, PluginError> {
        if bytes.len() > self.limits.max_component_bytes {
            return Err(PluginError::TooLarge {
                size: bytes.len(),
                limit: self.limits.max_component_bytes,
            });
        }
        let key = sha256(bytes);
        if let Some(pre) = self.cache.lock().map_err(poisoned)?.get(&key) {
            return Ok(Compiled {
                pre: pre.clone(),
                sha256: key,
            });
        }
        let component_bytes = componentize(bytes)?;
        let component =
            Component::new(&self.engine, &component_bytes).map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
        let linked = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Import(format!("{e:#}")))?;
        // The world is told by the exports' types: the current one first, then the older.
        let pre = match bindings::PluginPre::new(linked.clone()) {
            Ok(pre) => Pre::Current(pre),
            Err(current) => match bindings_v1::PluginPre::new(linked) {
                Ok(pre) => Pre::V1(pre),
                Err(_) => {
                    return Err(PluginError::Invalid(format!(
                        "its exports match neither tod:plugin@0.2.0 nor @0.1.0: {current:#}"
                    )));
                }
            },
        };
        self.cache.lock().map_err(poisoned)?.insert(key, pre.clone());
        Ok(Compiled { pre, sha256: key })
    }

    /// Instantiates a compiled plugin as rule `id` with `hysteresis` and its own configuration,
    /// and asks it for its metadata (under the same bounds as an evaluation).
    pub fn instantiate(
        &self,
        compiled: &Compiled,
        id: RuleId,
        hysteresis: Hysteresis,
        config: Vec<(String, String)>,
    ) -> Result<WasmRule, PluginError> {
        let state = State {
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.max_memory_bytes)
                .instances(4)
                .tables(8)
                .memories(2)
                .trap_on_grow_failure(true)
                .build(),
            now_ms: 0,
            config,
            logs: 0,
            max_logs: self.limits.max_log_lines,
            name: String::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|e| PluginError::Failed(e.to_string()))?;
        store.epoch_deadline_trap();
        store.set_epoch_deadline(epoch_ticks(&self.limits));
        let instantiated = |e: wasmtime::Error| PluginError::Failed(format!("instantiation failed: {}", describe(&e)));
        let described = |e: wasmtime::Error| PluginError::Failed(format!("metadata failed: {}", describe(&e)));
        let mut inputs = Inputs::default();
        let (bindings, meta) = match &compiled.pre {
            Pre::Current(pre) => {
                let bindings = pre.instantiate(&mut store).map_err(instantiated)?;
                let meta = bindings.call_metadata(&mut store).map_err(described)?;
                for i in &meta.inputs {
                    match i {
                        wit::Input::Devices => inputs.devices = true,
                        wit::Input::Links => inputs.links = true,
                        wit::Input::Sectors => inputs.sectors = true,
                        wit::Input::History => inputs.history = true,
                    }
                }
                (Bindings::Current(bindings), (meta.name, meta.version))
            }
            Pre::V1(pre) => {
                let bindings = pre.instantiate(&mut store).map_err(instantiated)?;
                let meta = bindings.call_metadata(&mut store).map_err(described)?;
                for i in &meta.inputs {
                    match i {
                        v1::Input::Devices => inputs.devices = true,
                        v1::Input::Links => inputs.links = true,
                        v1::Input::Sectors => inputs.sectors = true,
                        v1::Input::History => inputs.history = true,
                    }
                }
                (Bindings::V1(bindings), (meta.name, meta.version))
            }
        };
        let (name, version) = meta;
        let metadata = Metadata {
            name: name.chars().take(255).collect(),
            version: version.chars().take(64).collect(),
            inputs,
        };
        store.data_mut().name = metadata.name.clone();
        Ok(WasmRule {
            id,
            hysteresis,
            metadata,
            limits: self.limits,
            inner: Mutex::new(Inner {
                store,
                bindings,
                status: Status::Enabled,
            }),
        })
    }
}

/// A validated, compiled plugin.
#[derive(Clone)]
pub struct Compiled {
    pre: Pre,
    sha256: [u8; 32],
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("sha256", &self.sha256_hex())
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// The `tod:plugin` world version the plugin was built for: "0.2.0" or "0.1.0".
    pub fn world_version(&self) -> &'static str {
        match self.pre {
            Pre::Current(_) => "0.2.0",
            Pre::V1(_) => "0.1.0",
        }
    }

    /// The SHA-256 of the uploaded bytes, hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

struct Inner {
    store: Store<State>,
    bindings: Bindings,
    status: Status,
}

/// A plugin instance, as a tod-core [`Rule`]. Calls are serialised on its one instance.
pub struct WasmRule {
    id: RuleId,
    hysteresis: Hysteresis,
    metadata: Metadata,
    limits: Limits,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for WasmRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRule")
            .field("id", &self.id)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl WasmRule {
    /// What the plugin said about itself.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Enabled, or disabled and why.
    pub fn status(&self) -> Status {
        self.inner
            .lock()
            .map(|i| i.status.clone())
            .unwrap_or_else(|_| Status::Disabled {
                reason: "internal error: poisoned lock".into(),
            })
    }

    /// Judges a snapshot converted beforehand (one conversion for several plugins).
    pub fn evaluate_prepared(&self, prepared: &Prepared) -> Result<Vec<Finding>, RuleError> {
        let fail = |reason: String| RuleError { rule: self.id, reason };
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| fail("internal error: poisoned lock".into()))?;
        if let Status::Disabled { reason } = &inner.status {
            return Err(fail(format!("disabled: {reason}")));
        }
        let Inner {
            store,
            bindings,
            status,
        } = &mut *inner;
        let outcome = run(store, bindings, prepared, &self.limits);
        match outcome {
            Ok(findings) => Ok(findings),
            Err(Outcome::Declined(msg)) => Err(fail(format!("the plugin could not judge: {msg}"))),
            Err(Outcome::Broken(reason)) => {
                tracing::warn!(plugin = %self.metadata.name, %reason, "plugin disabled");
                *status = Status::Disabled { reason: reason.clone() };
                Err(fail(reason))
            }
        }
    }

    /// Converts `snapshot` with this plugin's inputs and judges it.
    pub fn evaluate_snapshot(&self, snapshot: &Snapshot) -> Result<Vec<Finding>, RuleError> {
        self.evaluate_prepared(&Prepared::new(snapshot, self.metadata.inputs))
    }
}

enum Outcome {
    /// The plugin returned an error value: this pass has no verdict; it stays enabled.
    Declined(String),
    /// A trap, a bound, or bad output: the plugin is disabled.
    Broken(String),
}

fn run(
    store: &mut Store<State>,
    bindings: &Bindings,
    prepared: &Prepared,
    limits: &Limits,
) -> Result<Vec<Finding>, Outcome> {
    store
        .set_fuel(limits.fuel_per_call)
        .map_err(|e| Outcome::Broken(e.to_string()))?;
    store.set_epoch_deadline(epoch_ticks(limits));
    store.data_mut().now_ms = prepared.columns.at_ms;
    store.data_mut().logs = 0;
    let broken = |e: wasmtime::Error| Outcome::Broken(describe(&e));
    let result = match bindings {
        Bindings::Current(b) => b.call_evaluate(&mut *store, &prepared.columns).map_err(broken)?,
        Bindings::V1(b) => b
            .call_evaluate(&mut *store, prepared.rows())
            .map_err(broken)?
            .map(|findings| findings.into_iter().map(convert::finding_v1).collect()),
    };
    let findings = result.map_err(|m| Outcome::Declined(m.chars().take(limits.max_message_chars).collect()))?;
    if findings.len() > limits.max_findings {
        return Err(Outcome::Broken(format!(
            "returned {} findings in one call; the limit is {}",
            findings.len(),
            limits.max_findings
        )));
    }
    findings
        .into_iter()
        .map(|f| convert::finding(f, limits).map_err(Outcome::Broken))
        .collect()
}

impl Rule for WasmRule {
    fn id(&self) -> RuleId {
        self.id
    }

    fn name(&self) -> &str {
        &self.metadata.name
    }

    fn hysteresis(&self) -> Hysteresis {
        self.hysteresis
    }

    fn evaluate(&self, snapshot: &Snapshot) -> Result<Vec<Finding>, RuleError> {
        self.evaluate_snapshot(snapshot)
    }
}

/// How often the engine's epoch advances: the resolution of the time limit.
const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// The time limit in epoch ticks (at least one).
fn epoch_ticks(limits: &Limits) -> u64 {
    let tick = EPOCH_TICK.as_millis().max(1);
    u64::try_from(limits.time_per_call.as_millis().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What went wrong in a call, in an operator's words.
fn describe(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::OutOfFuel => "it ran out of fuel (its CPU budget per call)".into(),
            wasmtime::Trap::Interrupt => "it ran past its time limit (wall clock per call)".into(),
            wasmtime::Trap::UnreachableCodeReached => "it trapped (unreachable code: a panic or an abort)".into(),
            other => format!("it trapped: {other}"),
        };
    }
    let text = format!("{e:#}");
    if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
        return format!("it reached its memory limit: {text}");
    }
    format!("it failed: {text}")
}

/// Builds the example plugins of `plugins/guest` for `wasm32-unknown-unknown` (release) into
/// `target_dir` and returns the directory holding the `.wasm` files, for tests and benchmarks.
/// Fails with cargo's message (for instance when the target is not installed).
pub fn build_example_plugins(target_dir: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown", "--quiet"])
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("RUSTFLAGS")
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(target_dir.join("wasm32-unknown-unknown/release"))
}

fn componentize(bytes: &[u8]) -> Result<Vec<u8>, PluginError> {
    if is_component(bytes) {
        return Ok(bytes.to_vec());
    }
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| PluginError::Invalid(format!("{e:#}")))
}

/// A component's preamble has layer 1; a core module's has layer 0.
fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn poisoned<T>(_: T) -> PluginError {
    PluginError::Failed("internal error: poisoned lock".into())
}

/// The time of a snapshot, for plugins.
pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}
