//! Webhook signature checks: HMAC-SHA256 over the raw request body, compared in constant time.
//!
//! GitHub signs every delivery with the shared secret in `X-Hub-Signature-256: sha256=<hex>`.
//! The older `X-Hub-Signature` (SHA-1) header is deliberately not accepted: SHA-1 alone is refused.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a delivery's signature was refused; each case answers 401 and stores nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header (a SHA-1-only delivery lands here too).
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("malformed X-Hub-Signature-256 header")]
    Malformed,
    /// The digest does not match the body and the configured secret.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks `header` (the value of `X-Hub-Signature-256`, if any) against `body` signed with `secret`.
///
/// The comparison is done by `hmac`'s `verify_slice`, which is constant-time, so a caller cannot
/// learn the digest byte by byte from response times.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    if hex_digest.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let digest = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` value GitHub would send for `body`; used by tests, benches and the
/// load generator to sign their own deliveries.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_made_with_the_secret_verifies() {
        let sig = sign(b"s3cret", b"{\"zen\":\"hi\"}");
        assert_eq!(
            verify(b"s3cret", b"{\"zen\":\"hi\"}", Some(sig.as_bytes())),
            Ok(())
        );
    }

    #[test]
    fn a_known_digest_matches_githubs_documented_example() {
        // The example from GitHub's "Validating webhook deliveries" page.
        let sig = sign(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            sig,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn missing_sha1_only_wrong_and_malformed_are_refused() {
        let body = b"{}";
        assert_eq!(verify(b"k", body, None), Err(SignatureError::Missing));
        let sha1 = "sha1=0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            verify(b"k", body, Some(sha1.as_bytes())),
            Err(SignatureError::Malformed)
        );
        let other = sign(b"other key", body);
        assert_eq!(
            verify(b"k", body, Some(other.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        let tampered = sign(b"k", b"{ }");
        assert_eq!(
            verify(b"k", body, Some(tampered.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k", body, Some(b"sha256=zz")),
            Err(SignatureError::Malformed)
        );
    }
}
