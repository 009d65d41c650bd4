//! The simulator's control surface: HTTP/JSON to list devices, read their counters, flip faults,
//! reboot them, switch their wireless package, and move the simulated clock.
//!
//! | method and path | body | effect |
//! |---|---|---|
//! | `GET /devices` | | every device with ports and counters |
//! | `GET /devices/{i}` | | one device: ports, faults, counters, runtime |
//! | `PUT /devices/{i}/faults` | a `Faults` object | replaces the device's faults |
//! | `POST /devices/{i}/reboot` | | reboots it (uptime and counters restart, sessions drop) |
//! | `POST /devices/{i}/package` | `{"package": "wifi"}` | switches the wireless package (and reboots) |
//! | `GET /clock` | | `{"now": seconds}` |
//! | `POST /clock` | `{"advance_secs": 60}` or `{"speed": 10}` | moves or re-speeds the clock |
//! | `GET /truth?at=T` | | every device and association as they really were at simulated time `T` (default: now) |
//! | `GET /truth/events?from=A&until=B` | | every event overlapping `[A, B)`: the world's schedule and the changes made |
//! | `GET /truth/export?from=A&until=B&step=S` | | the same as JSON lines, then the truth every `S` seconds (`application/x-ndjson`) |
//!
//! Every change made through this surface (or the [`Simulator`]'s methods) is recorded with its
//! simulated time, so the truth of any past moment stays exact.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Simulator;
use super::state::Faults;
use super::world::Package;

fn not_found(i: usize) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"detail": format!("no device {i}")}))).into_response()
}

fn device_json(sim: &Simulator, i: usize, detail: bool) -> Value {
    let d = &sim.world().devices[i];
    let p = sim.ports(i);
    let st = sim.state(i);
    let mut v = json!({
        "index": i,
        "name": d.name,
        "role": d.role,
        "port": p.plain.port(),
        "tls_port": p.tls.map(|a| a.port()),
        "stats": st.stats.snapshot(),
    });
    if detail {
        let rt = st.runtime();
        v["faults"] = serde_json::to_value(st.faults()).unwrap_or(Value::Null);
        v["runtime"] = json!({"boot_time": rt.boot_time, "package": rt.package, "generation": rt.generation});
    }
    v
}

/// The router; state is the shared simulator.
pub fn router(sim: Arc<Simulator>) -> Router {
    Router::new()
        .route("/devices", get(list))
        .route("/devices/{i}", get(one))
        .route("/devices/{i}/faults", put(faults))
        .route("/devices/{i}/reboot", post(reboot))
        .route("/devices/{i}/package", post(package))
        .route("/clock", get(clock).post(set_clock))
        .route("/truth", get(truth_at))
        .route("/truth/events", get(truth_events))
        .route("/truth/export", get(truth_export))
        .with_state(sim)
}

async fn list(State(sim): State<Arc<Simulator>>) -> Json<Value> {
    Json(Value::Array(
        (0..sim.world().devices.len())
            .map(|i| device_json(&sim, i, false))
            .collect(),
    ))
}

async fn one(State(sim): State<Arc<Simulator>>, Path(i): Path<usize>) -> Response {
    if i >= sim.world().devices.len() {
        return not_found(i);
    }
    Json(device_json(&sim, i, true)).into_response()
}

async fn faults(State(sim): State<Arc<Simulator>>, Path(i): Path<usize>, Json(f): Json<Faults>) -> Response {
    if i >= sim.world().devices.len() {
        return not_found(i);
    }
    sim.set_faults(i, f);
    Json(device_json(&sim, i, true)).into_response()
}

async fn reboot(State(sim): State<Arc<Simulator>>, Path(i): Path<usize>) -> Response {
    if i >= sim.world().devices.len() {
        return not_found(i);
    }
    sim.reboot(i);
    Json(device_json(&sim, i, true)).into_response()
}

#[derive(Deserialize)]
struct PackageBody {
    package: Package,
}

async fn package(State(sim): State<Arc<Simulator>>, Path(i): Path<usize>, Json(b): Json<PackageBody>) -> Response {
    if i >= sim.world().devices.len() {
        return not_found(i);
    }
    sim.switch_package(i, b.package);
    Json(device_json(&sim, i, true)).into_response()
}

