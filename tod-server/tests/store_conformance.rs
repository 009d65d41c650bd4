//! One store conformance suite, run against SQLite and against PostgreSQL.

mod common;

use chrono::{TimeZone, Utc};
use tod_core::SiteId;
use tod_core::TenantId;
use tod_core::rbac::{Role, Scope};
use tod_core::{ApiKeyId, UserId};
use tod_server::store::{self, Audit, NewApiKey, NewSite, NewUser, Rotation, Store, StoreError, UserPatch};
use uuid::Uuid;

fn audit(chain: TenantId, action: &str) -> Audit {
    Audit {
        chain,
        actor_user: None,
        actor_api_key: None,
        action: action.into(),
        resource_type: None,
        resource_id: None,
        details: serde_json::json!({ "by": "conformance" }),
        ip: Some("127.0.0.1".into()),
    }
}

fn platform(action: &str) -> Audit {
    audit(store::PLATFORM_CHAIN, action)
}

/// Users, login sessions, SRP challenges, API keys and the audit chain.
async fn auth_conformance(s: &dyn Store) {
    let now = Utc.with_ymd_and_hms(2026, 3, 19, 8, 0, 0).unwrap();
    let t = s
        .create_tenant("Auth Co", None, now, &platform("tenant.created"))
        .await
        .unwrap();
    let other = s
        .create_tenant("Other Co", None, now, &platform("tenant.created"))
        .await
        .unwrap();
    assert_eq!(s.count_users().await.unwrap(), 0);
    let new = |email, role, tenant| NewUser {
        email,
        name: "Pat",
        role,
        tenant,
        salt: &[1; 16],
        verifier: &[2; 256],
    };
    let root = s
        .create_user(
            new("Root@Example.NET ", Role::SuperAdmin, None),
            now,
            &platform("user.created"),
        )
        .await
        .unwrap();
    assert_eq!(
        root.email, "root@example.net",
        "e-mails are stored trimmed and lower-cased"
    );
    let op = s
        .create_user(
            new("op@acme.net", Role::Operator, Some(t.id)),
            now,
            &audit(t.id, "user.created"),
        )
        .await
        .unwrap();
    assert_eq!(
        s.create_user(
            new("OP@acme.net", Role::Viewer, Some(t.id)),
            now,
            &audit(t.id, "user.created")
        )
        .await
        .unwrap_err(),
        StoreError::Conflict("A user with this email already exists".into())
    );
    assert!(
        matches!(
            s.create_user(new("x@acme.net", Role::Operator, None), now, &platform("user.created"))
                .await
                .unwrap_err(),
            StoreError::Invalid(_)
        ),
        "only a super admin has no tenant"
    );
    assert!(matches!(
        s.create_user(
            new("not-an-email", Role::Viewer, Some(t.id)),
            now,
            &audit(t.id, "user.created")
        )
        .await
        .unwrap_err(),
        StoreError::Invalid(_)
    ));
    assert_eq!(s.count_users().await.unwrap(), 2);
    let creds = s.user_credentials("  OP@ACME.NET").await.unwrap().unwrap();
    assert_eq!(
        (creds.user.id, creds.salt.len(), creds.verifier.len()),
        (op.id, 16, 256)
    );
    assert!(s.user_credentials("nobody@acme.net").await.unwrap().is_none());
    assert_eq!(s.get_user(Some(t.id), op.id).await.unwrap(), op);
    assert_eq!(
        s.get_user(Some(other.id), op.id).await.unwrap_err(),
        StoreError::NotFound("user")
    );
    assert_eq!(s.list_users(Some(t.id)).await.unwrap(), vec![op.clone()]);
    assert_eq!(s.list_users(None).await.unwrap().len(), 2);

    // Sessions: rotation is single-use, reuse kills the family, changes to the account end it.
    let (sid, j1, j2, j3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let later = now + chrono::Duration::days(7);
    s.open_session(sid, op.id, j1, now, later, &audit(t.id, "login"))
        .await
        .unwrap();
    assert_eq!(s.get_user(None, op.id).await.unwrap().last_login, Some(now));
    let live = s.live_session(sid, now).await.unwrap().unwrap();
    assert_eq!((live.user.id, live.revoked), (op.id, false));
    assert_eq!(s.rotate_session(sid, j1, j2, now).await.unwrap(), Rotation::Rotated);
    assert_eq!(s.rotate_session(sid, j2, j3, now).await.unwrap(), Rotation::Rotated);
    assert_eq!(
        s.rotate_session(sid, j1, Uuid::new_v4(), now).await.unwrap(),
        Rotation::Reused
    );
    assert!(
        s.live_session(sid, now).await.unwrap().unwrap().revoked,
        "reuse revokes the family"
    );
    assert_eq!(
        s.rotate_session(sid, j3, Uuid::new_v4(), now).await.unwrap(),
        Rotation::Dead
    );
    assert!(s.live_session(Uuid::new_v4(), now).await.unwrap().is_none());
    let sid2 = Uuid::new_v4();
    s.open_session(sid2, op.id, j1, now, later, &audit(t.id, "login"))
        .await
        .unwrap();
    assert!(s.live_session(sid2, later).await.unwrap().unwrap().revoked, "expired");
    let disabled = UserPatch {
        is_active: Some(false),
        ..UserPatch::default()
    };
    let u = s
        .update_user(Some(t.id), op.id, disabled, now, &audit(t.id, "user.updated"))
        .await
        .unwrap();
    assert!(!u.is_active);
    assert!(
        s.live_session(sid2, now).await.unwrap().unwrap().revoked,
        "disabling ends sessions"
    );
    assert_eq!(
        s.update_user(Some(other.id), op.id, disabled, now, &audit(other.id, "user.updated"))
            .await
            .unwrap_err(),
        StoreError::NotFound("user")
    );
    let sid3 = Uuid::new_v4();
    s.open_session(sid3, root.id, j1, now, later, &platform("login"))
        .await
        .unwrap();
    s.set_user_verifier(root.id, &[3; 16], &[4; 200], now, &platform("user.password_changed"))
        .await
        .unwrap();
    assert!(
        s.live_session(sid3, now).await.unwrap().unwrap().revoked,
        "a new password ends sessions"
    );
    assert_eq!(
        s.user_credentials("root@example.net").await.unwrap().unwrap().salt,
        vec![3; 16]
    );

    // SRP challenges are single use and expire.
    let c = store::SrpChallenge {
        id: Uuid::new_v4(),
        email: "op@acme.net".into(),
        user_id: Some(op.id),
        b: vec![9; 48],
        salt: vec![1; 16],
        verifier: vec![2; 256],
        expires_at: now + chrono::Duration::seconds(60),
    };
    s.put_srp_challenge(&c, now).await.unwrap();
    assert_eq!(s.take_srp_challenge(c.id, now).await.unwrap(), Some(c.clone()));
    assert_eq!(s.take_srp_challenge(c.id, now).await.unwrap(), None, "single use");
    s.put_srp_challenge(&c, now).await.unwrap();
    assert_eq!(s.take_srp_challenge(c.id, c.expires_at).await.unwrap(), None, "expired");

    // API keys: hash lookup only while live, last use recorded, revocation is final.
    let scopes = [Scope::DevicesRead, Scope::AlertsRead];
    let key = NewApiKey {
        name: "grafana",
        key_prefix: "mktp_abcd",
        key_hash: "aa".repeat(32).leak(),
        scopes: &scopes,
        expires_at: Some(later),
        created_by: Some(root.id),
    };
    let k = s
        .create_api_key(t.id, key, now, &audit(t.id, "api_key.created"))
        .await
        .unwrap();
    assert_eq!((k.scopes.clone(), k.last_used_at), (scopes.to_vec(), None));
    let used = s.use_api_key(key.key_hash, now).await.unwrap().unwrap();
    assert_eq!((used.id, used.last_used_at), (k.id, Some(now)));
    assert!(s.use_api_key(key.key_hash, later).await.unwrap().is_none(), "expired");
    assert!(s.use_api_key(&"bb".repeat(32), now).await.unwrap().is_none());
    assert_eq!(
        s.revoke_api_key(other.id, k.id, now, &audit(other.id, "api_key.revoked"))
            .await
            .unwrap_err(),
        StoreError::NotFound("API key"),
        "another tenant cannot revoke it"
    );
    s.revoke_api_key(t.id, k.id, now, &audit(t.id, "api_key.revoked"))
        .await
        .unwrap();
    assert!(s.use_api_key(key.key_hash, now).await.unwrap().is_none(), "revoked");
    assert_eq!(
        s.revoke_api_key(t.id, k.id, now, &audit(t.id, "api_key.revoked"))
            .await
            .unwrap_err(),
        StoreError::NotFound("API key")
    );
    assert_eq!(
        s.revoke_api_key(t.id, ApiKeyId::from_u128(3), now, &audit(t.id, "x"))
            .await
            .unwrap_err(),
        StoreError::NotFound("API key")
    );
    let listed = s.list_api_keys(t.id).await.unwrap();
    assert_eq!((listed.len(), listed[0].revoked_at.is_some()), (1, true));
    assert!(s.list_api_keys(other.id).await.unwrap().is_empty());

    // The tenant's audit chain holds every write above, in order, and verifies.
    let log = s.list_audit(t.id, 100, 0).await.unwrap();
    let actions: Vec<&str> = log.iter().rev().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "user.created",
            "login",
            "login",
            "user.updated",
            "api_key.created",
            "api_key.revoked"
        ]
    );
    assert_eq!(log[0].seq, 6);
    assert_eq!(log[1].resource_type.as_deref(), Some("api_key"));
    assert_eq!(log[5].details["by"], "conformance");
    let check = s.verify_audit(t.id).await.unwrap();
    assert_eq!((check.records, check.intact), (6, true));
    assert!(s.verify_audit(store::PLATFORM_CHAIN).await.unwrap().intact);
    assert_eq!(s.list_audit(t.id, 2, 1).await.unwrap().len(), 2);

    // Deleting a user, and secrets that are generated once.
    s.delete_user(Some(t.id), op.id, &audit(t.id, "user.deleted"))
        .await
        .unwrap();
    assert_eq!(
        s.delete_user(Some(t.id), op.id, &audit(t.id, "user.deleted"))
            .await
            .unwrap_err(),
        StoreError::NotFound("user")
    );
    assert_eq!(
        s.get_user(None, UserId::from_u128(1)).await.unwrap_err(),
        StoreError::NotFound("user")
    );
    let first = s.secret("jwt", &|| vec![7; 32]).await.unwrap();
    let second = s.secret("jwt", &|| vec![8; 32]).await.unwrap();
    assert_eq!((first.clone(), second), (vec![7; 32], first));
}

