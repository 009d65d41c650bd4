//! The embedded WireGuard gateway and `/api/vpn/*`, on SQLite and PostgreSQL: per-tenant subnet
//! allocation (lowest free, gaps refilled, duplicates refused, released when a tenant goes), an
//! agent enrolled through the API delivering through the real tunnel with the configuration the
//! API returned (tod-agent's daemon, the simulator, the gateway on loopback UDP), and removal and
//! revocation cutting the tunnel.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Auth, TestServer};
use serde_json::{Value, json};
use tod_agent::sim::{SimConfig, Simulator};

async fn tenant_with_agents(srv: &TestServer, root: &Auth, name: &str, agents: usize) -> (String, String, Vec<Value>) {
    let t = srv
        .call("POST", "/api/tenants", root, Some(json!({ "name": name })))
        .await;
    assert_eq!(t.status, 201, "{:?}", t.json);
    let tenant = t.json["id"].as_str().unwrap().to_owned();
    let s = srv
        .call(
            "POST",
            &format!("/api/tenants/{tenant}/sites"),
            root,
            Some(json!({ "name": "Tower" })),
        )
        .await;
    let site = s.json["id"].as_str().unwrap().to_owned();
    let mut out = Vec::new();
    for i in 0..agents {
        let a = srv
            .call(
                "POST",
                &format!("/api/tenants/{tenant}/agents"),
                root,
                Some(json!({ "name": format!("agent-{i}"), "site_id": site })),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.json);
        out.push(a.json);
    }
    (tenant, site, out)
}

async fn enrol(srv: &TestServer, root: &Auth, tenant: &str, body: Value) -> common::Resp {
    srv.call("POST", &format!("/api/vpn/peers?tenant_id={tenant}"), root, Some(body))
        .await
}

async fn subnets_are_allocated_per_tenant_lowest_free_first(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (a, _, a_agents) = tenant_with_agents(&srv, &root, "Alpha WISP", 2).await;
    let (b, _, b_agents) = tenant_with_agents(&srv, &root, "Bravo WISP", 1).await;

    let first = enrol(&srv, &root, &a, json!({ "agent_id": a_agents[0]["id"] })).await;
    assert_eq!(first.status, 201, "{:?}", first.json);
    assert_eq!(first.json["peer"]["address"], "10.99.1.2");
    let private = first.json["private_key"]
        .as_str()
        .expect("a generated key is returned once");
    let key: tod_tunnel::PrivateKey = private.parse().unwrap();
    assert_eq!(first.json["peer"]["public_key"], key.public_key().to_string());
    let config = first.json["agent_config"].as_str().unwrap();
    assert!(
        config.contains("address = \"10.99.1.2\"") && config.contains(private),
        "{config}"
    );

    // The agent brings its own key: the server never sees the private half.
    let own = tod_tunnel::PrivateKey::generate().unwrap();
    let second = enrol(
        &srv,
        &root,
        &a,
        json!({ "agent_id": a_agents[1]["id"], "public_key": own.public_key().to_string() }),
    )
    .await;
    assert_eq!(second.status, 201, "{:?}", second.json);
    assert_eq!(second.json["peer"]["address"], "10.99.1.3");
    assert!(second.json["private_key"].is_null());

    // The same key for another agent is refused; a malformed key is a 422.
    let dup = enrol(
        &srv,
        &root,
        &b,
        json!({ "agent_id": b_agents[0]["id"], "public_key": own.public_key().to_string() }),
    )
    .await;
    assert_eq!(dup.status, 409, "{:?}", dup.json);
    let bad = enrol(
        &srv,
        &root,
        &b,
        json!({ "agent_id": b_agents[0]["id"], "public_key": "short" }),
    )
    .await;
    assert_eq!(bad.status, 422, "{:?}", bad.json);
    // Another tenant's agent is not found from this tenant.
    let other = enrol(&srv, &root, &b, json!({ "agent_id": a_agents[0]["id"] })).await;
    assert_eq!(other.status, 404, "{:?}", other.json);

    let b_peer = enrol(&srv, &root, &b, json!({ "agent_id": b_agents[0]["id"] })).await;
    assert_eq!(
        b_peer.json["peer"]["address"], "10.99.2.2",
        "the next tenant gets the next subnet"
    );

    // Re-enrolling an agent keeps its address (a new key only).
    let again = enrol(&srv, &root, &a, json!({ "agent_id": a_agents[0]["id"] })).await;
    assert_eq!(again.json["peer"]["address"], "10.99.1.2");

    // Deleting a tenant frees its subnet for the next tenant.
    let gone = srv.call("DELETE", &format!("/api/tenants/{a}"), &root, None).await;
    assert_eq!(gone.status, 204, "{:?}", gone.json);
    let (c, _, c_agents) = tenant_with_agents(&srv, &root, "Charlie WISP", 1).await;
    let c_peer = enrol(&srv, &root, &c, json!({ "agent_id": c_agents[0]["id"] })).await;
    assert_eq!(c_peer.json["peer"]["address"], "10.99.1.2", "the gap is filled");

    let list = srv
        .call("GET", &format!("/api/vpn/peers?tenant_id={c}"), &root, None)
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.json.as_array().unwrap().len(),
        1,
        "only this tenant's peers: {:?}",
        list.json
    );
    let info = srv.call("GET", "/api/vpn", &root, None).await;
    assert_eq!(info.status, 200, "{:?}", info.json);
    assert_eq!(info.json["address"], "10.99.0.1");
}
on_both_backends!(subnets_are_allocated_per_tenant_lowest_free_first);

