//! Who is calling: tokens, API keys, cookies and the caller every guarded handler receives.
//!
//! - Access tokens: JWT (HS256), 15 minutes, claims `sub`, `tid`, `role`, `sid`, `typ = "access"`.
//!   Each is bound to a login session (`sid`); every request checks that the session is live and
//!   the account active, so logout, a password change or a disabled account stop the token at
//!   once rather than when it expires. Role and tenant come from the database, not the token.
//! - Refresh tokens: JWT, 7 days, claims `sub`, `sid`, `jti`, `typ = "refresh"`. The session
//!   accepts only its latest `jti`; presenting an older one revokes the whole session.
//! - API keys: `mktp_` + 43 URL-safe characters (256 random bits), stored as SHA-256 hex, sent as
//!   `X-API-Key` or as a Bearer token; they act as operators limited to their scopes.
//! - Token sources, in order: `X-API-Key`, `Authorization: Bearer`, the `access_token` cookie.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine;
use chrono::{DateTime, Utc};
use cookie::{Cookie, SameSite};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tod_core::rbac::Principal;
use tod_core::{ApiKeyId, TenantId, UserId};
use uuid::Uuid;

use crate::error::ApiError;
use crate::store::{Audit, PLATFORM_CHAIN, Store, User};

/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = "mktp_";
/// Name of the access-token cookie.
pub const ACCESS_COOKIE: &str = "access_token";
/// Name of the refresh-token cookie.
pub const REFRESH_COOKIE: &str = "refresh_token";

/// Signing keys and lifetimes.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Seed for the fake SRP challenges unknown addresses get.
    pub(crate) fake_seed: [u8; 32],
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Refresh-token (and session) lifetime.
    pub refresh_ttl: Duration,
    /// Whether cookies carry `Secure`.
    pub secure_cookies: bool,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys from a secret, with the reference lifetimes (15 minutes, 7 days).
    pub fn new(secret: &[u8], secure_cookies: bool) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            fake_seed: Sha256::new()
                .chain_update(b"tod-srp-fake-seed")
                .chain_update(secret)
                .finalize()
                .into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            secure_cookies,
        }
    }

    fn validation() -> Validation {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.set_required_spec_claims(&["exp", "sub"]);
        v
    }

    /// Issues an access and a refresh token for a session.
    pub fn issue(&self, user: &User, sid: Uuid, jti: Uuid, now: DateTime<Utc>) -> Result<TokenPair, ApiError> {
        let iat = now.timestamp();
        let access = AccessClaims {
            sub: user.id.0,
            tid: user.tenant_id.map(|t| t.0),
            role: user.role.as_str().into(),
            sid,
            typ: "access".into(),
            iat,
            exp: iat + self.access_ttl.as_secs() as i64,
        };
        let refresh = RefreshClaims {
            sub: user.id.0,
            sid,
            jti,
            typ: "refresh".into(),
            iat,
            exp: iat + self.refresh_ttl.as_secs() as i64,
        };
        Ok(TokenPair {
            access_token: self.sign(&access)?,
            refresh_token: self.sign(&refresh)?,
            token_type: "bearer",
            expires_in: self.access_ttl.as_secs(),
        })
    }

    fn sign(&self, claims: &impl Serialize) -> Result<String, ApiError> {
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("token signing: {e}")))
    }

    /// Checks an access token's signature, expiry and type.
    pub fn access(&self, token: &str) -> Result<AccessClaims, ApiError> {
        let c = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &Self::validation())
            .map_err(|_| ApiError::unauthorized("Could not validate credentials"))?
            .claims;
        if c.typ != "access" {
            return Err(ApiError::unauthorized("Could not validate credentials"));
        }
        Ok(c)
    }

    /// Checks a refresh token's signature, expiry and type.
    pub fn refresh(&self, token: &str) -> Result<RefreshClaims, ApiError> {
        let c = jsonwebtoken::decode::<RefreshClaims>(token, &self.decoding, &Self::validation())
            .map_err(|_| ApiError::unauthorized("Invalid or expired refresh token"))?
            .claims;
        if c.typ != "refresh" {
            return Err(ApiError::unauthorized("Invalid or expired refresh token"));
        }
        Ok(c)
    }

    /// `Set-Cookie` values for a fresh pair.
    pub fn cookies(&self, pair: &TokenPair) -> [HeaderValue; 2] {
        [
            self.cookie(ACCESS_COOKIE, &pair.access_token, "/", self.access_ttl),
            self.cookie(
                REFRESH_COOKIE,
                &pair.refresh_token,
                "/api/auth/refresh",
                self.refresh_ttl,
            ),
        ]
    }

    /// `Set-Cookie` values that clear both cookies.
    pub fn clear_cookies(&self) -> [HeaderValue; 2] {
        [
            self.cookie(ACCESS_COOKIE, "", "/", Duration::ZERO),
            self.cookie(REFRESH_COOKIE, "", "/api/auth/refresh", Duration::ZERO),
        ]
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: Duration) -> HeaderValue {
        let c = Cookie::build((name, value))
            .path(path)
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure_cookies)
            .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
            .build();
        HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// A login's tokens, as the login and refresh endpoints return them.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    /// Access token (JWT).
    pub access_token: String,
    /// Refresh token (JWT).
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

