//! Secrets at rest — device credentials, notification channels' signing keys and passwords —
//! sealed with XChaCha20-Poly1305 under a per-tenant key derived (HKDF-SHA256) from the server's
//! master key, bound to their owner by the associated data, so a sealed blob copied onto another
//! device's, channel's or tenant's row does not open. The API never returns them; device
//! credentials are opened only for the agent that polls the device, channel secrets only to send.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tod_core::{DeviceId, TenantId};

/// A RouterOS login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why a blob did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Wrong key, wrong device, or altered bytes.
    #[error("sealed credentials do not open (wrong key, wrong device, or altered)")]
    Open,
    /// The random source failed.
    #[error("random source: {0}")]
    Random(String),
}

/// The sealing keys.
#[derive(Clone)]
pub struct Vault {
    master: Vec<u8>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

const NONCE_LEN: usize = 24;

impl Vault {
    /// A vault over a master key (at least 32 bytes of secret).
    pub fn new(master: &[u8]) -> Self {
        Self {
            master: master.to_vec(),
        }
    }

    /// A 32-byte key for `purpose`, derived from the master key (HKDF-SHA256): the same master key
    /// always gives the same key, and nothing derived this way is stored.
    pub fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"tod-derived-v1"), &self.master)
            .expand(purpose, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }

    fn cipher(&self, tenant: TenantId) -> XChaCha20Poly1305 {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"tod-vault-v1"), &self.master)
            .expand(tenant.0.as_bytes(), &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        XChaCha20Poly1305::new(&key.into())
    }

    fn aad(tenant: TenantId, device: DeviceId) -> [u8; 32] {
        let mut aad = [0u8; 32];
        aad[..16].copy_from_slice(tenant.0.as_bytes());
        aad[16..].copy_from_slice(device.0.as_bytes());
        aad
    }

    /// Seals a device's credentials: a random nonce followed by the ciphertext and tag.
    pub fn seal(&self, tenant: TenantId, device: DeviceId, creds: &Credentials) -> Result<Vec<u8>, VaultError> {
        let plain = serde_json::to_vec(creds).expect("credentials serialise");
        self.seal_with(tenant, &Self::aad(tenant, device), &plain)
    }

    /// Opens what [`seal`](Self::seal) produced for the same tenant and device.
    pub fn open(&self, tenant: TenantId, device: DeviceId, blob: &[u8]) -> Result<Credentials, VaultError> {
        let plain = self.open_with(tenant, &Self::aad(tenant, device), blob)?;
        serde_json::from_slice(&plain).map_err(|_| VaultError::Open)
    }

    /// Seals another secret of the tenant (a notification channel's signing key or password),
    /// bound to what owns it: `purpose` names the kind of owner, `owner` its id.
    pub fn seal_secret(
        &self,
        tenant: TenantId,
        purpose: &str,
        owner: uuid::Uuid,
        plain: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        self.seal_with(tenant, &Self::owner_aad(tenant, purpose, owner), plain)
    }

    /// Opens what [`seal_secret`](Self::seal_secret) produced for the same tenant, purpose and owner.
    pub fn open_secret(
        &self,
        tenant: TenantId,
        purpose: &str,
        owner: uuid::Uuid,
        blob: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        self.open_with(tenant, &Self::owner_aad(tenant, purpose, owner), blob)
    }

    fn owner_aad(tenant: TenantId, purpose: &str, owner: uuid::Uuid) -> Vec<u8> {
        let mut aad = purpose.as_bytes().to_vec();
        aad.push(0);
        aad.extend_from_slice(tenant.0.as_bytes());
        aad.extend_from_slice(owner.as_bytes());
        aad
    }

    fn seal_with(&self, tenant: TenantId, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Random(e.to_string()))?;
        let sealed = self
            .cipher(tenant)
            .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad })
            .map_err(|_| VaultError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open_with(&self, tenant: TenantId, aad: &[u8], blob: &[u8]) -> Result<Vec<u8>, VaultError> {
        if blob.len() <= NONCE_LEN {
            return Err(VaultError::Open);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| VaultError::Open)?;
        self.cipher(tenant)
            .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad })
            .map_err(|_| VaultError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_credentials_open_only_for_their_tenant_device_and_key() {
        let v = Vault::new(&[9; 32]);
        let (t, d) = (TenantId::from_u128(1), DeviceId::from_u128(2));
        let c = Credentials {
            username: "admin".into(),
            password: "s3cret-router-pw".into(),
        };
        let blob = v.seal(t, d, &c).unwrap();
        assert!(
            !blob.windows(c.password.len()).any(|w| w == c.password.as_bytes()),
            "no plaintext at rest"
        );
        assert_ne!(blob, v.seal(t, d, &c).unwrap(), "fresh nonce every time");
        assert_eq!(v.open(t, d, &blob).unwrap(), c);
        assert_eq!(
            v.open(t, DeviceId::from_u128(3), &blob),
            Err(VaultError::Open),
            "another device"
        );
        assert_eq!(
            v.open(TenantId::from_u128(4), d, &blob),
            Err(VaultError::Open),
            "another tenant"
        );
        assert_eq!(
            Vault::new(&[8; 32]).open(t, d, &blob),
            Err(VaultError::Open),
            "another key"
        );
        let mut altered = blob.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(v.open(t, d, &altered), Err(VaultError::Open));
        assert_eq!(v.open(t, d, &[0; 10]), Err(VaultError::Open));
        assert!(!format!("{c:?}").contains("s3cret"), "Debug hides the password");
    }

    #[test]
    fn other_secrets_open_only_for_their_purpose_and_owner() {
        let v = Vault::new(&[9; 32]);
        let (t, owner) = (TenantId::from_u128(1), uuid::Uuid::from_u128(2));
        let blob = v.seal_secret(t, "notification_channel", owner, b"hook-secret").unwrap();
        assert_eq!(
            v.open_secret(t, "notification_channel", owner, &blob).unwrap(),
            b"hook-secret"
        );
        assert_eq!(v.open_secret(t, "other", owner, &blob), Err(VaultError::Open));
        assert_eq!(
            v.open_secret(t, "notification_channel", uuid::Uuid::from_u128(3), &blob),
            Err(VaultError::Open)
        );
        // A device's sealed credentials are not a channel secret of the same id, nor the reverse.
        assert_eq!(
            v.open(t, DeviceId(owner), &blob),
            Err(VaultError::Open),
            "purposes are separated"
        );
    }
}
