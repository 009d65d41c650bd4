//! The OpenAPI document, generated from the route table: paths, methods, parameters, security and
//! status codes come from the same rows the router is built from; bodies from the Rust types
//! (utoipa's `ToSchema`). `openapi.json` in the crate is this document, committed; a test fails
//! when the two differ (`TOD_UPDATE_OPENAPI=1 cargo test -p tod-server --test openapi` rewrites it).

use axum::Json;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ComponentsBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema,
};

use super::{Access, Answer, RouteSpec, route_table};
use crate::store::ApiKey as StoredKey;

/// Every error: `{"detail": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable message.
    pub detail: String,
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// Server version.
    pub version: String,
}

/// Readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Whether a broker (NATS) is configured and connected.
    pub broker: bool,
}

/// The SRP challenge.
#[derive(Debug, Serialize, ToSchema)]
pub struct Challenge {
    /// Salt, lower-case hex.
    pub salt: String,
    /// `B`, lower-case hex.
    pub server_public: String,
    /// Echo it in the verify step (single use, 60 s).
    pub session_id: uuid::Uuid,
}

/// Tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    /// JWT, 15 minutes.
    pub access_token: String,
    /// JWT, 7 days, single use.
    pub refresh_token: String,
    /// `bearer`.
    pub token_type: String,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

/// A successful login.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAnswer {
    /// The tokens.
    #[serde(flatten)]
    pub tokens: TokenAnswer,
    /// `M2`, lower-case hex: the client checks it to know the server holds its verifier.
    pub server_proof: String,
}

/// A created API key.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The stored key.
    #[serde(flatten)]
    pub stored: StoredKey,
    /// The key itself, shown this once.
    pub key: String,
}

/// The caller: a user, or an API key.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `user` or `api_key`.
    pub kind: String,
    /// The account (users).
    #[schema(value_type = Option<Object>)]
    pub user: Option<serde_json::Value>,
    /// The key's scopes (API keys).
    pub scopes: Option<Vec<String>>,
}

/// An acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// What happened.
    pub status: String,
}

/// The document.
pub fn openapi() -> OpenApi {
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    let error_name = super::schema::<ErrorBody>(&mut schemas);
    let mut paths = PathsBuilder::new();
    for r in route_table() {
        paths = paths.path_operation(r.path, method(&r), operation(&r, &mut schemas, &error_name));
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        )
        .security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        )
        .security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("access_token"))),
        );
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    for (name, s) in schemas {
        components = components.schema(name, s);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("TOD API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Fleet platform for MikroTik RouterOS networks. Errors are `{\"detail\": \"...\"}`.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

trait PathOp {
    fn path_operation(self, path: &str, method: HttpMethod, op: utoipa::openapi::path::Operation) -> Self;
}

impl PathOp for PathsBuilder {
    fn path_operation(self, path: &str, method: HttpMethod, op: utoipa::openapi::path::Operation) -> Self {
        let mut paths = self.build();
        paths.add_path_operation(path, vec![method], op);
        PathsBuilder::from(paths)
    }
}

fn method(r: &RouteSpec) -> HttpMethod {
    match r.method {
        "POST" => HttpMethod::Post,
        "PATCH" => HttpMethod::Patch,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn json_content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn operation(
    r: &RouteSpec,
    schemas: &mut Vec<(String, RefOr<Schema>)>,
    error: &str,
) -> utoipa::openapi::path::Operation {
    let tag = r
        .path
        .trim_start_matches("/api")
        .split('/')
        .nth(1)
        .unwrap_or("health")
        .to_owned();
    let id = format!(
        "{}_{}",
        r.method.to_lowercase(),
        r.path
            .trim_start_matches('/')
            .replace(['/', '-', '.'], "_")
            .replace(['{', '}'], "")
    );
    let mut op = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(r.summary))
        .tag(tag);
    for name in r
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
    {
        let p = ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Uuid),
            ))));
        op = op.parameter(p);
    }
    for name in r.query {
        let ty = if matches!(*name, "limit" | "offset") {
            Type::Integer
        } else {
            Type::String
        };
        let p = ParameterBuilder::new()
            .name(*name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .schema(Some(ObjectBuilder::new().schema_type(ty)));
        op = op.parameter(p);
    }
    if let Some(req) = r.request {
        let name = req(schemas);
        let body = RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content("application/json", json_content(reference(&name)))
            .build();
        op = op.request_body(Some(body));
    }
    let ok = ResponseBuilder::new().description(r.summary);
    let ok = match r.answer {
        Answer::Empty => ok,
        Answer::One(f) => ok.content("application/json", json_content(reference(&f(schemas)))),
        Answer::Many(f) => ok.content(
            "application/json",
            json_content(ArrayBuilder::new().items(reference(&f(schemas))).into()),
        ),
    };
    op = op.response(r.status.to_string(), ok.build());
    let mut errors = vec![("422", "Invalid input")];
    if r.request.is_some() {
        errors.push(("400", "Unreadable JSON"));
    }
    match r.access {
        Access::Public { limited: true } => {
            errors.push(("401", "Invalid credentials"));
            errors.push(("429", "Too many requests"));
        }
        Access::Public { limited: false } => {}
        _ => {
            errors.push(("401", "Not authenticated"));
            errors.push(("403", "Not allowed"));
            op = op
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .security(SecurityRequirement::new("api_key", Vec::<String>::new()))
                .security(SecurityRequirement::new("cookie", Vec::<String>::new()));
        }
    }
    if r.path.contains("{") || r.method != "GET" {
        errors.push(("404", "Not found"));
    }
    if r.method == "POST" || r.method == "PATCH" {
        errors.push(("409", "Conflict"));
    }
    if r.path == "/health/ready" {
        errors.push(("503", "The database does not answer"));
    }
    for (code, what) in errors {
        let resp = ResponseBuilder::new()
            .description(what)
            .content("application/json", json_content(reference(error)))
            .build();
        op = op.response(code, resp);
    }
    op.build()
}

/// `GET /api/openapi.json`.
pub(crate) async fn spec() -> impl IntoResponse {
    Json(openapi())
}