/// Access-token claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: Uuid,
    /// Tenant (absent for super admins).
    pub tid: Option<Uuid>,
    /// Role at issue time (informational: the database decides).
    pub role: String,
    /// Session.
    pub sid: Uuid,
    /// `access`.
    pub typ: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires (Unix seconds).
    pub exp: i64,
}

/// Refresh-token claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshClaims {
    /// User id.
    pub sub: Uuid,
    /// Session.
    pub sid: Uuid,
    /// This token's id; only the session's latest is accepted.
    pub jti: Uuid,
    /// `refresh`.
    pub typ: String,
    /// Issued at.
    pub iat: i64,
    /// Expires.
    pub exp: i64,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// What tod-core's RBAC judges.
    pub principal: Principal,
    /// The login session, for users.
    pub session: Option<Uuid>,
    /// The client address (after trusted proxies).
    pub ip: Option<IpAddr>,
}

impl Caller {
    /// The user behind the request (an API key's creator is not its caller).
    pub fn user_id(&self) -> Option<UserId> {
        match &self.principal {
            Principal::User { id, .. } => Some(*id),
            Principal::ApiKey { .. } => None,
        }
    }

    /// The API key behind the request.
    pub fn api_key_id(&self) -> Option<ApiKeyId> {
        match &self.principal {
            Principal::ApiKey { id, .. } => Some(*id),
            Principal::User { .. } => None,
        }
    }

    /// An audit record of an action by this caller, in `chain` (`None`: the platform chain).
    pub fn audit(&self, chain: Option<TenantId>, action: &str, details: serde_json::Value) -> Audit {
        Audit {
            chain: chain.unwrap_or(PLATFORM_CHAIN),
            actor_user: self.user_id(),
            actor_api_key: self.api_key_id(),
            action: action.into(),
            resource_type: None,
            resource_id: None,
            details,
            ip: self.ip.map(|i| i.to_string()),
        }
    }
}

/// Finds and checks the credentials a request carries.
pub async fn authenticate(
    store: &dyn Store,
    keys: &TokenKeys,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    let now = Utc::now();
    let token = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .or_else(|| bearer_token(headers))
        .map(str::to_owned)
        .or_else(|| cookie_value(headers, ACCESS_COOKIE))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Not authenticated"))?;

    if token.starts_with(API_KEY_PREFIX) {
        let key = store
            .use_api_key(&api_key_hash(&token), now)
            .await?
            .ok_or_else(|| ApiError::unauthorized("Invalid, expired, or revoked API key"))?;
        return Ok(Caller {
            principal: Principal::ApiKey {
                id: key.id,
                tenant: key.tenant_id,
                scopes: key.scopes.into_iter().collect(),
            },
            session: None,
            ip,
        });
    }

    let claims = keys.access(&token)?;
    let live = store
        .live_session(claims.sid, now)
        .await?
        .filter(|s| !s.revoked && s.user.is_active && s.user.id.0 == claims.sub)
        .ok_or_else(|| ApiError::unauthorized("Session ended; log in again"))?;
    Ok(Caller {
        principal: Principal::User {
            id: live.user.id,
            role: live.user.role,
            tenant: live.user.tenant_id,
        },
        session: Some(claims.sid),
        ip,
    })
}

/// The token of an `Authorization: Bearer ...` header (the scheme in any letter case).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| ApiError::internal(format!("random source: {e}")))?;
    Ok(b)
}

