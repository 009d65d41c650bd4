//! Swagger UI at `/docs` and ReDoc at `/redoc`, mounted only when `TOD_ENV=dev`. Their assets are
//! vendored in `assets/docs` (gzip) and compiled in: nothing is fetched at build or view time.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;

const SWAGGER_JS: &[u8] = include_bytes!("../../assets/docs/swagger-ui-bundle.js.gz");
const SWAGGER_CSS: &[u8] = include_bytes!("../../assets/docs/swagger-ui.css.gz");
const REDOC_JS: &[u8] = include_bytes!("../../assets/docs/redoc.standalone.js.gz");

/// The pages may load their own scripts and styles from this server, and nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:";

const SWAGGER_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TOD API — Swagger UI</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script><script src="/docs/init.js"></script></body></html>"#;

const SWAGGER_INIT: &str =
    "window.ui = SwaggerUIBundle({ url: '/api/openapi.json', dom_id: '#swagger-ui', withCredentials: true });\n";

const REDOC_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TOD API — ReDoc</title></head>
<body><redoc spec-url="/api/openapi.json"></redoc><script src="/docs/redoc.standalone.js"></script></body></html>"#;

fn page(html: &'static str) -> Response {
    let mut r = Html(html).into_response();
    r.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    r
}

fn asset(bytes: &'static [u8], content_type: &'static str, gzip: bool) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    r
}

/// The viewer routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(|| async { page(SWAGGER_PAGE) }))
        .route("/redoc", get(|| async { page(REDOC_PAGE) }))
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| async { asset(SWAGGER_JS, "text/javascript", true) }),
        )
        .route(
            "/docs/swagger-ui.css",
            get(|| async { asset(SWAGGER_CSS, "text/css", true) }),
        )
        .route(
            "/docs/redoc.standalone.js",
            get(|| async { asset(REDOC_JS, "text/javascript", true) }),
        )
        .route(
            "/docs/init.js",
            get(|| async { asset(SWAGGER_INIT.as_bytes(), "text/javascript", false) }),
        )
}
