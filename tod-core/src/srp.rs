//! SRP-6a password login, both sides, as TOD speaks it on the wire.
//!
//! The server never sees a password: it stores a salt and a verifier and proves, with the client,
//! that both know the same secret. The arithmetic is RustCrypto's `srp` crate in its RFC 5054 mode;
//! this module fixes the parameters and the byte conventions so that the server, the CLI and any
//! embedding tool agree:
//!
//! - group: RFC 5054 2048-bit `N`, `g = 2`; hash `H` = SHA-256;
//! - identity `I` = the e-mail address trimmed and lower-cased ([`identity`]);
//! - `x = H(salt | H(I ":" password))`, verifier `v = g^x mod N`;
//! - `k = H(N | PAD(g))`, `B = k·v + g^b mod N`, `A = g^a mod N`;
//! - `u = H(PAD(A) | PAD(B))`, `S` = the shared premaster secret, `K = H(S)`;
//! - `M1 = H(H(N) xor H(PAD(g)) | H(I) | salt | A | B | K)`, `M2 = H(A | M1 | K)`;
//! - `A`, `B` and `S` are minimal big-endian bytes; every binary value travels as lower-case hex.
//!
//! Randomness comes from the caller (the ephemeral secrets `a` and `b`, the salt), like the clock
//! everywhere else in this crate.

use sha2::Sha256;
use srp::{ClientG2048, ServerG2048};

/// Bytes of a freshly generated salt.
pub const SALT_LEN: usize = 16;
/// Bytes of an ephemeral secret (`a` or `b`).
pub const EPHEMERAL_LEN: usize = 48;
/// The longest public value accepted: the size of `N`.
const MAX_PUBLIC_LEN: usize = 256;

/// Why an SRP exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrpError {
    /// A public value or proof is malformed or illegal (e.g. `A mod N = 0`).
    #[error("invalid SRP parameter: {0}")]
    Parameter(&'static str),
    /// The peer's proof does not match: wrong password, or a forged exchange.
    #[error("proof mismatch")]
    BadProof,
}

/// The SRP identity of an e-mail address: trimmed and lower-cased, so every letter case of an
/// address logs in to the same account (and fails the same way for unknown ones).
pub fn identity(email: &str) -> String {
    email.trim().to_lowercase()
}

/// What registration stores: a salt and a verifier (never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// The salt.
    pub salt: Vec<u8>,
    /// `v = g^x mod N`, minimal big-endian bytes.
    pub verifier: Vec<u8>,
}

/// Computes the salt and verifier for an account; `salt` must be fresh random bytes.
pub fn enrol(email: &str, password: &str, salt: [u8; SALT_LEN]) -> Enrolment {
    let verifier =
        ClientG2048::<Sha256>::new().compute_verifier(identity(email).as_bytes(), password.as_bytes(), &salt);
    Enrolment {
        salt: salt.to_vec(),
        verifier,
    }
}

/// The client's half of a login, once the server's challenge is in.
#[derive(Debug)]
pub struct ClientProof {
    /// `A`, to send.
    pub client_public: Vec<u8>,
    /// `M1`, to send.
    pub proof: Vec<u8>,
    verifier: srp::ClientVerifier<Sha256>,
}

impl ClientProof {
    /// Checks the server's `M2` (a server that does not hold the verifier cannot produce it) and
    /// returns the shared session key `K`.
    pub fn verify_server(&self, server_proof: &[u8]) -> Result<Vec<u8>, SrpError> {
        self.verifier
            .verify_server(server_proof)
            .map(<[u8]>::to_vec)
            .map_err(|_| SrpError::BadProof)
    }
}

/// Client side: from the password and the server's challenge (`salt`, `B`) to `A` and `M1`.
/// `a` must be fresh random bytes.
pub fn client_proof(
    email: &str,
    password: &str,
    salt: &[u8],
    server_public: &[u8],
    a: &[u8; EPHEMERAL_LEN],
) -> Result<ClientProof, SrpError> {
    if server_public.is_empty() || server_public.len() > MAX_PUBLIC_LEN {
        return Err(SrpError::Parameter("server_public"));
    }
    let client = ClientG2048::<Sha256>::new();
    let verifier = client
        .process_reply(a, identity(email).as_bytes(), password.as_bytes(), salt, server_public)
        .map_err(|_| SrpError::Parameter("server_public"))?;
    Ok(ClientProof {
        client_public: client.compute_public_ephemeral(a),
        proof: verifier.proof().to_vec(),
        verifier,
    })
}

