//! One store conformance suite, run against SQLite and against PostgreSQL.

mod common;

use chrono::{TimeZone, Utc};
use tod_core::TenantId;
use tod_server::store::{self, Store, StoreError};

async fn conformance(s: &dyn Store) {
    let now = Utc.with_ymd_and_hms(2026, 3, 19, 8, 0, 0).unwrap();
    s.ping().await.unwrap();
    let a = s
        .create_tenant("  Acme Wireless ", Some("towers north"), now)
        .await
        .unwrap();
    assert_eq!(a.name, "Acme Wireless", "names are trimmed");
    assert_eq!(a.description.as_deref(), Some("towers north"));
    assert_eq!(a.created_at, now);
    let b = s.create_tenant("Bravo Net", None, now).await.unwrap();
    assert_eq!(s.get_tenant(a.id).await.unwrap(), a);
    let names: Vec<String> = s.list_tenants().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["Acme Wireless", "Bravo Net"]);
    assert_eq!(
        s.create_tenant("Acme Wireless", None, now).await.unwrap_err(),
        StoreError::Conflict("A tenant with this name already exists".into()),
        "a duplicate is a conflict (409), never an internal error"
    );
    assert!(
        matches!(
            s.create_tenant("   ", None, now).await.unwrap_err(),
            StoreError::Invalid(_)
        ),
        "a blank name is invalid (422)"
    );
    assert_eq!(
        s.get_tenant(TenantId::from_u128(1)).await.unwrap_err(),
        StoreError::NotFound("tenant")
    );
    s.delete_tenant(b.id).await.unwrap();
    assert_eq!(s.delete_tenant(b.id).await.unwrap_err(), StoreError::NotFound("tenant"));
    assert_eq!(s.list_tenants().await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_store_conforms_and_survives_reopening() {
    let db = common::TestDb::sqlite();
    let s = store::open(&db.url).await.unwrap();
    assert_eq!(s.backend(), "sqlite");
    conformance(s.as_ref()).await;
    drop(s);
    // Migrations are idempotent and the data is still there.
    let again = store::open(&db.url).await.unwrap();
    assert_eq!(again.list_tenants().await.unwrap().len(), 1);
    drop(again);
    db.drop_db().await;
}

#[tokio::test]
async fn postgres_store_conforms() {
    let Some(db) = common::TestDb::postgres().await else {
        return;
    };
    let s = store::open(&db.url).await.unwrap();
    assert_eq!(s.backend(), "postgres");
    conformance(s.as_ref()).await;
    drop(s);
    db.drop_db().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(matches!(store::open("mysql://x").await, Err(StoreError::Invalid(_))));
}
