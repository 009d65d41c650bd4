//! Metrics: `/api/metrics/devices/{d}/{health,interfaces,wireless}` — a device's stored samples
//! over a time range, in UTC-aligned buckets ([`tod_core::series::Window`] checks the range and
//! picks the width). The caller's own tenant; a super admin names one with `?tenant_id=`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tod_core::series::Window;
use tod_core::{DeviceId, TenantId};

use super::{PathParams, QueryParams, TenantScope, own_tenant};
use crate::app::AppState;
use crate::error::ApiError;

/// The default range: the last 24 hours.
const DEFAULT_HOURS: i64 = 24;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SeriesQuery {
    /// The tenant (super admins only).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    tenant_id: Option<TenantId>,
    /// Range start, RFC 3339 (default: 24 hours before `end`).
    #[serde(default)]
    start: Option<DateTime<Utc>>,
    /// Range end, RFC 3339, exclusive (default: now).
    #[serde(default)]
    end: Option<DateTime<Utc>>,
    /// Bucket width in seconds, at least 60 and at most 2000 buckets (default: the narrowest of
    /// 1 min, 5 min, 15 min, 1 h, 4 h, 12 h, 1 d giving at most 300 buckets).
    #[serde(default)]
    bucket_secs: Option<i64>,
    /// One interface (interfaces and wireless series only).
    #[serde(default)]
    interface: Option<String>,
}

impl SeriesQuery {
    fn window(&self) -> Result<Window, ApiError> {
        let end = self.end.unwrap_or_else(Utc::now);
        let start = self.start.unwrap_or(end - Duration::hours(DEFAULT_HOURS));
        Window::new(start, end, self.bucket_secs).map_err(|e| ApiError::unprocessable(e.to_string()))
    }
}

/// Where a series starts and ends and how wide its buckets are.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SeriesRange {
    /// Inclusive start.
    start: DateTime<Utc>,
    /// Exclusive end.
    end: DateTime<Utc>,
    /// Bucket width, seconds.
    bucket_secs: i64,
}

impl From<Window> for SeriesRange {
    fn from(w: Window) -> Self {
        Self {
            start: w.start,
            end: w.end,
            bucket_secs: w.bucket_secs,
        }
    }
}

/// One bucket of a device's health.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct HealthPoint {
    /// Bucket start.
    timestamp: DateTime<Utc>,
    /// Reports in the bucket.
    samples: u32,
    /// Reports whose poll did not answer.
    offline_samples: u32,
    /// Mean CPU load, percent.
    cpu_load_avg: Option<f64>,
    /// Highest CPU load, percent.
    cpu_load_max: Option<f64>,
    /// Mean memory in use, percent.
    memory_used_pct_avg: Option<f64>,
    /// Mean temperature, °C.
    temperature_avg: Option<f64>,
    /// Uptime at the bucket's last report, seconds.
    uptime_secs: Option<i64>,
}

/// A device's health series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct HealthSeries {
    /// The device.
    #[schema(value_type = String, format = Uuid)]
    device_id: DeviceId,
    /// The range.
    #[serde(flatten)]
    range: SeriesRange,
    /// Non-empty buckets, oldest first.
    items: Vec<HealthPoint>,
}

/// Means of the present values.
#[derive(Default)]
struct Mean {
    sum: f64,
    n: u32,
}

impl Mean {
    fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.sum += v;
            self.n += 1;
        }
    }
    fn get(&self) -> Option<f64> {
        (self.n > 0).then(|| round2(self.sum / f64::from(self.n)))
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

pub(super) async fn health(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(device): PathParams<DeviceId>,
    QueryParams(q): QueryParams<SeriesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    if q.interface.is_some() {
        return Err(ApiError::unprocessable(
            "interface: not a parameter of the health series",
        ));
    }
    let w = q.window()?;
    st.store.get_device(t, device).await?;
    let samples = st.store.health_samples(t, device, w.start, w.end).await?;
    #[derive(Default)]
    struct Acc {
        samples: u32,
        offline: u32,
        cpu: Mean,
        cpu_max: Option<f64>,
        mem: Mean,
        temp: Mean,
        uptime: Option<i64>,
    }
    let mut buckets: BTreeMap<DateTime<Utc>, Acc> = BTreeMap::new();
    for s in samples {
        let a = buckets.entry(w.bucket_of(s.collected_at)).or_default();
        a.samples += 1;
        if s.status != "online" {
            a.offline += 1;
        }
        a.cpu.add(s.cpu_load);
        a.cpu_max = max_of(a.cpu_max, s.cpu_load);
        let used = match (s.free_memory, s.total_memory) {
            (Some(free), Some(total)) if total > 0 => Some((1.0 - free as f64 / total as f64) * 100.0),
            _ => None,
        };
        a.mem.add(used);
        a.temp.add(s.temperature_c);
        a.uptime = s.uptime_secs.or(a.uptime);
    }
    let items = buckets
        .into_iter()
        .map(|(timestamp, a)| HealthPoint {
            timestamp,
            samples: a.samples,
            offline_samples: a.offline,
            cpu_load_avg: a.cpu.get(),
            cpu_load_max: a.cpu_max,
            memory_used_pct_avg: a.mem.get(),
            temperature_avg: a.temp.get(),
            uptime_secs: a.uptime,
        })
        .collect();
    Ok(Json(HealthSeries {
        device_id: device,
        range: w.into(),
        items,
    }))
}

/// One bucket of an interface's traffic.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TrafficPoint {
    /// Bucket start.
    timestamp: DateTime<Utc>,
    /// Bytes received in the bucket.
    rx_bytes: i64,
    /// Bytes sent in the bucket.
    tx_bytes: i64,
    /// Mean receive rate over the bucket, bits per second.
    rx_bps: f64,
    /// Mean send rate over the bucket, bits per second.
    tx_bps: f64,
}