/// Server side, first step: `B` for a stored verifier. `b` must be fresh random bytes and kept
/// (single use) until the client's proof arrives.
pub fn server_public(verifier: &[u8], b: &[u8; EPHEMERAL_LEN]) -> Vec<u8> {
    ServerG2048::<Sha256>::new().compute_public_ephemeral(b, verifier)
}

/// Server side, second step: checks the client's `M1` and returns `M2`.
pub fn server_verify(
    email: &str,
    salt: &[u8],
    verifier: &[u8],
    b: &[u8; EPHEMERAL_LEN],
    client_public: &[u8],
    client_proof: &[u8],
) -> Result<Vec<u8>, SrpError> {
    if client_public.is_empty() || client_public.len() > MAX_PUBLIC_LEN {
        return Err(SrpError::Parameter("client_public"));
    }
    let v = ServerG2048::<Sha256>::new()
        .process_reply(identity(email).as_bytes(), salt, b, verifier, client_public)
        .map_err(|_| SrpError::Parameter("client_public"))?;
    v.verify_client(client_proof).map_err(|_| SrpError::BadProof)?;
    Ok(v.proof().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; EPHEMERAL_LEN] = [0x11; EPHEMERAL_LEN];
    const B: [u8; EPHEMERAL_LEN] = [0x22; EPHEMERAL_LEN];

    fn login(enrolled_as: &str, password: &str, typed_email: &str, typed_password: &str) -> Result<(), SrpError> {
        let e = enrol(enrolled_as, password, [7; SALT_LEN]);
        let big_b = server_public(&e.verifier, &B);
        let client = client_proof(typed_email, typed_password, &e.salt, &big_b, &A)?;
        let m2 = server_verify(
            enrolled_as,
            &e.salt,
            &e.verifier,
            &B,
            &client.client_public,
            &client.proof,
        )?;
        client.verify_server(&m2).map(|k| assert_eq!(k.len(), 32, "K = H(S)"))
    }

    #[test]
    fn the_right_password_logs_in_whatever_the_email_case() {
        assert_eq!(
            login("Ops@Example.net", "correct horse", "ops@example.net", "correct horse"),
            Ok(())
        );
        assert_eq!(
            login(
                "ops@example.net",
                "correct horse",
                "  OPS@EXAMPLE.NET ",
                "correct horse"
            ),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_password_or_identity_is_a_bad_proof() {
        assert_eq!(
            login("ops@example.net", "correct horse", "ops@example.net", "battery staple"),
            Err(SrpError::BadProof)
        );
        assert_eq!(
            login("ops@example.net", "pw", "other@example.net", "pw"),
            Err(SrpError::BadProof)
        );
    }

    #[test]
    fn a_forged_server_proof_is_refused() {
        let e = enrol("a@b.c", "pw", [1; SALT_LEN]);
        let client = client_proof("a@b.c", "pw", &e.salt, &server_public(&e.verifier, &B), &A).unwrap();
        assert_eq!(client.verify_server(&[0; 32]), Err(SrpError::BadProof));
    }

    #[test]
    fn illegal_public_values_are_refused() {
        let e = enrol("a@b.c", "pw", [1; SALT_LEN]);
        // A = 0 and A = N would let a client fix the shared secret without the password.
        assert_eq!(
            server_verify("a@b.c", &e.salt, &e.verifier, &B, &[0], &[0; 32]),
            Err(SrpError::Parameter("client_public"))
        );
        assert_eq!(
            server_verify("a@b.c", &e.salt, &e.verifier, &B, &[], &[0; 32]),
            Err(SrpError::Parameter("client_public"))
        );
        assert_eq!(
            server_verify("a@b.c", &e.salt, &e.verifier, &B, &[1; 300], &[0; 32]),
            Err(SrpError::Parameter("client_public"))
        );
        assert!(client_proof("a@b.c", "pw", &e.salt, &[0], &A).is_err());
    }

    #[test]
    fn the_verifier_depends_on_salt_and_password_only_through_x() {
        let a = enrol("a@b.c", "pw", [1; SALT_LEN]);
        let b = enrol("A@B.C", "pw", [1; SALT_LEN]);
        let c = enrol("a@b.c", "pw", [2; SALT_LEN]);
        assert_eq!(a, b);
        assert_ne!(a.verifier, c.verifier);
        assert!(
            a.verifier.len() <= 256 && a.verifier[0] != 0,
            "minimal big-endian bytes"
        );
    }
}
