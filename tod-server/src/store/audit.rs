//! The audit chain: each record carries the hash of the one before it in its tenant's chain, so
//! changing, removing or reordering a stored record breaks every hash after it.
//!
//! `hash = SHA-256(JSON array [prev_hash, tenant_id, seq, actor_user_id, actor_api_key_id, action,
//! resource_type, resource_id, details, ip_address, created_at])` in lower-case hex, where
//! `details` is the stored JSON text and `created_at` is RFC 3339 with microseconds, UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AuditRecord;

/// The `prev_hash` of the first record of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of one record, from its fields as stored.
#[allow(clippy::too_many_arguments)]
pub fn link_hash(
    prev_hash: &str,
    tenant_id: &str,
    seq: i64,
    actor_user_id: Option<&str>,
    actor_api_key_id: Option<&str>,
    action: &str,
    resource_type: Option<&str>,
    resource_id: Option<&str>,
    details: &str,
    ip_address: Option<&str>,
    created_at: DateTime<Utc>,
) -> String {
    let fields = serde_json::json!([
        prev_hash,
        tenant_id,
        seq,
        actor_user_id,
        actor_api_key_id,
        action,
        resource_type,
        resource_id,
        details,
        ip_address,
        created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    ]);
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

/// The result of re-hashing a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChainCheck {
    /// Records read.
    pub records: u64,
    /// Whether every link holds.
    pub intact: bool,
    /// The first record that does not match, if any.
    pub first_broken_seq: Option<i64>,
}

/// Checks records in chain order (seq ascending); `details_text` is each record's stored JSON.
pub(crate) fn check_chain<'a>(rows: impl IntoIterator<Item = (&'a AuditRecord, &'a str)>) -> ChainCheck {
    let mut prev = GENESIS_HASH.to_owned();
    let mut records = 0;
    for (expected_seq, (r, details)) in (1..).zip(rows) {
        records += 1;
        let recomputed = link_hash(
            &prev,
            &r.tenant_id.to_string(),
            r.seq,
            r.actor_user_id.map(|u| u.to_string()).as_deref(),
            r.actor_api_key_id.map(|k| k.to_string()).as_deref(),
            &r.action,
            r.resource_type.as_deref(),
            r.resource_id.as_deref(),
            details,
            r.ip_address.as_deref(),
            r.created_at,
        );
        if r.seq != expected_seq || r.prev_hash != prev || r.hash != recomputed {
            return ChainCheck {
                records,
                intact: false,
                first_broken_seq: Some(r.seq),
            };
        }
        prev = r.hash.clone();
    }
    ChainCheck {
        records,
        intact: true,
        first_broken_seq: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use tod_core::TenantId;

    fn record(seq: i64, prev: &str, action: &str) -> AuditRecord {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let tenant = TenantId::from_u128(5);
        let hash = link_hash(
            prev,
            &tenant.to_string(),
            seq,
            None,
            None,
            action,
            None,
            None,
            "{}",
            None,
            t,
        );
        AuditRecord {
            id: uuid::Uuid::from_u128(seq as u128),
            tenant_id: tenant,
            seq,
            actor_user_id: None,
            actor_api_key_id: None,
            action: action.into(),
            resource_type: None,
            resource_id: None,
            details: serde_json::json!({}),
            ip_address: None,
            created_at: t,
            prev_hash: prev.into(),
            hash,
        }
    }

    #[test]
    fn a_chain_verifies_and_any_edit_breaks_it_where_it_happened() {
        let a = record(1, GENESIS_HASH, "login");
        let b = record(2, &a.hash, "user.created");
        let c = record(3, &b.hash, "logout");
        let rows = [&a, &b, &c];
        let check = |rs: &[&AuditRecord]| check_chain(rs.iter().map(|r| (*r, "{}")));
        assert_eq!(
            check(&rows),
            ChainCheck {
                records: 3,
                intact: true,
                first_broken_seq: None
            }
        );

        let mut edited = b.clone();
        edited.action = "user.deleted".into();
        assert_eq!(check(&[&a, &edited, &c]).first_broken_seq, Some(2));
        assert_eq!(check(&[&a, &c]).first_broken_seq, Some(3), "a removed record is found");
        let details_changed = check_chain([(&a, "{}"), (&b, "{\"x\":1}"), (&c, "{}")]);
        assert_eq!(details_changed.first_broken_seq, Some(2));
    }
}
