//! The REST API: one route table, one guard.
//!
//! Every route is declared in [`routes`] with the access it needs. The router is built from that
//! table and wraps each handler in [`guard`], which authenticates the caller, resolves the tenant
//! the route addresses and asks tod-core's [`authorize`] — so a handler cannot forget the check,
//! and the RBAC matrix test walks the same table ([`route_table`]).

mod audit;
mod auth;
mod sites;
mod tenants;
mod users;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, on};
use tod_core::TenantId;
use tod_core::rbac::{Action, authorize};

use crate::app::AppState;
use crate::auth::authenticate;
use crate::error::ApiError;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; `limited` routes count against the per-address authentication rate limit.
    Public {
        /// Whether the auth rate limit applies.
        limited: bool,
    },
    /// Any authenticated caller; the handler decides the rest.
    Authenticated,
    /// The action on the tenant named by the path's `{tenant_id}`.
    Tenant(Action),
    /// The action on the caller's own tenant (a super admin acts platform-wide).
    Own(Action),
}

/// One row of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// Path, with `{name}` parameters.
    pub path: &'static str,
    /// What the caller needs.
    pub access: Access,
}

/// The tenant a guarded route addresses, once authorized (`None`: platform-wide, super admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantScope(pub Option<TenantId>);

/// The client address of a public route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

type Handler = MethodRouter<AppState>;

macro_rules! route {
    ($method:ident $path:literal, $access:expr, $handler:expr) => {
        (
            RouteSpec {
                method: stringify!($method),
                path: $path,
                access: $access,
            },
            on(axum::routing::MethodFilter::$method, $handler),
        )
    };
}

fn routes() -> Vec<(RouteSpec, Handler)> {
    use Access::*;
    let open = Public { limited: false };
    let limited = Public { limited: true };
    vec![
        route!(GET "/health", open, crate::app::health),
        route!(GET "/api/health", open, crate::app::health),
        route!(GET "/health/ready", open, crate::app::ready),
        route!(POST "/api/auth/srp/init", limited, auth::srp_init),
        route!(POST "/api/auth/srp/verify", limited, auth::srp_verify),
        route!(POST "/api/auth/login", limited, auth::login),
        route!(POST "/api/auth/refresh", limited, auth::refresh),
        route!(POST "/api/auth/logout", Authenticated, auth::logout),
        route!(GET "/api/auth/me", Authenticated, auth::me),
        route!(POST "/api/auth/change-password", Authenticated, auth::change_password),
        route!(GET "/api/tenants", Own(Action::TenantRead), tenants::list),
        route!(POST "/api/tenants", Own(Action::TenantManage), tenants::create),
        route!(GET "/api/tenants/{tenant_id}", Tenant(Action::TenantRead), tenants::get),
        route!(PATCH "/api/tenants/{tenant_id}", Tenant(Action::TenantManage), tenants::update),
        route!(DELETE "/api/tenants/{tenant_id}", Tenant(Action::TenantManage), tenants::delete),
        route!(GET "/api/tenants/{tenant_id}/sites", Tenant(Action::SiteRead), sites::list),
        route!(POST "/api/tenants/{tenant_id}/sites", Tenant(Action::SiteWrite), sites::create),
        route!(GET "/api/tenants/{tenant_id}/sites/{site_id}", Tenant(Action::SiteRead), sites::get),
        route!(GET "/api/tenants/{tenant_id}/api-keys", Tenant(Action::ApiKeyManage), users::list_keys),
        route!(POST "/api/tenants/{tenant_id}/api-keys", Tenant(Action::ApiKeyManage), users::create_key),
        route!(DELETE "/api/tenants/{tenant_id}/api-keys/{key_id}", Tenant(Action::ApiKeyManage), users::revoke_key),
        route!(GET "/api/users", Own(Action::UserRead), users::list),
        route!(POST "/api/users", Own(Action::UserWrite), users::create),
        route!(GET "/api/users/{user_id}", Own(Action::UserRead), users::get),
        route!(PATCH "/api/users/{user_id}", Own(Action::UserWrite), users::update),
        route!(DELETE "/api/users/{user_id}", Own(Action::UserWrite), users::delete),
        route!(GET "/api/audit-logs", Own(Action::AuditRead), audit::list),
        route!(GET "/api/audit-logs/verify", Own(Action::AuditRead), audit::verify),
    ]
}

