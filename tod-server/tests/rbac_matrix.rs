//! The RBAC matrix over real HTTP: every route of the route table × every kind of caller × own and
//! foreign tenant. The table is the router's own, so a new route is in this test the day it is
//! added. Expectations come from tod-core's `authorize` (whose matrix its own tests pin down);
//! this test proves the server applies it on every route, to the right tenant, and never answers
//! a refused caller with data or a server error.

mod common;

use std::collections::BTreeSet;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Auth, TestServer};
use serde_json::json;
use tod_core::rbac::{Principal, Role, Scope, authorize};
use tod_core::{ApiKeyId, TenantId, UserId};
use tod_server::api::{Access, route_table};

struct Caller {
    name: &'static str,
    auth: Auth,
    principal: Option<Principal>,
    login: Option<String>,
}

async fn user(srv: &TestServer, root: &Auth, tenant: &str, email: &str, role: Role) -> Caller {
    let e = tod_server::client::enrolment(email, "matrix password").unwrap();
    let r = srv
        .call(
            "POST",
            "/api/users",
            root,
            Some(json!({ "email": email, "name": "M", "role": role, "tenant_id": tenant,
                         "srp_salt": e["srp_salt"], "srp_verifier": e["srp_verifier"] })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    Caller {
        name: role.as_str(),
        auth: srv.bearer(email, "matrix password").await,
        principal: Some(Principal::User {
            id: r.json["id"].as_str().unwrap().parse::<UserId>().unwrap(),
            role,
            tenant: Some(tenant.parse().unwrap()),
        }),
        login: Some(email.to_owned()),
    }
}

async fn key(srv: &TestServer, admin: &Auth, tenant: &str, name: &'static str, scopes: &[Scope]) -> Caller {
    let r = srv
        .call(
            "POST",
            &format!("/api/tenants/{tenant}/api-keys"),
            admin,
            Some(json!({ "name": name, "scopes": scopes })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    Caller {
        name,
        auth: Auth::ApiKey(r.json["key"].as_str().unwrap().to_owned()),
        principal: Some(Principal::ApiKey {
            id: r.json["id"].as_str().unwrap().parse::<ApiKeyId>().unwrap(),
            tenant: tenant.parse().unwrap(),
            scopes: scopes.iter().copied().collect::<BTreeSet<_>>(),
        }),
        login: None,
    }
}

on_both_backends!(every_route_every_role_own_and_foreign_tenant);

async fn every_route_every_role_own_and_foreign_tenant(url: &str) {
    let srv = TestServer::start(url, 100_000).await;
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut tenants = Vec::new();
    for name in ["Own Co", "Foreign Co"] {
        let t = srv
            .call("POST", "/api/tenants", &root, Some(json!({ "name": name })))
            .await;
        tenants.push(t.json["id"].as_str().unwrap().to_owned());
    }
    let (own, foreign) = (tenants[0].clone(), tenants[1].clone());
    let admin = user(&srv, &root, &own, "admin@m.test", Role::Admin).await;
    let root_id = srv.call("GET", "/api/auth/me", &root, None).await.json["user"]["id"]
        .as_str()
        .unwrap()
        .parse::<UserId>()
        .unwrap();
    let callers = vec![
        Caller {
            name: "anonymous",
            auth: Auth::None,
            principal: None,
            login: None,
        },
        user(&srv, &root, &own, "viewer@m.test", Role::Viewer).await,
        user(&srv, &root, &own, "operator@m.test", Role::Operator).await,
        key(&srv, &admin.auth, &own, "key:all-scopes", &Scope::ALL).await,
        key(&srv, &admin.auth, &own, "key:devices-read", &[Scope::DevicesRead]).await,
        admin,
        Caller {
            name: "super_admin",
            auth: root.clone(),
            principal: Some(Principal::User {
                id: root_id,
                role: Role::SuperAdmin,
                tenant: None,
            }),
            login: Some(ADMIN_EMAIL.into()),
        },
    ];

    let routes = route_table();
    assert!(routes.len() >= 25, "the table is the router: {} routes", routes.len());
    let mut checked = 0;
    for route in &routes {
        for which in ["own", "foreign"] {
            let target = if which == "own" { &own } else { &foreign };
            if !route.path.contains("{tenant_id}") && which == "foreign" {
                continue;
            }
            for c in &callers {
                let expected = match (&c.principal, route.access) {
                    (_, Access::Public { .. }) => Ok(()),
                    (None, _) => Err(401),
                    (Some(_), Access::Authenticated) => Ok(()),
                    // Only agents deliver telemetry: a valid user or API key is refused.
                    (Some(_), Access::Agent) => Err(403),
                    (Some(p), Access::Own(action)) => authorize(p, p.tenant(), action).map_err(|_| 403),
                    (Some(p), Access::Tenant(action)) => {
                        authorize(p, Some(target.parse::<TenantId>().unwrap()), action).map_err(|_| 403)
                    }
                };
                // A request that would destroy the fixtures is pointed at a throwaway tenant, and
                // a logout uses a session of its own.
                let mut tenant = target.clone();
                if expected.is_ok() && route.method == "DELETE" && route.path == "/api/tenants/{tenant_id}" {
                    let name = format!("Throwaway {checked}");
                    let t = srv
                        .call("POST", "/api/tenants", &root, Some(json!({ "name": name })))
                        .await;
                    tenant = t.json["id"].as_str().unwrap().to_owned();
                }
                let mut auth = c.auth.clone();
                if route.path == "/api/auth/logout"
                    && let Some(email) = &c.login
                {
                    let pw = if email == ADMIN_EMAIL {
                        ADMIN_PASSWORD
                    } else {
                        "matrix password"
                    };
                    auth = srv.bearer(email, pw).await;
                }
                let path = route
                    .path
                    .replace("{tenant_id}", &tenant)
                    .replace("{user_id}", &uuid::Uuid::new_v4().to_string())
                    .replace("{site_id}", &uuid::Uuid::new_v4().to_string())
                    .replace("{key_id}", &uuid::Uuid::new_v4().to_string())
                    .replace("{device_id}", &uuid::Uuid::new_v4().to_string())
                    .replace("{agent_id}", &uuid::Uuid::new_v4().to_string());
                let body = matches!(route.method, "POST" | "PATCH" | "PUT").then(|| json!({}));
                let r = srv.call(route.method, &path, &auth, body).await;
                let what = format!(
                    "{} {path} as {} ({which} tenant): {} {:?}",
                    route.method, c.name, r.status, r.json
                );
                assert!(r.status < 500, "server error: {what}");
                match expected {
                    Err(code) => {
                        assert_eq!(r.status, code, "refused caller got something else: {what}");
                        assert!(r.json["detail"].is_string(), "{what}");
                    }
                    Ok(()) => {
                        assert!(r.status != 403, "allowed caller was refused: {what}");
                        let public_401 = route.path == "/api/auth/refresh"; // no refresh token sent
                        assert!(
                            r.status != 401 || public_401,
                            "allowed caller was not authenticated: {what}"
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    // Spot checks pinned to the reference's role table, so a route declared with the wrong action
    // fails here even though the walk above (which trusts the declaration) would pass.
    let by_name = |n: &str| callers.iter().find(|c| c.name == n).unwrap();
    let sites = format!("/api/tenants/{own}/sites");
    let pinned: &[(&str, &str, &str, u16)] = &[
        ("viewer", "GET", &sites, 200),
        ("viewer", "POST", &sites, 403),
        ("operator", "POST", &sites, 422),
        ("key:devices-read", "GET", &sites, 200),
        ("key:devices-read", "POST", &sites, 403),
        ("key:all-scopes", "POST", &sites, 422),
        ("operator", "GET", "/api/users", 403),
        ("admin", "GET", "/api/users", 200),
        ("admin", "POST", "/api/tenants", 403),
        ("viewer", "GET", "/api/audit-logs", 403),
        ("admin", "GET", "/api/audit-logs", 200),
        ("key:all-scopes", "GET", "/api/audit-logs", 403),
        ("key:all-scopes", "GET", "/api/users", 403),
        ("viewer", "GET", "/api/tenants", 200),
    ];
    for (who, method, path, want) in pinned {
        let body = (*method == "POST").then(|| json!({}));
        let r = srv.call(method, path, &by_name(who).auth, body).await;
        assert_eq!(r.status, *want, "{method} {path} as {who}: {:?}", r.json);
    }
    let foreign_sites = format!("/api/tenants/{foreign}/sites");
    for who in ["viewer", "operator", "admin", "key:all-scopes"] {
        let r = srv.call("GET", &foreign_sites, &by_name(who).auth, None).await;
        assert_eq!(r.status, 403, "{who} reads another tenant's sites");
    }
    assert_eq!(srv.call("GET", &foreign_sites, &root, None).await.status, 200);

    eprintln!(
        "checked {checked} route × caller × tenant cases over {} routes",
        routes.len()
    );
    assert!(checked > 250);
}
