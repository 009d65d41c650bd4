//! Helpers for the server's integration tests: a fresh database per test, on each backend.
#![allow(dead_code)]

/// Declares tests `<name>::sqlite` and `<name>::postgres` that run `async fn <name>(url: &str)`
/// on a fresh database of each backend (PostgreSQL skips with a message when it is not there,
/// unless `TOD_REQUIRE_SERVICES` is set). `multi_thread` gives the runtime two workers, for tests
/// that block on a child process or run an agent beside the server.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        $crate::on_both_backends!(@with [tokio::test] $name);
    };
    ($name:ident, multi_thread) => {
        $crate::on_both_backends!(@with [tokio::test(flavor = "multi_thread", worker_threads = 2)] $name);
    };
    (@with [$($attr:tt)*] $name:ident) => {
        mod $name {
            #[$($attr)*]
            async fn sqlite() {
                let db = $crate::common::TestDb::sqlite();
                super::$name(&db.url).await;
                db.drop_db().await;
            }

            #[$($attr)*]
            async fn postgres() {
                let Some(db) = $crate::common::TestDb::postgres().await else {
                    return;
                };
                super::$name(&db.url).await;
                db.drop_db().await;
            }
        }
    };
}

pub mod fleet;

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A throwaway database.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    admin_url: Option<String>,
    name: String,
    file: Option<std::path::PathBuf>,
}

impl TestDb {
    /// A fresh SQLite file.
    pub fn sqlite() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let file = std::env::temp_dir().join(format!("tod-test-{}-{n}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&file);
        Self {
            url: format!("sqlite://{}", file.display()),
            admin_url: None,
            name: String::new(),
            file: Some(file),
        }
    }

    /// A fresh PostgreSQL database on `TOD_TEST_POSTGRES_URL`, or `None` (with a message) when it
    /// is not set or does not answer — unless `TOD_REQUIRE_SERVICES` makes it mandatory.
    pub async fn postgres() -> Option<Self> {
        let admin = std::env::var("TOD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                if std::env::var_os("TOD_REQUIRE_SERVICES").is_some() {
                    panic!("PostgreSQL at {admin} is required: {e}");
                }
                eprintln!("SKIP: PostgreSQL at {admin} does not answer ({e}); set TOD_TEST_POSTGRES_URL");
                return None;
            }
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "tod_test_{}_{n}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros() % 1_000_000
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
        Some(Self {
            url: format!("{base}/{name}"),
            admin_url: Some(admin),
            name,
            file: None,
        })
    }

    /// Drops the database (PostgreSQL: terminating its connections first).
    pub async fn drop_db(self) {
        if let Some(admin) = &self.admin_url {
            let mut conn = sqlx::PgConnection::connect(admin).await.expect("admin connection");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await
            .expect("drop test database");
        }
        if let Some(f) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", f.display()));
            }
        }
    }
}

/// A server on a loopback port, over a store, with the settings a test chose.
pub struct TestServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its base URL.
    pub url: String,
    /// Its state (store, keys).
    pub state: tod_server::app::AppState,
}

/// The bootstrap super admin of test servers.
pub const ADMIN_EMAIL: &str = "root@tod.test";
/// Its password.
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

impl TestServer {
    /// Serves `db_url` with a bootstrap super admin; `rate_limit` requests/min on auth routes.
    pub async fn start(db_url: &str, rate_limit: u32) -> Self {
        Self::start_with(db_url, |s| s.auth_rate_limit = rate_limit).await
    }

    /// Serves `db_url` with test settings changed by `tune`.
    pub async fn start_with(db_url: &str, tune: impl FnOnce(&mut tod_server::settings::Settings)) -> Self {
        let mut settings = tod_server::settings::Settings::for_database(db_url);
        settings.jwt_secret = Some("test-signing-key-of-at-least-32-bytes!".into());
        settings.master_key = Some("test-vault-master-key-of-32-bytes-or-more".into());
        settings.admin_email = Some(ADMIN_EMAIL.into());
        settings.admin_password = Some(ADMIN_PASSWORD.into());
        settings.auth_rate_limit = 1000;
        tune(&mut settings);
        let store = tod_server::store::open(db_url).await.expect("store");
        let mut state = tod_server::app::AppState::start(store, &settings).await.expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        state.vpn = tod_server::vpn::Vpn::start(&settings, state.vault.as_deref(), state.store.clone(), addr)
            .await
            .expect("WireGuard gateway");
        let app = tod_server::app::app(state.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        });
        Self {
            addr,
            url: format!("http://{addr}"),
            state,
        }
    }

    /// A request with optional credentials and JSON body.
    pub async fn call(&self, method: &str, path: &str, auth: &Auth, body: Option<serde_json::Value>) -> Resp {
        request(
            self.addr,
            method,
            path,
            auth,
            body.map(|b| b.to_string()),
            "application/json",
        )
        .await
    }

    /// Logs in with SRP (the crate's client) and returns the token answer.
    pub async fn login(&self, email: &str, password: &str) -> serde_json::Value {
        tod_server::client::login(&self.url, email, password)
            .await
            .expect("login")
    }

    /// Logs in and returns a bearer credential.
    pub async fn bearer(&self, email: &str, password: &str) -> Auth {
        let t = self.login(email, password).await;
        Auth::Bearer(t["access_token"].as_str().unwrap().to_owned())
    }
}

/// Credentials for a request.
#[derive(Debug, Clone)]
pub enum Auth {
    /// None.
    None,
    /// `Authorization: Bearer ...`.
    Bearer(String),
    /// `X-API-Key: ...`.
    ApiKey(String),
    /// `Cookie: ...`.
    Cookie(String),
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: axum::http::HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: serde_json::Value,
}

impl Resp {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie`.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

/// Sends one request over a fresh HTTP/1.1 connection.
async fn send(addr: std::net::SocketAddr, req: hyper::Request<http_body_util::Full<hyper::body::Bytes>>) -> Resp {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    // An event stream never ends: its status and headers are the answer.
    if headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        return Resp {
            status,
            headers,
            json: serde_json::Value::Null,
        };
    }
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    }
}

/// One HTTP/1.1 request over a fresh connection.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    auth: &Auth,
    body: Option<String>,
    content_type: &str,
) -> Resp {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "test");
    match auth {
        Auth::None => {}
        Auth::Bearer(t) => req = req.header("authorization", format!("Bearer {t}")),
        Auth::ApiKey(k) => req = req.header("x-api-key", k),
        Auth::Cookie(c) => req = req.header("cookie", c),
    }
    if body.is_some() {
        req = req.header("content-type", content_type);
    }
    let body = http_body_util::Full::new(hyper::body::Bytes::from(body.unwrap_or_default()));
    send(addr, req.body(body).unwrap()).await
}

/// A body-less request with arbitrary headers.
pub async fn request_headers(addr: std::net::SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(addr, req.body(http_body_util::Full::default()).unwrap()).await
}