/// Every route and what it requires.
pub fn route_table() -> Vec<RouteSpec> {
    routes().into_iter().map(|(spec, _)| spec).collect()
}

/// The API router: every route behind the guard.
pub fn router(state: &AppState) -> Router<AppState> {
    let mut r = Router::new();
    for (spec, handler) in routes() {
        let guarded = handler.layer(axum::middleware::from_fn_with_state(
            (state.clone(), spec.access),
            guard,
        ));
        r = r.route(spec.path, guarded);
    }
    r
}

/// Authenticates, rate-limits and authorizes a request according to its route's [`Access`].
async fn guard(
    State((st, access)): State<(AppState, Access)>,
    params: RawPathParams,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let ip = crate::limits::client_ip(peer, req.headers(), &st.trusted_proxies);
    let outcome: Result<(), ApiError> = async {
        if let Access::Public { limited } = access {
            if limited {
                st.auth_limiter.check(ip)?;
            }
            req.extensions_mut().insert(ClientIp(ip));
            return Ok(());
        }
        let caller = authenticate(st.store.as_ref(), &st.keys, req.headers(), Some(ip)).await?;
        let scope = match access {
            Access::Public { .. } | Access::Authenticated => TenantScope(caller.principal.tenant()),
            Access::Own(action) => {
                let own = caller.principal.tenant();
                authorize(&caller.principal, own, action)?;
                TenantScope(own)
            }
            Access::Tenant(action) => {
                let raw = params
                    .iter()
                    .find(|(k, _)| *k == "tenant_id")
                    .map(|(_, v)| v)
                    .ok_or_else(|| ApiError::internal("route without {tenant_id}"))?;
                let tenant: TenantId = raw
                    .parse()
                    .map_err(|_| ApiError::unprocessable(format!("tenant_id: not a UUID: {raw:?}")))?;
                authorize(&caller.principal, Some(tenant), action)?;
                TenantScope(Some(tenant))
            }
        };
        req.extensions_mut().insert(ClientIp(ip));
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(scope);
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// JSON bodies whose rejections are `{"detail"}` errors: 400 for unreadable JSON or a wrong
/// content type, 422 for JSON of the wrong shape.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// Path parameters whose rejections are 422 `{"detail"}` errors.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParams<T>(pub T);

/// Query parameters whose rejections are 422 `{"detail"}` errors.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::unprocessable(e.body_text()),
            JsonRejection::BytesRejection(e) => ApiError::new(e.status(), e.body_text()),
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::unprocessable(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::unprocessable(r.body_text())
    }
}

/// Lower-case hex of at most `max` bytes (and at least `min`), or a 422 naming the field.
pub(crate) fn hex_field(field: &str, value: &str, min: usize, max: usize) -> Result<Vec<u8>, ApiError> {
    let bytes = hex::decode(value.trim()).map_err(|_| ApiError::unprocessable(format!("{field}: not hexadecimal")))?;
    if bytes.len() < min || bytes.len() > max {
        return Err(ApiError::unprocessable(format!(
            "{field}: {min} to {max} bytes expected"
        )));
    }
    Ok(bytes)
}

/// For `Option<Option<T>>` fields: absent stays `None` (by `default`), `null` becomes `Some(None)`.
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Methods as the table spells them, for tests that walk it.
pub fn method_of(spec: &RouteSpec) -> Method {
    spec.method.parse().unwrap_or(Method::GET)
}