async fn clock(State(sim): State<Arc<Simulator>>) -> Json<Value> {
    Json(json!({"now": sim.clock().now()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    advance_secs: Option<f64>,
    speed: Option<f64>,
}

async fn set_clock(State(sim): State<Arc<Simulator>>, Json(b): Json<ClockBody>) -> Json<Value> {
    if let Some(s) = b.speed {
        sim.clock().set_speed(s);
    }
    if let Some(a) = b.advance_secs {
        sim.clock().advance(a);
    }
    Json(json!({"now": sim.clock().now()}))
}

/// The most truth lines one export gives.
const MAX_EXPORT_LINES: f64 = 1_000_000.0;

fn bad_request(detail: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "detail": detail }))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TruthQuery {
    at: Option<f64>,
    from: Option<f64>,
    until: Option<f64>,
    step: Option<f64>,
}

impl TruthQuery {
    /// The query, or why it is not one.
    fn read(q: Result<Query<Self>, QueryRejection>) -> Result<Self, String> {
        q.map(|Query(q)| q).map_err(|e| e.body_text())
    }

    /// `[from, until)`, defaulting to the world's start and now; both finite, in order.
    fn range(&self, now: f64) -> Result<(f64, f64), String> {
        let (from, until) = (self.from.unwrap_or(0.0), self.until.unwrap_or(now));
        if !from.is_finite() || !until.is_finite() || from >= until {
            return Err(format!(
                "from ({from}) must be before until ({until}), both simulated seconds"
            ));
        }
        Ok((from, until))
    }
}

async fn truth_at(State(sim): State<Arc<Simulator>>, q: Result<Query<TruthQuery>, QueryRejection>) -> Response {
    let at = TruthQuery::read(q).and_then(|q| {
        let at = q.at.unwrap_or_else(|| sim.clock().now());
        if at.is_finite() {
            Ok(at)
        } else {
            Err(format!("at ({at}) must be a finite number of simulated seconds"))
        }
    });
    match at {
        Ok(at) => Json(serde_json::to_value(sim.truth().at(at)).unwrap_or_default()).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn truth_events(State(sim): State<Arc<Simulator>>, q: Result<Query<TruthQuery>, QueryRejection>) -> Response {
    match TruthQuery::read(q).and_then(|q| q.range(sim.clock().now())) {
        Ok((from, until)) => {
            Json(serde_json::to_value(sim.truth().events(from, until)).unwrap_or_default()).into_response()
        }
        Err(e) => bad_request(e),
    }
}

/// The sample times of an export: every `step` from `from` until `until`, within the line limit.
fn export_times(sim: &Simulator, q: &TruthQuery) -> Result<(f64, f64, Vec<f64>), String> {
    let (from, until) = q.range(sim.clock().now())?;
    let step = q.step.unwrap_or(60.0);
    if !step.is_finite() || step <= 0.0 {
        return Err(format!("step ({step}) must be a positive number of simulated seconds"));
    }
    let world = sim.world();
    let clients: usize = world
        .devices
        .iter()
        .flat_map(|d| &d.radios)
        .map(|r| r.clients.len())
        .sum();
    let per_time = world.devices.len() + clients;
    let times = ((until - from) / step).ceil();
    if times * per_time as f64 > MAX_EXPORT_LINES {
        return Err(format!(
            "{times} times × {per_time} lines is more than {MAX_EXPORT_LINES} lines: a larger step or a shorter range"
        ));
    }
    Ok((from, until, (0..times as u64).map(|k| from + k as f64 * step).collect()))
}

async fn truth_export(State(sim): State<Arc<Simulator>>, q: Result<Query<TruthQuery>, QueryRejection>) -> Response {
    match TruthQuery::read(q).and_then(|q| export_times(&sim, &q)) {
        Ok((from, until, times)) => {
            let body = super::truth::jsonl(&sim.truth(), from, until, &times);
            ([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
        }
        Err(e) => bad_request(e),
    }
}
