//! Webhooks as Travis sends them: its JSON build payload, form-encoded as `payload=<json>`,
//! with `Travis-Repo-Slug` and a `Signature` header.
//!
//! The signature is Ed25519 over the exact JSON text (the `payload` form field, decoded), base64
//! in `Signature`. Travis signs with RSA-SHA1; Slipway uses Ed25519 (SHA-1 signatures are no
//! longer safe) and, like Travis, publishes the public key, so a receiver verifies without
//! sharing a secret with the server. See `docs/notifications.md`.

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

use crate::facts::BuildFacts;

/// Travis's build payload.
pub fn payload(f: &BuildFacts) -> Value {
    let (owner, name) = f.repo.split_once('/').unwrap_or(("", &f.repo));
    let jobs: Vec<Value> = f
        .jobs
        .iter()
        .map(|j| {
            json!({
                "id": j.id,
                "parent_id": f.id,
                "number": j.number,
                "state": j.state,
                "config": j.config,
                "status": job_code(&j.state),
                "result": job_code(&j.state),
                "commit": f.commit,
                "branch": f.branch,
                "message": f.message,
                "compare_url": f.compare_url,
                "started_at": j.started_at,
                "finished_at": j.finished_at,
                "committed_at": f.committed_at,
                "author_name": f.author_name,
                "author_email": f.author_email,
                "committer_name": f.committer_name,
                "committer_email": f.committer_email,
                "allow_failure": j.allow_failure,
            })
        })
        .collect();
    json!({
        "id": f.id,
        "number": f.number,
        "type": f.event.as_str(),
        "state": f.state_name(),
        "status": f.result_code(),
        "result": f.result_code(),
        "status_message": f.result_word(),
        "result_message": f.result_word(),
        "started_at": f.started_at,
        "finished_at": f.finished_at,
        "duration": f.duration,
        "build_url": f.url,
        "commit": f.commit,
        "branch": f.branch,
        "message": f.message,
        "compare_url": f.compare_url,
        "committed_at": f.committed_at,
        "author_name": f.author_name,
        "author_email": f.author_email,
        "committer_name": f.committer_name,
        "committer_email": f.committer_email,
        "pull_request": f.event == slipway_pipelines::plan::EventType::PullRequest,
        "pull_request_number": f.pull_request,
        "pull_request_title": f.pull_request_title,
        "tag": f.tag,
        "repository": {
            "name": name,
            "owner_name": owner,
            "url": f.repo_url,
        },
        "matrix": jobs,
    })
}

fn job_code(state: &str) -> Option<u8> {
    match state {
        "passed" => Some(0),
        "failed" | "errored" => Some(1),
        _ => None,
    }
}

/// What `application/x-www-form-urlencoded` leaves as it is.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// The request body: `payload=<the JSON, form-encoded>` (spaces as `+`, as browsers and Ruby's
/// Faraday encode forms).
pub fn form_body(payload: &str) -> String {
    let encoded = utf8_percent_encode(payload, FORM)
        .to_string()
        .replace("%20", "+");
    format!("payload={encoded}")
}

/// The key webhook payloads are signed with.
pub struct SigningKey(Ed25519KeyPair);

impl SigningKey {
    /// A new random key, as PKCS#8 bytes to keep (and the key itself).
    pub fn generate() -> Result<(SigningKey, Vec<u8>), String> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| e.to_string())?;
        let key = SigningKey::from_pkcs8(pkcs8.as_ref())?;
        Ok((key, pkcs8.as_ref().to_vec()))
    }

    /// A key kept as PKCS#8.
    pub fn from_pkcs8(bytes: &[u8]) -> Result<SigningKey, String> {
        Ed25519KeyPair::from_pkcs8(bytes)
            .map(SigningKey)
            .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))
    }

    /// `Signature`'s value for a payload: base64 of the Ed25519 signature of its JSON text.
    pub fn sign(&self, payload: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.sign(payload.as_bytes()).as_ref())
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        self.0.public_key().as_ref()
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), which OpenSSL, Python's
    /// `cryptography` and Go's `x509` read.
    pub fn public_key_pem(&self) -> String {
        // The fixed DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(self.public_key());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ED25519, UnparsedPublicKey};

    #[test]
    fn signatures_verify_with_the_public_key_over_the_decoded_field() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let payload = r#"{"state":"passed","message":"a b & c=d"}"#;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(key.sign(payload))
            .unwrap();
        UnparsedPublicKey::new(&ED25519, key.public_key())
            .verify(payload.as_bytes(), &sig)
            .unwrap();
        assert!(
            UnparsedPublicKey::new(&ED25519, key.public_key())
                .verify(b"{}", &sig)
                .is_err()
        );
        assert!(
            key.public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA")
        );
    }

    #[test]
    fn the_form_body_encodes_like_a_form() {
        assert_eq!(
            form_body(r#"{"a":"b c&d=e+f"}"#),
            "payload=%7B%22a%22%3A%22b+c%26d%3De%2Bf%22%7D"
        );
    }
}