/// A new raw API key: `mktp_` + 256 random bits in URL-safe base64.
pub fn new_api_key() -> Result<String, ApiError> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(format!(
        "{API_KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// What is stored for a raw key: its SHA-256 in lower-case hex.
pub fn api_key_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// The salt and verifier of the fake challenge an unknown or disabled address gets: derived from
/// the server's secret and the identity, so they are stable per address (as a real account's
/// are) and the same for every letter case of it.
///
/// The verifier is 256 pseudo-random bytes below `N` rather than a real `g^x`: `B = k·v + g^b` looks
/// uniformly random either way, and skipping the extra modular exponentiation keeps the fake path
/// as fast as the real one, so timing does not tell which addresses have accounts.
pub fn fake_credentials(keys: &TokenKeys, identity: &str) -> (Vec<u8>, Vec<u8>) {
    let derive = |label: &[u8], counter: u8| -> [u8; 32] {
        Sha256::new()
            .chain_update(keys.fake_seed)
            .chain_update(label)
            .chain_update([counter])
            .chain_update(identity.as_bytes())
            .finalize()
            .into()
    };
    let salt = derive(b"salt", 0)[..tod_core::srp::SALT_LEN].to_vec();
    let mut verifier: Vec<u8> = (0..8).flat_map(|i| derive(b"verifier", i)).collect();
    // N (RFC 5054, 2048-bit) begins 0xAC: a leading byte in 0x01..=0x7F keeps v below it and
    // the encoding minimal (no leading zero byte).
    verifier[0] = 0x01 + (verifier[0] & 0x7E);
    (salt, verifier)
}

impl ApiError {
    /// 401 with a detail.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 500; the detail goes to the log, the client gets a generic message.
    pub fn internal(detail: impl Into<String>) -> Self {
        tracing::error!(error = %detail.into(), "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tod_core::rbac::Role;

    fn user() -> User {
        let t = Utc::now();
        User {
            id: UserId::from_u128(1),
            email: "a@b.c".into(),
            name: "A".into(),
            role: Role::Operator,
            tenant_id: Some(TenantId::from_u128(2)),
            is_active: true,
            last_login: None,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn tokens_round_trip_and_are_not_interchangeable() {
        let keys = TokenKeys::new(&[7; 32], false);
        let (sid, jti) = (Uuid::new_v4(), Uuid::new_v4());
        let pair = keys.issue(&user(), sid, jti, Utc::now()).unwrap();
        let a = keys.access(&pair.access_token).unwrap();
        assert_eq!(
            (a.sid, a.tid, a.role.as_str()),
            (sid, Some(TenantId::from_u128(2).0), "operator")
        );
        let r = keys.refresh(&pair.refresh_token).unwrap();
        assert_eq!((r.sid, r.jti), (sid, jti));
        assert!(
            keys.access(&pair.refresh_token).is_err(),
            "a refresh token is not an access token"
        );
        assert!(keys.refresh(&pair.access_token).is_err());
        let other = TokenKeys::new(&[8; 32], false);
        assert!(other.access(&pair.access_token).is_err(), "another key's token");
        let old = keys
            .issue(&user(), sid, jti, Utc::now() - chrono::Duration::hours(1))
            .unwrap();
        assert_eq!(
            keys.access(&old.access_token).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn cookies_are_http_only_and_scoped() {
        let keys = TokenKeys::new(&[7; 32], true);
        let pair = keys.issue(&user(), Uuid::new_v4(), Uuid::new_v4(), Utc::now()).unwrap();
        let [access, refresh] = keys.cookies(&pair);
        let access = access.to_str().unwrap();
        assert!(access.starts_with("access_token=") && access.contains("HttpOnly") && access.contains("Secure"));
        assert!(access.contains("Max-Age=900") && access.contains("SameSite=Lax"));
        assert!(refresh.to_str().unwrap().contains("Path=/api/auth/refresh"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; access_token=xyz; b=2"));
        assert_eq!(cookie_value(&h, ACCESS_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&h, REFRESH_COOKIE), None);
    }

    #[test]
    fn api_keys_are_long_random_and_hashed() {
        let a = new_api_key().unwrap();
        let b = new_api_key().unwrap();
        assert!(a.starts_with("mktp_") && a.len() == 5 + 43 && a != b);
        assert_eq!(api_key_hash(&a).len(), 64);
        assert_ne!(api_key_hash(&a), api_key_hash(&b));
    }

    #[test]
    fn fake_challenges_are_stable_per_address_and_case_blind() {
        let keys = TokenKeys::new(&[7; 32], false);
        let id = tod_core::srp::identity("Ghost@Example.NET");
        assert_eq!(
            fake_credentials(&keys, &id),
            fake_credentials(&keys, "ghost@example.net")
        );
        assert_ne!(
            fake_credentials(&keys, &id).0,
            fake_credentials(&keys, "other@example.net").0
        );
        assert_eq!(fake_credentials(&keys, &id).0.len(), tod_core::srp::SALT_LEN);
        let (salt, v) = fake_credentials(&keys, &id);
        assert_eq!(v.len(), 256, "a 2048-bit verifier like a real one");
        assert!(v[0] != 0 && v[0] < 0xAC, "below N, minimal encoding");
        // The fake challenge is a well-formed one: a client computes a proof, which fails.
        let b = [3u8; tod_core::srp::EPHEMERAL_LEN];
        let big_b = tod_core::srp::server_public(&v, &b);
        let client = tod_core::srp::client_proof(&id, "guess", &salt, &big_b, &[4; 48]).unwrap();
        assert_eq!(
            tod_core::srp::server_verify(&id, &salt, &v, &b, &client.client_public, &client.proof),
            Err(tod_core::srp::SrpError::BadProof)
        );
    }
}
