//! The admin API's key, compared in constant time so that response timing tells a caller nothing about
//! how much of a guess was right.

use ring::digest::{digest, SHA256};
use subtle::ConstantTimeEq;

/// A key admin API callers must present. Only its digest is kept, so it is never printed by accident.
pub struct ApiKey {
    digest: [u8; 32],
}

impl ApiKey {
    /// The key `key`.
    pub fn new(key: &str) -> ApiKey {
        ApiKey {
            digest: sha256(key.as_bytes()),
        }
    }

    /// Whether `presented` is the key. Both sides are hashed first, so the comparison takes the same time
    /// whatever the presented key's length or first differing byte.
    pub fn matches(&self, presented: &[u8]) -> bool {
        sha256(presented).ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(******)")
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_itself_matches() {
        let key = ApiKey::new("s3cret-admin-key");
        assert!(key.matches(b"s3cret-admin-key"));
        for wrong in [
            &b""[..],
            b"s3cret-admin-ke",
            b"s3cret-admin-key ",
            b"S3CRET-ADMIN-KEY",
        ] {
            assert!(!key.matches(wrong));
        }
        assert_eq!(format!("{key:?}"), "ApiKey(******)");
    }
}
