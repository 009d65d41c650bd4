//! Authentication over real HTTP: SRP login (also against an independent Python SRP-6a
//! implementation), refresh rotation and reuse detection, logout, API keys, rate limiting, the
//! error format, security headers and the audit chain.

mod common;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Auth, TestDb, TestServer};
use serde_json::{Value, json};

fn enrol(email: &str, password: &str) -> Value {
    tod_server::client::enrolment(email, password).unwrap()
}

/// Creates a tenant and a user in it with the given role; returns (tenant id, bearer).
async fn tenant_user(srv: &TestServer, root: &Auth, tenant: &str, email: &str, role: &str) -> (String, Auth) {
    let t = srv
        .call("POST", "/api/tenants", root, Some(json!({ "name": tenant })))
        .await;
    let tid = if t.status == 201 {
        t.json["id"].as_str().unwrap().to_owned()
    } else {
        let all = srv.call("GET", "/api/tenants", root, None).await;
        all.json
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == tenant)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let e = enrol(email, "pw-of-the-test-user");
    let body = json!({ "email": email, "name": "User", "role": role, "tenant_id": tid,
                       "srp_salt": e["srp_salt"], "srp_verifier": e["srp_verifier"] });
    let created = srv.call("POST", "/api/users", root, Some(body)).await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    (tid, srv.bearer(email, "pw-of-the-test-user").await)
}

on_both_backends!(srp_login_tokens_refresh_rotation_reuse_and_logout);

