//! The OpenAPI document: generated from the route table, committed as `openapi.json`, served at
//! `/api/openapi.json`, and fuzzed with schemathesis against a live server (no 5xx allowed).

mod common;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Auth, TestDb, TestServer};
use tod_server::api::{doc, route_table};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = doc::openapi().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("TOD_UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "tod-server/openapi.json is stale: run `TOD_UPDATE_OPENAPI=1 cargo test -p tod-server --test openapi` and commit it"
    );
}

#[test]
fn every_route_is_documented_with_its_security() {
    let spec: serde_json::Value = serde_json::to_value(doc::openapi()).unwrap();
    for r in route_table() {
        let op = &spec["paths"][r.path][r.method.to_lowercase()];
        assert!(op.is_object(), "{} {} missing from the document", r.method, r.path);
        let public = matches!(r.access, tod_server::api::Access::Public { .. });
        assert_eq!(op["security"].is_array(), !public, "{} {} security", r.method, r.path);
        assert!(
            op["responses"][r.status.to_string()].is_object(),
            "{} {} success status",
            r.method,
            r.path
        );
    }
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let db = TestDb::sqlite();
    let srv = TestServer::start(&db.url, 5).await;
    let served = srv.call("GET", "/api/openapi.json", &Auth::None, None).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.json, serde_json::to_value(doc::openapi()).unwrap());
    db.drop_db().await;
}

#[tokio::test]
async fn the_documentation_viewers_are_served_only_in_dev() {
    let db = TestDb::sqlite();
    let prod = TestServer::start(&db.url, 5).await;
    for path in ["/docs", "/redoc", "/docs/swagger-ui-bundle.js"] {
        assert_eq!(
            prod.call("GET", path, &Auth::None, None).await.status,
            404,
            "{path} outside dev"
        );
    }
    let dev = TestServer::start_with(&db.url, |s| s.environment = tod_server::settings::Environment::Dev).await;
    let page = common::request(dev.addr, "GET", "/docs", &Auth::None, None, "").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    let redoc = common::request(dev.addr, "GET", "/redoc", &Auth::None, None, "").await;
    assert_eq!(redoc.status, 200);
    for (path, min) in [
        ("/docs/swagger-ui-bundle.js", 400_000),
        ("/docs/swagger-ui.css", 20_000),
        ("/docs/redoc.standalone.js", 300_000),
    ] {
        let r = common::request(dev.addr, "GET", path, &Auth::None, None, "").await;
        assert_eq!((r.status, r.header("content-encoding")), (200, Some("gzip")), "{path}");
        let len: usize = r.header("content-length").unwrap().parse().unwrap();
        assert!(len > min, "{path}: {len} bytes");
    }
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors() {
    let have = std::process::Command::new("schemathesis").arg("--version").output();
    if !have.is_ok_and(|o| o.status.success()) {
        if std::env::var_os("TOD_REQUIRE_ORACLES").is_some() {
            panic!("schemathesis is required (pip install schemathesis)");
        }
        eprintln!("SKIP: schemathesis is not installed");
        return;
    }
    for backend in ["sqlite", "postgres"] {
        let db = if backend == "sqlite" {
            TestDb::sqlite()
        } else {
            match TestDb::postgres().await {
                Some(db) => db,
                None => continue,
            }
        };
        let srv = TestServer::start(&db.url, 1_000_000).await;
        let token = srv.login(ADMIN_EMAIL, ADMIN_PASSWORD).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let url = srv.url.clone();
        let out = tokio::task::spawn_blocking(move || {
            // Run from a scratch directory: schemathesis keeps a cache where it runs.
            let scratch = std::env::temp_dir().join(format!("tod-schemathesis-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&scratch);
            std::process::Command::new("schemathesis")
                .current_dir(&scratch)
                .args(["run", &format!("{url}/api/openapi.json")])
                .args([
                    "--checks",
                    "not_a_server_error",
                    "--max-examples",
                    "20",
                    "--generation-deterministic",
                ])
                .args(["--header", &format!("Authorization: Bearer {token}")])
                // Logging out or changing the password would end the fuzzer's own session.
                .args([
                    "--exclude-path",
                    "/api/auth/logout",
                    "--exclude-path",
                    "/api/auth/change-password",
                    // An event stream never ends; its own test reads it.
                    "--exclude-path",
                    "/api/sse/events",
                    // A test send goes wherever a fuzzed channel points: tests stay on loopback
                    // (the notification test sends to its own receivers).
                    "--exclude-path",
                    "/api/alerts/channels/{channel_id}/test",
                ])
                .args(["--request-timeout", "10"])
                .output()
        })
        .await
        .unwrap()
        .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "schemathesis on {backend}:\n{text}");
        eprintln!(
            "schemathesis on {backend}: {}",
            text.lines()
                .filter(|l| l.contains("passed") || l.contains("cases"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        db.drop_db().await;
    }
}
