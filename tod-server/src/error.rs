//! The one error type of the HTTP surface: a status code and a `{"detail": "..."}` body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable detail.
    pub detail: String,
    /// Extra response headers (`Retry-After`, `X-Auth-Method`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with a status and detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    /// The same error with one more response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 400 with a detail.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 403 with a detail.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404 with a detail.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 422 with a detail.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
}

impl From<tod_core::rbac::Denied> for ApiError {
    fn from(d: tod_core::rbac::Denied) -> Self {
        Self::forbidden(d.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "detail": self.detail }))).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                r.headers_mut().insert(name, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED && !r.headers().contains_key("www-authenticate") {
            r.headers_mut()
                .insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                let mut w = what.to_owned();
                if let Some(first) = w.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                Self::new(StatusCode::NOT_FOUND, format!("{w} not found"))
            }
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            StoreError::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            StoreError::Unavailable(m) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("database unavailable: {m}"))
            }
            StoreError::Other(m) => {
                tracing::error!(error = %m, "storage failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_the_reference_status_codes() {
        let s = |e: StoreError| ApiError::from(e).status;
        assert_eq!(s(StoreError::NotFound("tenant")), StatusCode::NOT_FOUND);
        assert_eq!(
            ApiError::from(StoreError::NotFound("tenant")).detail,
            "Tenant not found"
        );
        assert_eq!(s(StoreError::Conflict("dup".into())), StatusCode::CONFLICT);
        assert_eq!(s(StoreError::Invalid("bad".into())), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            s(StoreError::Unavailable("down".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let internal = ApiError::from(StoreError::Other("secret SQL detail".into()));
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.detail.contains("secret"), "internals stay in the log");
    }
}