async fn srp_login_tokens_refresh_rotation_reuse_and_logout(url: &str) {
    let srv = TestServer::start(url, 1000).await;

    // The bootstrap super admin logs in with SRP; the client checks the server's proof (M2).
    let tokens = srv.login("ROOT@tod.test", ADMIN_PASSWORD).await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = Auth::Bearer(tokens["access_token"].as_str().unwrap().into());
    let me = srv.call("GET", "/api/auth/me", &access, None).await;
    assert_eq!(
        (me.status, me.json["user"]["role"].as_str()),
        (200, Some("super_admin"))
    );
    assert!(me.json["user"]["last_login"].is_string());

    // Wrong password: 401 with the JSON error body; the server never learns the password.
    let bad = tod_server::client::login(&srv.url, ADMIN_EMAIL, "wrong")
        .await
        .unwrap_err();
    assert!(bad.contains("401") && bad.contains("Invalid credentials"), "{bad}");
    // A password sent to /login is refused: SRP is required.
    let pw = srv
        .call(
            "POST",
            "/api/auth/login",
            &Auth::None,
            Some(json!({ "email": ADMIN_EMAIL, "password": "x" })),
        )
        .await;
    assert_eq!((pw.status, pw.json["detail"].as_str()), (409, Some("srp_required")));
    assert_eq!(pw.header("x-auth-method"), Some("srp"));

    // The verify body also works on /api/auth/login, and a challenge is single use.
    let init = srv
        .call(
            "POST",
            "/api/auth/srp/init",
            &Auth::None,
            Some(json!({ "email": ADMIN_EMAIL })),
        )
        .await;
    let a = [5u8; 48];
    let proof = tod_core::srp::client_proof(
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        &hex::decode(init.json["salt"].as_str().unwrap()).unwrap(),
        &hex::decode(init.json["server_public"].as_str().unwrap()).unwrap(),
        &a,
    )
    .unwrap();
    let verify = json!({ "email": ADMIN_EMAIL, "session_id": init.json["session_id"],
                         "client_public": hex::encode(&proof.client_public), "client_proof": hex::encode(&proof.proof) });
    let ok = srv
        .call("POST", "/api/auth/login", &Auth::None, Some(verify.clone()))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    proof
        .verify_server(&hex::decode(ok.json["server_proof"].as_str().unwrap()).unwrap())
        .unwrap();
    let cookies = ok.cookies();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("access_token=") && c.contains("HttpOnly"))
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("refresh_token=") && c.contains("Path=/api/auth/refresh"))
    );
    let again = srv
        .call("POST", "/api/auth/srp/verify", &Auth::None, Some(verify))
        .await;
    assert_eq!(
        (again.status, again.json["detail"].as_str()),
        (401, Some("Invalid credentials"))
    );

    // The access cookie authenticates too.
    let cookie = cookies.iter().find(|c| c.starts_with("access_token=")).unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(
        srv.call("GET", "/api/auth/me", &Auth::Cookie(cookie), None)
            .await
            .status,
        200
    );

    // Refresh rotates: the new refresh token works once, the old one is reuse and kills the session.
    let r0 = tokens["refresh_token"].as_str().unwrap();
    let r1 = srv
        .call(
            "POST",
            "/api/auth/refresh",
            &Auth::None,
            Some(json!({ "refresh_token": r0 })),
        )
        .await;
    assert_eq!(r1.status, 200, "{:?}", r1.json);
    let access1 = Auth::Bearer(r1.json["access_token"].as_str().unwrap().into());
    assert_eq!(srv.call("GET", "/api/auth/me", &access1, None).await.status, 200);
    let reuse = srv
        .call(
            "POST",
            "/api/auth/refresh",
            &Auth::None,
            Some(json!({ "refresh_token": r0 })),
        )
        .await;
    assert_eq!(reuse.status, 401);
    assert!(
        reuse.json["detail"].as_str().unwrap().contains("reuse"),
        "{:?}",
        reuse.json
    );
    let r2 = r1.json["refresh_token"].as_str().unwrap();
    let dead = srv
        .call(
            "POST",
            "/api/auth/refresh",
            &Auth::None,
            Some(json!({ "refresh_token": r2 })),
        )
        .await;
    assert_eq!(dead.status, 401, "the whole family is revoked");
    assert_eq!(
        srv.call("GET", "/api/auth/me", &access1, None).await.status,
        401,
        "and its access tokens"
    );
    assert_eq!(srv.call("GET", "/api/auth/me", &access, None).await.status, 401);
    // The refresh cookie is accepted in place of a body.
    let fresh = srv.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let cookie = format!("refresh_token={}", fresh["refresh_token"].as_str().unwrap());
    assert_eq!(
        srv.call("POST", "/api/auth/refresh", &Auth::Cookie(cookie), None)
            .await
            .status,
        200
    );

    // Logout makes the current access token unusable at once.
    let live = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let out = srv.call("POST", "/api/auth/logout", &live, None).await;
    assert_eq!(out.status, 200);
    assert!(
        out.cookies()
            .iter()
            .any(|c| c.starts_with("access_token=;") && c.contains("Max-Age=0"))
    );
    let after = srv.call("GET", "/api/auth/me", &live, None).await;
    assert_eq!(after.status, 401);
    assert_eq!(after.header("www-authenticate"), Some("Bearer"));

    // Garbage tokens.
    for t in ["", "not.a.jwt", "mktp_nope"] {
        let r = srv.call("GET", "/api/auth/me", &Auth::Bearer(t.into()), None).await;
        assert_eq!(r.status, 401, "{t:?}");
        assert!(r.json["detail"].is_string());
    }
    assert_eq!(
        srv.call("GET", "/api/auth/me", &Auth::None, None).await.json["detail"],
        "Not authenticated"
    );

    // Every login, failure, reuse and logout is in the platform chain, which verifies.
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let log = srv.call("GET", "/api/audit-logs?limit=100", &root, None).await;
    let actions: Vec<&str> = log
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for want in [
        "user.bootstrapped",
        "login",
        "login.failed",
        "session.reuse_detected",
        "logout",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let check = srv.call("GET", "/api/audit-logs/verify", &root, None).await;
    assert_eq!(
        (check.json["intact"].as_bool(), check.json["records"].as_u64() > Some(5)),
        (Some(true), true)
    );
}