async fn conformance(s: &dyn Store) {
    let now = Utc.with_ymd_and_hms(2026, 3, 19, 8, 0, 0).unwrap();
    s.ping().await.unwrap();
    let a = s
        .create_tenant(
            "  Acme Wireless ",
            Some("towers north"),
            now,
            &platform("tenant.created"),
        )
        .await
        .unwrap();
    assert_eq!(a.name, "Acme Wireless", "names are trimmed");
    assert_eq!(a.description.as_deref(), Some("towers north"));
    assert_eq!(a.created_at, now);
    let b = s
        .create_tenant("Bravo Net", None, now, &platform("tenant.created"))
        .await
        .unwrap();
    assert_eq!(s.get_tenant(a.id).await.unwrap(), a);
    let names: Vec<String> = s.list_tenants().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["Acme Wireless", "Bravo Net"]);
    assert_eq!(
        s.create_tenant("Acme Wireless", None, now, &platform("tenant.created"))
            .await
            .unwrap_err(),
        StoreError::Conflict("A tenant with this name already exists".into()),
        "a duplicate is a conflict (409), never an internal error"
    );
    assert!(
        matches!(
            s.create_tenant("   ", None, now, &platform("tenant.created"))
                .await
                .unwrap_err(),
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

    s.delete_tenant(b.id, &platform("tenant.deleted")).await.unwrap();
    assert_eq!(
        s.delete_tenant(b.id, &platform("tenant.deleted")).await.unwrap_err(),
        StoreError::NotFound("tenant")
    );
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
    let a = pg
        .create_tenant("A", None, now, &platform("tenant.created"))
        .await
        .unwrap();
    let b = pg
        .create_tenant("B", None, now, &platform("tenant.created"))
        .await
        .unwrap();
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

/// With autovacuum off (as on these machines) or behind, a fleet onboarded at once would be
/// planned as if its tables were empty; the store gathers statistics for tables that changed much,
/// and only for those.
#[tokio::test]
async fn postgres_statistics_are_gathered_for_tables_that_changed_much() {
    let Some(db) = common::TestDb::postgres().await else {
        return;
    };
    let s = store::open(&db.url).await.unwrap();
    let now = Utc.with_ymd_and_hms(2026, 3, 19, 8, 0, 0).unwrap();
    let t = s
        .create_tenant("Stats", None, now, &platform("tenant.created"))
        .await
        .unwrap();
    // The tables the migrations filled are brought up to date first.
    s.refresh_statistics().await.unwrap();
    for i in 0..120 {
        let name = format!("site-{i:03}");
        s.create_site(
            t.id,
            NewSite {
                name: &name,
                latitude: None,
                longitude: None,
            },
            now,
        )
        .await
        .unwrap();
    }
    // Row counts reach the statistics collector when a backend goes idle (within a second).
    let mut gathered = Vec::new();
    for _ in 0..50 {
        gathered = s.refresh_statistics().await.unwrap();
        if gathered.iter().any(|t| t == "sites") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(gathered.iter().any(|t| t == "sites"), "{gathered:?}");
    assert!(
        !gathered.iter().any(|t| t == "plugins"),
        "unchanged tables are left alone: {gathered:?}"
    );
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (estimate,): (f32,) = sqlx::query_as("SELECT reltuples FROM pg_class WHERE relname = 'sites'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(estimate, 120.0, "the planner now knows the table's size");
    let again = s.refresh_statistics().await.unwrap();
    assert!(!again.iter().any(|t| t == "sites"), "{again:?}");
    pool.close().await;
    drop(s);
    db.drop_db().await;
}

#[tokio::test]
async fn sqlite_store_conforms_and_survives_reopening() {
    let db = common::TestDb::sqlite();
    let s = store::open(&db.url).await.unwrap();
    assert_eq!(s.backend(), "sqlite");
    assert!(s.refresh_statistics().await.unwrap().is_empty(), "SQLite gathers none");
    conformance(s.as_ref()).await;
    auth_conformance(s.as_ref()).await;
    drop(s);
    // Migrations are idempotent and the data is still there.
    let again = store::open(&db.url).await.unwrap();
    assert_eq!(again.list_tenants().await.unwrap().len(), 3);
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
    auth_conformance(s.as_ref()).await;
    drop(s);
    db.drop_db().await;
}

/// The audit log refuses edits, and an edit made behind its back (trigger removed by someone with
/// the keys to the database) is found by verification at the record where it happened.
async fn tamper(s: &dyn Store, url: &str, postgres: bool) {
    use sqlx::Connection;
    let now = Utc.with_ymd_and_hms(2026, 3, 19, 8, 0, 0).unwrap();
    let t = s
        .create_tenant("Tamper Co", None, now, &platform("tenant.created"))
        .await
        .unwrap();
    for action in ["one", "two", "three"] {
        s.append_audit(&audit(t.id, action), now).await.unwrap();
    }
    assert!(s.verify_audit(t.id).await.unwrap().intact);
    let edit = "UPDATE audit_logs SET action = 'forged' WHERE seq = 2 AND tenant_id = $1";
    if postgres {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let refused = sqlx::query(edit).bind(t.id.0).execute(&mut c).await.unwrap_err();
        assert!(refused.to_string().contains("append-only"), "{refused}");
        sqlx::query("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query(edit).bind(t.id.0).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let refused = sqlx::query(edit).bind(t.id.0).execute(&mut c).await.unwrap_err();
        assert!(refused.to_string().contains("append-only"), "{refused}");
        sqlx::query("DROP TRIGGER audit_logs_no_update")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query(edit).bind(t.id.0).execute(&mut c).await.unwrap();
    }
    let check = s.verify_audit(t.id).await.unwrap();
    assert_eq!(
        (check.intact, check.first_broken_seq, check.records),
        (false, Some(2), 2)
    );
}

#[tokio::test]
async fn audit_tampering_is_refused_and_detected_on_sqlite() {
    let db = common::TestDb::sqlite();
    let s = store::open(&db.url).await.unwrap();
    tamper(s.as_ref(), &db.url, false).await;
    drop(s);
    db.drop_db().await;
}

#[tokio::test]
async fn audit_tampering_is_refused_and_detected_on_postgres() {
    let Some(db) = common::TestDb::postgres().await else {
        return;
    };
    let s = store::open(&db.url).await.unwrap();
    tamper(s.as_ref(), &db.url, true).await;
    drop(s);
    db.drop_db().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(matches!(store::open("mysql://x").await, Err(StoreError::Invalid(_))));
}