/// One interface's traffic series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct InterfaceTraffic {
    /// Interface.
    interface: String,
    /// Non-empty buckets, oldest first.
    items: Vec<TrafficPoint>,
}

/// A device's traffic per interface.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TrafficSeries {
    /// The device.
    #[schema(value_type = String, format = Uuid)]
    device_id: DeviceId,
    /// The range.
    #[serde(flatten)]
    range: SeriesRange,
    /// By interface name.
    interfaces: Vec<InterfaceTraffic>,
}

pub(super) async fn interfaces(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(device): PathParams<DeviceId>,
    QueryParams(q): QueryParams<SeriesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let w = q.window()?;
    st.store.get_device(t, device).await?;
    let samples = st
        .store
        .traffic_samples(t, device, q.interface.as_deref(), w.start, w.end)
        .await?;
    let mut by_iface: BTreeMap<String, BTreeMap<DateTime<Utc>, (i64, i64)>> = BTreeMap::new();
    for s in samples {
        let b = by_iface
            .entry(s.interface)
            .or_default()
            .entry(w.bucket_of(s.collected_at))
            .or_default();
        b.0 = b.0.saturating_add(s.rx_bytes);
        b.1 = b.1.saturating_add(s.tx_bytes);
    }
    let secs = w.bucket_secs as f64;
    let interfaces = by_iface
        .into_iter()
        .map(|(interface, buckets)| InterfaceTraffic {
            interface,
            items: buckets
                .into_iter()
                .map(|(timestamp, (rx, tx))| TrafficPoint {
                    timestamp,
                    rx_bytes: rx,
                    tx_bytes: tx,
                    rx_bps: round2(rx as f64 * 8.0 / secs),
                    tx_bps: round2(tx as f64 * 8.0 / secs),
                })
                .collect(),
        })
        .collect();
    Ok(Json(TrafficSeries {
        device_id: device,
        range: w.into(),
        interfaces,
    }))
}

/// One bucket of a radio's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RadioPoint {
    /// Bucket start.
    timestamp: DateTime<Utc>,
    /// Reports in the bucket.
    samples: u32,
    /// Mean clients.
    clients_avg: f64,
    /// Most clients.
    clients_max: u32,
    /// Mean of the reports' mean client signal, dBm.
    signal_avg: Option<f64>,
    /// Weakest client signal, dBm.
    signal_min: Option<i16>,
    /// Mean noise floor, dBm.
    noise_floor_avg: Option<f64>,
    /// Mean CCQ, percent (none on RouterOS v7).
    ccq_avg: Option<f64>,
}

/// One radio's series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RadioTrack {
    /// Radio interface.
    interface: String,
    /// Non-empty buckets, oldest first.
    items: Vec<RadioPoint>,
}

/// A device's radios over time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct WirelessSeries {
    /// The device.
    #[schema(value_type = String, format = Uuid)]
    device_id: DeviceId,
    /// The range.
    #[serde(flatten)]
    range: SeriesRange,
    /// By interface name.
    radios: Vec<RadioTrack>,
}

pub(super) async fn wireless(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(device): PathParams<DeviceId>,
    QueryParams(q): QueryParams<SeriesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let w = q.window()?;
    st.store.get_device(t, device).await?;
    let samples = st.store.radio_samples(t, device, w.start, w.end).await?;
    #[derive(Default)]
    struct Acc {
        samples: u32,
        clients: Mean,
        clients_max: u32,
        signal: Mean,
        signal_min: Option<i16>,
        noise: Mean,
        ccq: Mean,
    }
    let mut by_radio: BTreeMap<String, BTreeMap<DateTime<Utc>, Acc>> = BTreeMap::new();
    for (at, s) in samples {
        if q.interface.as_deref().is_some_and(|i| i != s.interface) {
            continue;
        }
        let a = by_radio
            .entry(s.interface.clone())
            .or_default()
            .entry(w.bucket_of(at))
            .or_default();
        a.samples += 1;
        a.clients.add(Some(f64::from(s.clients)));
        a.clients_max = a.clients_max.max(s.clients);
        a.signal.add(s.signal_avg_dbm);
        a.signal_min = match (a.signal_min, s.signal_min_dbm) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, None) => x,
            (None, y) => y,
        };
        a.noise.add(s.noise_floor_dbm.map(f64::from));
        a.ccq.add(s.ccq_avg);
    }
    let radios = by_radio
        .into_iter()
        .map(|(interface, buckets)| RadioTrack {
            interface,
            items: buckets
                .into_iter()
                .map(|(timestamp, a)| RadioPoint {
                    timestamp,
                    samples: a.samples,
                    clients_avg: a.clients.get().unwrap_or(0.0),
                    clients_max: a.clients_max,
                    signal_avg: a.signal.get(),
                    signal_min: a.signal_min,
                    noise_floor_avg: a.noise.get(),
                    ccq_avg: a.ccq.get(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(WirelessSeries {
        device_id: device,
        range: w.into(),
        radios,
    }))
}