async fn an_enrolled_agent_delivers_through_the_tunnel_and_removal_cuts_it(url: &str) {
    let sim = Simulator::start(SimConfig {
        seed: 5,
        devices: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let srv = TestServer::start(url, 1000).await;
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tenant, site, agents) = tenant_with_agents(&srv, &root, "Tunnel WISP", 1).await;
    let mut devices = Vec::new();
    for i in 0..3 {
        let d = srv
            .call(
                "POST",
                &format!("/api/tenants/{tenant}/devices"),
                &root,
                Some(json!({ "name": format!("sim-{i}"), "host": "127.0.0.1", "site_id": site })),
            )
            .await;
        devices.push(d.json["id"].as_str().unwrap().to_owned());
    }
    let enrolled = enrol(&srv, &root, &tenant, json!({ "agent_id": agents[0]["id"] })).await;
    assert_eq!(enrolled.status, 201, "{:?}", enrolled.json);
    let endpoint = srv.state.vpn.as_ref().unwrap().local_addr();
    assert_eq!(enrolled.json["endpoint"], endpoint.to_string());

    // The agent's configuration: [agent] and the devices, plus what the API returned verbatim.
    let dir = std::env::temp_dir().join(format!("tod-vpn-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    let mut toml = format!(
        "[agent]\nid = \"{}\"\ntoken = \"{}\"\n[poll]\ninterval_secs = 1\n[spool]\ndir = \"{}\"\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n[[credentials]]\nname = \"sim\"\nusername = \"admin\"\npassword = \"admin\"\n",
        agents[0]["id"].as_str().unwrap(),
        agents[0]["token"].as_str().unwrap(),
        dir.join("spool").display()
    );
    for (i, id) in devices.iter().enumerate() {
        toml.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nhost = \"127.0.0.1\"\nport = {}\ntransport = \"plain\"\ncredentials = \"sim\"\n",
            sim.ports(i).plain.port()
        ));
    }
    toml.push_str(enrolled.json["agent_config"].as_str().unwrap());
    let cfg = tod_agent::config::AgentConfig::parse(&toml).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(tod_agent::daemon::run(cfg, async move {
        let _ = stop_rx.await;
    }));

    let devices_path = format!("/api/tenants/{tenant}/devices?site_id={site}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = srv.call("GET", &devices_path, &root, None).await;
        if r.json.as_array().unwrap().iter().all(|d| d["status"] == "online") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "devices never online through the tunnel: {:?}",
            r.json
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The gateway's view (refreshed four times a second): a live session that carried the batches.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let peers = srv
            .call("GET", &format!("/api/vpn/peers?tenant_id={tenant}"), &root, None)
            .await;
        let peer = &peers.json[0];
        if peer["up"] == true && peer["rx_bytes"].as_u64().unwrap() > 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "the peer never showed its traffic: {peer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Revoking the agent takes it off the gateway at once.
    let agent_id = agents[0]["id"].as_str().unwrap();
    let revoked = srv
        .call(
            "DELETE",
            &format!("/api/tenants/{tenant}/agents/{agent_id}"),
            &root,
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.json);
    assert!(
        srv.state.vpn.as_ref().unwrap().peers().is_empty(),
        "the revoked agent is no peer"
    );
    let _ = stop_tx.send(());
    agent.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
on_both_backends!(
    an_enrolled_agent_delivers_through_the_tunnel_and_removal_cuts_it,
    multi_thread
);

async fn removing_a_peer_and_rbac(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tenant, _, agents) = tenant_with_agents(&srv, &root, "Delta WISP", 1).await;
    let r = enrol(&srv, &root, &tenant, json!({ "agent_id": agents[0]["id"] })).await;
    assert_eq!(r.status, 201);
    assert_eq!(srv.state.vpn.as_ref().unwrap().peers().len(), 1);
    let id = agents[0]["id"].as_str().unwrap();
    let gone = srv
        .call(
            "DELETE",
            &format!("/api/vpn/peers/{id}?tenant_id={tenant}"),
            &root,
            None,
        )
        .await;
    assert_eq!(gone.status, 200, "{:?}", gone.json);
    assert!(srv.state.vpn.as_ref().unwrap().peers().is_empty());
    let again = srv
        .call(
            "DELETE",
            &format!("/api/vpn/peers/{id}?tenant_id={tenant}"),
            &root,
            None,
        )
        .await;
    assert_eq!(again.status, 404);
    let anon = srv.call("GET", "/api/vpn/peers", &Auth::None, None).await;
    assert_eq!(anon.status, 401);
}
on_both_backends!(removing_a_peer_and_rbac);
