//! One store conformance suite, run against SQLite and against PostgreSQL.

mod common;

use chrono::{TimeZone, Utc};
use tod_core::SiteId;
use tod_core::TenantId;
use tod_server::store::{self, NewSite, Store, StoreError};

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

    // Sites belong to one tenant: same name in two tenants is fine, twice in one is a conflict,
    // and another tenant's site is simply not there.
    let tower = NewSite {
        name: "North Tower",
        latitude: Some(45.5),
        longitude: Some(-122.6),
    };
    let north_a = s.create_site(a.id, tower, now).await.unwrap();
    assert_eq!(
        (north_a.tenant_id, north_a.name.as_str(), north_a.latitude),
        (a.id, "North Tower", Some(45.5))
    );
    s.create_site(b.id, tower, now).await.unwrap();
    s.create_site(
        a.id,
        NewSite {
            name: "Hill",
            latitude: None,
            longitude: None,
        },
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        s.create_site(a.id, tower, now).await.unwrap_err(),
        StoreError::Conflict("A site with this name already exists".into())
    );
    let bad = NewSite {
        name: "Nowhere",
        latitude: Some(91.0),
        longitude: Some(0.0),
    };
    assert!(
        matches!(s.create_site(a.id, bad, now).await.unwrap_err(), StoreError::Invalid(_)),
        "coordinates are checked"
    );
    assert!(
        matches!(
            s.create_site(TenantId::from_u128(77), tower, now).await.unwrap_err(),
            StoreError::Invalid(_)
        ),
        "a site for an unknown tenant is invalid (422)"
    );
    let names: Vec<String> = s.list_sites(a.id).await.unwrap().into_iter().map(|x| x.name).collect();
    assert_eq!(names, vec!["Hill", "North Tower"]);
    assert_eq!(s.get_site(a.id, north_a.id).await.unwrap(), north_a);
    assert_eq!(
        s.get_site(b.id, north_a.id).await.unwrap_err(),
        StoreError::NotFound("site"),
        "no cross-tenant reads"
    );
    assert_eq!(
        s.get_site(a.id, SiteId::from_u128(5)).await.unwrap_err(),
        StoreError::NotFound("site")
    );

    s.delete_tenant(b.id).await.unwrap();
    assert_eq!(s.delete_tenant(b.id).await.unwrap_err(), StoreError::NotFound("tenant"));
    assert_eq!(s.list_tenants().await.unwrap().len(), 1);
    assert!(
        s.list_sites(b.id).await.unwrap().is_empty(),
        "a tenant's sites go with it"
    );
}

#[tokio::test]
async fn postgres_row_level_security_stops_a_query_that_forgot_its_tenant_filter() {
    let Some(db) = common::TestDb::postgres().await else {
        return;
    };
    let pg = store::PgStore::open(&db.url).await.unwrap();
    let now = Utc.with_ymd_and_hms(2026, 3, 19, 8, 0, 0).unwrap();
    let a = pg.create_tenant("A", None, now).await.unwrap();
    let b = pg.create_tenant("B", None, now).await.unwrap();
    for name in ["a1", "a2"] {
        pg.create_site(
            a.id,
            NewSite {
                name,
                latitude: None,
                longitude: None,
            },
            now,
        )
        .await
        .unwrap();
    }
    pg.create_site(
        b.id,
        NewSite {
            name: "b1",
            latitude: None,
            longitude: None,
        },
        now,
    )
    .await
    .unwrap();

    let mut tx = pg.tenant_tx(a.id).await.unwrap();
    // No WHERE clause at all: RLS alone limits it to tenant A.
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM sites")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(count, 2);
    let (foreign,): (i64,) = sqlx::query_as("SELECT count(*) FROM sites WHERE tenant_id = $1")
        .bind(b.id.0)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(foreign, 0, "tenant B's rows are invisible");
    let forged = sqlx::query(
        "INSERT INTO sites (id, tenant_id, name, created_at, updated_at) VALUES ($1, $2, 'x', now(), now())",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(b.id.0)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(forged.to_string().contains("row-level security"), "{forged}");
    drop(tx);

    // A transaction that never set a tenant sees nothing.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE tod_app").execute(&mut *tx).await.unwrap();
    let (none,): (i64,) = sqlx::query_as("SELECT count(*) FROM sites")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(none, 0);
    drop(tx);
    pool.close().await;
    drop(pg);
    db.drop_db().await;
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
