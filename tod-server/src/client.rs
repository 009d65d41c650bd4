//! A minimal API client for scripts: SRP login and enrolment from the command line
//! (`tod-server login`, `tod-server enrol`). Plain HTTP only; put TLS in front with a proxy.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// `POST`s JSON to `base` + `path` (with a bearer token, if given) and returns the status and
/// the JSON answer.
pub async fn post_json(base: &str, path: &str, body: &Value, bearer: Option<&str>) -> Result<(u16, Value), String> {
    call_json(base, "POST", path, Some(body), bearer).await
}

/// Any method, with an optional JSON body; the status and the JSON answer (`null` if none).
pub async fn call_json(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
) -> Result<(u16, Value), String> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: only http:// URLs are supported"))?;
    let authority = rest.trim_end_matches('/');
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect {authority}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority)
        .header("content-type", "application/json");
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req
        .body(Full::new(body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()))))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("response: {e}"))?
        .to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

fn hex_of(v: &Value, field: &str) -> Result<Vec<u8>, String> {
    v[field]
        .as_str()
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| format!("server answer lacks {field}"))
}

/// Logs in with SRP-6a and checks the server's proof; returns the token answer.
pub async fn login(base: &str, email: &str, password: &str) -> Result<Value, String> {
    let (status, challenge) = post_json(base, "/api/auth/srp/init", &json!({ "email": email }), None).await?;
    if status != 200 {
        return Err(format!("srp/init: HTTP {status}: {}", challenge["detail"]));
    }
    let a: [u8; tod_core::srp::EPHEMERAL_LEN] = crate::auth::random_bytes().map_err(|e| e.detail)?;
    let proof = tod_core::srp::client_proof(
        email,
        password,
        &hex_of(&challenge, "salt")?,
        &hex_of(&challenge, "server_public")?,
        &a,
    )
    .map_err(|e| e.to_string())?;
    let body = json!({
        "email": email,
        "session_id": challenge["session_id"],
        "client_public": hex::encode(&proof.client_public),
        "client_proof": hex::encode(&proof.proof),
    });
    let (status, tokens) = post_json(base, "/api/auth/srp/verify", &body, None).await?;
    if status != 200 {
        return Err(format!("srp/verify: HTTP {status}: {}", tokens["detail"]));
    }
    proof
        .verify_server(&hex_of(&tokens, "server_proof")?)
        .map_err(|_| "the server's proof is wrong: it does not hold this account's verifier".to_owned())?;
    Ok(tokens)
}

/// The `srp_salt` and `srp_verifier` fields for creating a user or changing a password.
pub fn enrolment(email: &str, password: &str) -> Result<Value, String> {
    let salt = crate::auth::random_bytes::<{ tod_core::srp::SALT_LEN }>().map_err(|e| e.detail)?;
    let e = tod_core::srp::enrol(email, password, salt);
    Ok(json!({
        "email": tod_core::srp::identity(email),
        "srp_salt": hex::encode(e.salt),
        "srp_verifier": hex::encode(e.verifier),
    }))
}