#[tokio::test]
async fn unknown_addresses_get_a_challenge_that_looks_real_for_every_letter_case() {
    let db = TestDb::sqlite();
    let srv = TestServer::start(&db.url, 1000).await;
    let init = |email: &'static str| {
        let srv = &srv;
        async move {
            srv.call(
                "POST",
                "/api/auth/srp/init",
                &Auth::None,
                Some(json!({ "email": email })),
            )
            .await
        }
    };
    let real = init(ADMIN_EMAIL).await;
    let ghost1 = init("ghost@tod.test").await;
    let ghost2 = init("GHOST@Tod.Test").await;
    for r in [&real, &ghost1, &ghost2] {
        assert_eq!(r.status, 200);
        assert_eq!(r.json["salt"].as_str().unwrap().len(), 32, "16-byte salts for everyone");
        let b = r.json["server_public"].as_str().unwrap();
        assert!(b.len() >= 500 && b.len() <= 512, "B is a 2048-bit number for everyone");
    }
    assert_eq!(
        ghost1.json["salt"], ghost2.json["salt"],
        "the same fake salt for every case (§12.13)"
    );
    assert_ne!(
        ghost1.json["server_public"], ghost2.json["server_public"],
        "fresh B each time, like a real user"
    );
    let bad = tod_server::client::login(&srv.url, "ghost@tod.test", "anything")
        .await
        .unwrap_err();
    assert!(bad.contains("Invalid credentials"), "{bad}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_srp_implementation_interoperates() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/srp_interop.py");
    let probe = std::process::Command::new("python3")
        .args(["-c", "import srp"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        if std::env::var_os("TOD_REQUIRE_ORACLES").is_some() {
            panic!("the Python `srp` package is required (pip install srp)");
        }
        eprintln!("SKIP: python3 with the `srp` package (pysrp) is not installed");
        return;
    }
    let db = TestDb::sqlite();
    let srv = TestServer::start(&db.url, 1000).await;
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let t = srv
        .call("POST", "/api/tenants", &root, Some(json!({ "name": "Interop" })))
        .await;
    let tid = t.json["id"].as_str().unwrap().to_owned();

    // pysrp enrols (salt + verifier) for a new account; our server stores them.
    let out = std::process::Command::new("python3")
        .args([script, "enrol", "py@tod.test", "python password"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    let body = json!({ "email": "py@tod.test", "name": "Py", "role": "viewer", "tenant_id": tid,
                       "srp_salt": e["srp_salt"], "srp_verifier": e["srp_verifier"] });
    assert_eq!(srv.call("POST", "/api/users", &root, Some(body)).await.status, 201);
    // Our Rust client logs in to the account pysrp enrolled...
    srv.login("py@tod.test", "python password").await;
    // ...and pysrp logs in over HTTP to accounts we enrolled, checking our server's M2.
    for (email, password) in [("py@tod.test", "python password"), (ADMIN_EMAIL, ADMIN_PASSWORD)] {
        let out = std::process::Command::new("python3")
            .args([script, "login", &srv.url, email, password])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8(out.stdout).unwrap();
        let me = srv
            .call("GET", "/api/auth/me", &Auth::Bearer(token.trim().into()), None)
            .await;
        assert_eq!(me.json["user"]["email"], email);
    }
    // pysrp with a wrong password is refused.
    let out = std::process::Command::new("python3")
        .args([script, "login", &srv.url, "py@tod.test", "wrong"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    db.drop_db().await;
}

on_both_backends!(api_keys_are_shown_once_scoped_and_revocable);

async fn api_keys_are_shown_once_scoped_and_revocable(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tid, admin) = tenant_user(&srv, &root, "Keys Co", "admin@keys.test", "tenant_admin").await;
    let (other_tid, _) = tenant_user(&srv, &root, "Other Co", "admin@other.test", "admin").await;
    let path = format!("/api/tenants/{tid}/api-keys");

    let bad = srv
        .call(
            "POST",
            &path,
            &admin,
            Some(json!({ "name": "k", "scopes": ["devices:read", "root"] })),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.json["detail"].as_str().unwrap().contains("root"), "{:?}", bad.json);
    let empty = srv
        .call("POST", &path, &admin, Some(json!({ "name": "k", "scopes": [] })))
        .await;
    assert_eq!(empty.status, 400);
    let extra = srv
        .call(
            "POST",
            &path,
            &admin,
            Some(json!({ "name": "k", "scopes": ["devices:read"], "admin": true })),
        )
        .await;
    assert_eq!(extra.status, 422, "unknown fields are refused");

    let made = srv
        .call(
            "POST",
            &path,
            &admin,
            Some(json!({ "name": "grafana", "scopes": ["devices:read", "alerts:read"] })),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    let key = made.json["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("mktp_") && key.len() == 48);
    assert_eq!(made.json["key_prefix"].as_str().unwrap(), &key[..9]);
    let listed = srv.call("GET", &path, &admin, None).await;
    assert!(listed.json[0].get("key").is_none(), "the key is shown once");
    assert!(!listed.json.to_string().contains(&key[9..]));

    // X-API-Key and Bearer both work; the key reads its tenant's sites but cannot write them
    // without devices:write, and never sees another tenant.
    let sites = format!("/api/tenants/{tid}/sites");
    for auth in [Auth::ApiKey(key.clone()), Auth::Bearer(key.clone())] {
        assert_eq!(srv.call("GET", &sites, &auth, None).await.status, 200);
    }
    let write = srv
        .call("POST", &sites, &Auth::ApiKey(key.clone()), Some(json!({ "name": "x" })))
        .await;
    assert_eq!(
        (write.status, write.json["detail"].as_str()),
        (403, Some("API key missing required scope: devices:write"))
    );
    let foreign = srv
        .call(
            "GET",
            &format!("/api/tenants/{other_tid}/sites"),
            &Auth::ApiKey(key.clone()),
            None,
        )
        .await;
    assert_eq!(foreign.status, 403);
    let keys_admin = srv.call("GET", &path, &Auth::ApiKey(key.clone()), None).await;
    assert_eq!(keys_admin.status, 403, "keys cannot manage keys");
    let me = srv.call("GET", "/api/auth/me", &Auth::ApiKey(key.clone()), None).await;
    assert_eq!(
        (me.json["kind"].as_str(), me.json["role"].as_str()),
        (Some("api_key"), Some("operator"))
    );
    let used = srv.call("GET", &path, &admin, None).await;
    assert!(used.json[0]["last_used_at"].is_string(), "last use is recorded");

    let id = made.json["id"].as_str().unwrap();
    let revoked = srv.call("DELETE", &format!("{path}/{id}"), &admin, None).await;
    assert_eq!(
        (revoked.status, revoked.json["status"].as_str()),
        (200, Some("revoked"))
    );
    let r = srv.call("GET", &sites, &Auth::ApiKey(key.clone()), None).await;
    assert_eq!(
        (r.status, r.json["detail"].as_str()),
        (401, Some("Invalid, expired, or revoked API key"))
    );
    let twice = srv.call("DELETE", &format!("{path}/{id}"), &admin, None).await;
    assert_eq!(
        (twice.status, twice.json["detail"].as_str()),
        (404, Some("API key not found or already revoked."))
    );
    let past = srv
        .call(
            "POST",
            &path,
            &admin,
            Some(json!({ "name": "old", "scopes": ["devices:read"], "expires_at": "2020-01-01T00:00:00Z" })),
        )
        .await;
    assert_eq!(past.status, 422);

    let log = srv.call("GET", "/api/audit-logs", &admin, None).await;
    let actions: Vec<&str> = log
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"api_key.created") && actions.contains(&"api_key.revoked"),
        "{actions:?}"
    );
}

on_both_backends!(users_are_managed_within_the_role_matrix);

async fn users_are_managed_within_the_role_matrix(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tid, admin) = tenant_user(&srv, &root, "Users Co", "admin@users.test", "admin").await;
    let (_, op) = tenant_user(&srv, &root, "Users Co", "op@users.test", "operator").await;
    let (other_tid, other_admin) = tenant_user(&srv, &root, "Rival Co", "admin@rival.test", "admin").await;
    let e = enrol("new@users.test", "new user password");
    let new_user = |role: &str, tenant: &str| {
        json!({ "email": "new@users.test", "name": "New", "role": role, "tenant_id": tenant,
                "srp_salt": e["srp_salt"], "srp_verifier": e["srp_verifier"] })
    };
    // Nobody grants above their own role (§12.11), and tenants stay apart.
    let up = srv
        .call("POST", "/api/users", &admin, Some(new_user("super_admin", &tid)))
        .await;
    assert_eq!(up.status, 422, "{:?}", up.json);
    let up = srv
        .call("POST", "/api/users", &op, Some(new_user("viewer", &tid)))
        .await;
    assert_eq!(up.status, 403, "operators do not manage users");
    let foreign = srv
        .call("POST", "/api/users", &admin, Some(new_user("viewer", &other_tid)))
        .await;
    assert_eq!(foreign.status, 403);
    let made = srv
        .call("POST", "/api/users", &admin, Some(new_user("operator", &tid)))
        .await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    let id = made.json["id"].as_str().unwrap().to_owned();
    let dup = srv
        .call("POST", "/api/users", &admin, Some(new_user("viewer", &tid)))
        .await;
    assert_eq!(
        (dup.status, dup.json["detail"].as_str()),
        (409, Some("A user with this email already exists"))
    );

    let promote = srv
        .call(
            "PATCH",
            &format!("/api/users/{id}"),
            &admin,
            Some(json!({ "role": "super_admin" })),
        )
        .await;
    assert_eq!(promote.status, 403, "{:?}", promote.json);
    let ok = srv
        .call(
            "PATCH",
            &format!("/api/users/{id}"),
            &admin,
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!((ok.status, ok.json["role"].as_str()), (200, Some("admin")));
    // Another tenant's admin cannot see the account at all.
    assert_eq!(
        srv.call("GET", &format!("/api/users/{id}"), &other_admin, None)
            .await
            .status,
        404
    );
    let theirs = srv.call("GET", "/api/users", &other_admin, None).await;
    assert_eq!(theirs.json.as_array().unwrap().len(), 1);
    assert_eq!(
        srv.call("GET", &format!("/api/users?tenant_id={tid}"), &other_admin, None)
            .await
            .status,
        403
    );

    // Disabling an account ends its sessions at once.
    let session = srv.bearer("new@users.test", "new user password").await;
    assert_eq!(srv.call("GET", "/api/auth/me", &session, None).await.status, 200);
    let off = srv
        .call(
            "PATCH",
            &format!("/api/users/{id}"),
            &admin,
            Some(json!({ "is_active": false })),
        )
        .await;
    assert_eq!(off.status, 200);
    assert_eq!(srv.call("GET", "/api/auth/me", &session, None).await.status, 401);
    assert!(
        tod_server::client::login(&srv.url, "new@users.test", "new user password")
            .await
            .is_err()
    );

    // A password change sends a new verifier and ends the caller's sessions.
    let e2 = enrol("op@users.test", "a brand new password");
    let changed = srv
        .call(
            "POST",
            "/api/auth/change-password",
            &op,
            Some(json!({ "srp_salt": e2["srp_salt"], "srp_verifier": e2["srp_verifier"] })),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.json);
    assert_eq!(srv.call("GET", "/api/auth/me", &op, None).await.status, 401);
    srv.login("op@users.test", "a brand new password").await;

    assert_eq!(
        srv.call("DELETE", &format!("/api/users/{id}"), &admin, None)
            .await
            .status,
        204
    );
    assert_eq!(
        srv.call("GET", &format!("/api/users/{id}"), &admin, None).await.status,
        404
    );
    let actions: Vec<String> = srv
        .call("GET", "/api/audit-logs?limit=500", &admin, None)
        .await
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "user.created",
        "user.updated",
        "user.password_changed",
        "user.deleted",
        "login",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} missing: {actions:?}");
    }
}

#[tokio::test]
async fn the_sixth_login_attempt_in_a_minute_gets_429_with_a_json_body() {
    let db = TestDb::sqlite();
    let srv = TestServer::start(&db.url, 5).await;
    let statuses: Vec<u16> = futures_lite_seq(&srv, 6).await;
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let r = srv
        .call(
            "POST",
            "/api/auth/srp/init",
            &Auth::None,
            Some(json!({ "email": "x@y.z" })),
        )
        .await;
    assert_eq!(r.status, 429);
    assert!(r.json["detail"].as_str().unwrap().contains("Rate limit"));
    assert!(r.header("retry-after").is_some());
    // Other routes are not limited.
    for _ in 0..10 {
        assert_eq!(srv.call("GET", "/health", &Auth::None, None).await.status, 200);
    }
    db.drop_db().await;
}

async fn futures_lite_seq(srv: &TestServer, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = srv
            .call(
                "POST",
                "/api/auth/srp/init",
                &Auth::None,
                Some(json!({ "email": "x@y.z" })),
            )
            .await;
        out.push(r.status);
    }
    out
}

