//! The cluster secret, and the proofs of it that the handshake exchanges.
//!
//! Each side of a connection sends a fresh random nonce; each then proves
//! it knows the secret by sending
//!
//! ```text
//! HMAC-SHA256(secret, "muxraft cluster secret v1" | role | cluster id
//!                     | dialer id | acceptor id | dialer nonce | acceptor nonce)
//! ```
//!
//! (ids big-endian, nonces [`NONCE_LEN`] bytes, role one byte: `D` for the
//! dialer's proof, `A` for the acceptor's). The secret itself never travels.
//! The role byte means a proof cannot be reflected back to its sender as
//! the other side's; the ids and the cluster mean it cannot be used for
//! another pair of nodes; and since each side checks a proof over its own
//! fresh nonce, a proof recorded from an earlier connection is worth
//! nothing on a new one.
//!
//! What this proves is who opened the connection: frames after the
//! handshake are not authenticated nor encrypted, so an attacker on the
//! path can still read them, or take over a connection once it is open.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of a proof (an HMAC-SHA256 tag).
pub const PROOF_LEN: usize = 32;
/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// The longest secret accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 1024;

/// Separates these proofs from any other use of the same key.
const DOMAIN: &[u8] = b"muxraft cluster secret v1";

/// A shared cluster secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl ClusterSecret {
    /// A secret of [`MIN_SECRET_LEN`] to [`MAX_SECRET_LEN`] bytes (any
    /// bytes; use a random one, e.g. 32 bytes from the OS).
    pub fn new(bytes: &[u8]) -> Result<ClusterSecret, String> {
        if bytes.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the cluster secret has {} bytes, fewer than the {MIN_SECRET_LEN} required",
                bytes.len()
            ));
        }
        if bytes.len() > MAX_SECRET_LEN {
            return Err(format!(
                "the cluster secret has {} bytes, more than the {MAX_SECRET_LEN} allowed",
                bytes.len()
            ));
        }
        Ok(ClusterSecret(bytes.to_vec()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterSecret({} bytes)", self.0.len())
    }
}

impl Drop for ClusterSecret {
    fn drop(&mut self) {
        // Best effort: do not leave the secret in freed memory.
        self.0.fill(0);
    }
}

/// Which side of a connection a proof comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Dialer,
    Acceptor,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Dialer => b'D',
            Role::Acceptor => b'A',
        }
    }
}

/// What both proofs of one connection cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transcript {
    pub cluster_id: u64,
    pub dialer_id: u64,
    pub acceptor_id: u64,
    pub dialer_nonce: [u8; NONCE_LEN],
    pub acceptor_nonce: [u8; NONCE_LEN],
}

impl Transcript {
    fn keyed(&self, secret: &ClusterSecret, role: Role) -> Hmac<Sha256> {
        let mut mac = secret.mac();
        mac.update(DOMAIN);
        mac.update(&[role.byte()]);
        mac.update(&self.cluster_id.to_be_bytes());
        mac.update(&self.dialer_id.to_be_bytes());
        mac.update(&self.acceptor_id.to_be_bytes());
        mac.update(&self.dialer_nonce);
        mac.update(&self.acceptor_nonce);
        mac
    }

    /// The proof `role` sends for this transcript.
    pub fn prove(&self, secret: &ClusterSecret, role: Role) -> [u8; PROOF_LEN] {
        self.keyed(secret, role).finalize().into_bytes().into()
    }

    /// Is `proof` the one `role` must send for this transcript? Compared in
    /// constant time.
    pub fn verify(&self, secret: &ClusterSecret, role: Role, proof: &[u8; PROOF_LEN]) -> bool {
        self.keyed(secret, role).verify_slice(proof).is_ok()
    }
}

/// A fresh nonce from the operating system's random source.
pub fn nonce() -> std::io::Result<[u8; NONCE_LEN]> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(|e| std::io::Error::other(format!("no random nonce: {e}")))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(b: u8) -> ClusterSecret {
        ClusterSecret::new(&[b; 32]).unwrap()
    }

    fn transcript() -> Transcript {
        Transcript {
            cluster_id: 9,
            dialer_id: 1,
            acceptor_id: 2,
            dialer_nonce: nonce().unwrap(),
            acceptor_nonce: nonce().unwrap(),
        }
    }

    #[test]
    fn a_proof_verifies_only_under_the_same_secret() {
        let t = transcript();
        let p = t.prove(&secret(1), Role::Dialer);
        assert!(t.verify(&secret(1), Role::Dialer, &p));
        assert!(!t.verify(&secret(2), Role::Dialer, &p));
        let mut flipped = p;
        flipped[PROOF_LEN - 1] ^= 1;
        assert!(!t.verify(&secret(1), Role::Dialer, &flipped));
    }

    #[test]
    fn a_reflected_proof_fails() {
        // The acceptor's proof sent back to it as the dialer's.
        let t = transcript();
        let acceptors = t.prove(&secret(1), Role::Acceptor);
        assert!(!t.verify(&secret(1), Role::Dialer, &acceptors));
        assert_ne!(acceptors, t.prove(&secret(1), Role::Dialer));
    }

    #[test]
    fn a_replayed_proof_fails_against_a_fresh_nonce() {
        // A proof recorded on one connection, replayed on the next: the
        // acceptor's new nonce makes it worthless.
        let old = transcript();
        let recorded = old.prove(&secret(1), Role::Dialer);
        let new = Transcript {
            acceptor_nonce: nonce().unwrap(),
            ..old
        };
        assert!(!new.verify(&secret(1), Role::Dialer, &recorded));
        // Likewise a recorded acceptor proof against the dialer's new nonce.
        let recorded = old.prove(&secret(1), Role::Acceptor);
        let new = Transcript {
            dialer_nonce: nonce().unwrap(),
            ..old
        };
        assert!(!new.verify(&secret(1), Role::Acceptor, &recorded));
    }

    #[test]
    fn a_proof_is_bound_to_the_cluster_and_both_nodes() {
        let t = transcript();
        let p = t.prove(&secret(1), Role::Dialer);
        for other in [
            Transcript {
                cluster_id: 10,
                ..t
            },
            Transcript { dialer_id: 3, ..t },
            Transcript {
                acceptor_id: 3,
                ..t
            },
            // The two ids swapped.
            Transcript {
                dialer_id: 2,
                acceptor_id: 1,
                ..t
            },
        ] {
            assert!(!other.verify(&secret(1), Role::Dialer, &p), "{other:?}");
        }
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }

    #[test]
    fn secrets_are_bounded_and_never_printed() {
        assert!(ClusterSecret::new(&[7; MIN_SECRET_LEN - 1]).is_err());
        assert!(ClusterSecret::new(&[7; MAX_SECRET_LEN + 1]).is_err());
        let s = ClusterSecret::new(b"0123456789abcdef").unwrap();
        let shown = format!("{s:?}");
        assert_eq!(shown, "ClusterSecret(16 bytes)");
    }
}
