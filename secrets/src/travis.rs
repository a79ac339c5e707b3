//! `travis encrypt-file` compatibility: AES-256-CBC files whose key and IV live in the
//! repository's settings variables, so `openssl aes-256-cbc -K $encrypted_<id>_key -iv
//! $encrypted_<id>_iv -in FILE.enc -out FILE -d` lines in existing pipelines run unchanged.

use std::fs;
use std::path::{Path, PathBuf};

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};

use crate::store::{read_input, with_suffix};
use crate::{Error, RepoSlug, Secret, SecretStore};

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// A file encrypted the way `travis encrypt-file` does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TravisFile {
    /// The encrypted file written next to the original (`FILE.enc`).
    pub encrypted: PathBuf,
    /// The settings variable holding the key in hex (`encrypted_<id>_key`).
    pub key_var: String,
    /// The settings variable holding the IV in hex (`encrypted_<id>_iv`).
    pub iv_var: String,
    /// The line to add to the pipeline, e.g. under `before_install`.
    pub command: String,
}

/// Random bytes from the operating system.
fn random<const N: usize>(what: &str) -> Result<Secret<[u8; N]>, Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| Error::Encrypt {
        what: what.to_string(),
        reason: format!("no randomness from the system: {e}"),
    })?;
    Ok(Secret::new(bytes))
}

/// AES-256-CBC with PKCS#7 padding: exactly what `openssl aes-256-cbc -K … -iv … -d` reverses.
pub fn aes256cbc_encrypt(key: &[u8; 32], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    Aes256CbcEnc::new(key.into(), iv.into()).encrypt_padded_vec::<Pkcs7>(plaintext)
}

/// The inverse of [`aes256cbc_encrypt`]; `None` when the padding is wrong (wrong key or damage).
pub fn aes256cbc_decrypt(key: &[u8; 32], iv: &[u8; 16], ciphertext: &[u8]) -> Option<Vec<u8>> {
    Aes256CbcDec::new(key.into(), iv.into())
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .ok()
}

impl SecretStore {
    /// Encrypts `FILE` to `FILE.enc` with a fresh random key and IV, stores them as the settings
    /// variables `encrypted_<id>_key` / `encrypted_<id>_iv` of `repo` (hex, as Travis names
    /// them, `<id>` being 12 random hex digits) and returns the openssl line that decrypts it.
    pub fn travis_encrypt_file(&self, repo: &RepoSlug, path: &Path) -> Result<TravisFile, Error> {
        let plaintext = Secret::new(read_input(path)?);
        let what = path.display().to_string();
        let key = random::<32>(&what)?;
        let iv = random::<16>(&what)?;
        let id = hex::encode(random::<6>(&what)?.expose());
        let ciphertext = aes256cbc_encrypt(key.expose(), iv.expose(), plaintext.expose());

        let key_var = format!("encrypted_{id}_key");
        let iv_var = format!("encrypted_{id}_iv");
        // Store the variables first: a `.enc` file without its key would be useless.
        self.set_var(repo, &key_var, &Secret::new(hex::encode(key.expose())))?;
        self.set_var(repo, &iv_var, &Secret::new(hex::encode(iv.expose())))?;

        let encrypted = with_suffix(path, ".enc");
        fs::write(&encrypted, ciphertext).map_err(|e| Error::io("writing", &encrypted, e))?;
        let command = format!(
            "openssl aes-256-cbc -K ${key_var} -iv ${iv_var} -in {} -out {} -d",
            shell_word(&encrypted.display().to_string()),
            shell_word(&path.display().to_string()),
        );
        Ok(TravisFile {
            encrypted,
            key_var,
            iv_var,
            command,
        })
    }
}

/// Quotes a path for a shell command line only when it needs it.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./+=:@%".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbc_round_trips_and_pads_to_whole_blocks() {
        let key = [7u8; 32];
        let iv = [9u8; 16];
        for len in [0usize, 1, 15, 16, 17, 1000] {
            let plaintext = vec![b'x'; len];
            let ciphertext = aes256cbc_encrypt(&key, &iv, &plaintext);
            assert_eq!(
                ciphertext.len(),
                (len / 16 + 1) * 16,
                "PKCS#7 always adds padding"
            );
            assert_eq!(
                aes256cbc_decrypt(&key, &iv, &ciphertext).unwrap(),
                plaintext
            );
        }
    }

    #[test]
    fn paths_with_spaces_are_quoted_in_the_command() {
        assert_eq!(
            shell_word("k8s/service-account.json"),
            "k8s/service-account.json"
        );
        assert_eq!(shell_word("my file"), "'my file'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