#[tokio::test]
async fn errors_are_json_and_responses_carry_security_headers() {
    let db = TestDb::sqlite();
    let srv = TestServer::start(&db.url, 1000).await;
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let syntax = common::request(
        srv.addr,
        "POST",
        "/api/tenants",
        &root,
        Some("{nope".into()),
        "application/json",
    )
    .await;
    assert_eq!(syntax.status, 400);
    assert!(syntax.json["detail"].is_string());
    let no_type = common::request(srv.addr, "POST", "/api/tenants", &root, Some("{}".into()), "text/plain").await;
    assert_eq!(no_type.status, 400);
    let shape = srv
        .call("POST", "/api/tenants", &root, Some(json!({ "name": 5 })))
        .await;
    assert_eq!(shape.status, 422);
    assert!(shape.json["detail"].is_string());
    let blank = srv
        .call("POST", "/api/tenants", &root, Some(json!({ "name": "  " })))
        .await;
    assert_eq!(blank.status, 422);
    assert_eq!(
        srv.call("POST", "/api/tenants", &root, Some(json!({ "name": "Dup" })))
            .await
            .status,
        201
    );
    let dup = srv
        .call("POST", "/api/tenants", &root, Some(json!({ "name": "Dup" })))
        .await;
    assert_eq!(
        (dup.status, dup.json["detail"].as_str()),
        (409, Some("A tenant with this name already exists"))
    );
    let bad_id = srv.call("GET", "/api/tenants/not-a-uuid", &root, None).await;
    assert_eq!(bad_id.status, 422);
    let missing = srv
        .call("GET", "/api/tenants/00000000-0000-0000-0000-0000000000aa", &root, None)
        .await;
    assert_eq!(
        (missing.status, missing.json["detail"].as_str()),
        (404, Some("Tenant not found"))
    );
    let coords = srv
        .call("GET", "/api/tenants", &root, None)
        .await
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Dup")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let far = srv
        .call(
            "POST",
            &format!("/api/tenants/{coords}/sites"),
            &root,
            Some(json!({ "name": "Moon", "latitude": 95.0 })),
        )
        .await;
    assert_eq!(far.status, 422);

    let r = srv.call("GET", "/api/health", &Auth::None, None).await;
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(r.header("content-security-policy").is_some());
    let id = r.header("x-request-id").unwrap();
    assert_eq!(id.len(), 36, "a UUID request id: {id}");
    db.drop_db().await;
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let db = TestDb::sqlite();
    let srv = TestServer::start_with(&db.url, |s| s.cors_origins = vec!["https://noc.example.net".into()]).await;
    let addr = srv.addr;
    let preflight = |origin: &'static str| async move {
        let headers = [
            ("origin", origin),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization"),
        ];
        common::request_headers(addr, "OPTIONS", "/api/auth/me", &headers).await
    };
    let ok = preflight("https://noc.example.net").await;
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://noc.example.net")
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    let evil = preflight("https://evil.example.com").await;
    assert_eq!(evil.header("access-control-allow-origin"), None);
    let plain = TestServer::start(&db.url, 5).await;
    let none = common::request_headers(plain.addr, "GET", "/health", &[("origin", "https://noc.example.net")]).await;
    assert_eq!(
        none.header("access-control-allow-origin"),
        None,
        "no origins configured, none allowed"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn api_keys_of_the_callers_own_tenant_at_the_reference_path() {
    let db = TestDb::sqlite();
    let srv = TestServer::start(&db.url, 1000).await;
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tid, admin) = tenant_user(&srv, &root, "Alias Co", "admin@alias.test", "admin").await;
    let made = srv
        .call(
            "POST",
            "/api/api-keys",
            &admin,
            Some(json!({ "name": "k", "scopes": ["alerts:read"] })),
        )
        .await;
    assert_eq!(
        (made.status, made.json["tenant_id"].as_str()),
        (201, Some(tid.as_str()))
    );
    let listed = srv.call("GET", "/api/api-keys", &admin, None).await;
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    assert_eq!(
        srv.call("GET", "/api/api-keys", &root, None).await.status,
        422,
        "a super admin names the tenant"
    );
    assert_eq!(
        srv.call("GET", &format!("/api/api-keys?tenant_id={tid}"), &root, None)
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let id = made.json["id"].as_str().unwrap();
    assert_eq!(
        srv.call("DELETE", &format!("/api/api-keys/{id}"), &admin, None)
            .await
            .status,
        200
    );
    db.drop_db().await;
}
