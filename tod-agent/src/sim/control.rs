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

use std::sync::Arc;

use axum::extract::{Path, State};
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
    sim.state(i).switch_package(b.package, sim.clock().now());
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
