//! Helpers for the server's integration tests: a fresh database per test, on each backend.
#![allow(dead_code)]

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
