//! The data directory: one age key file and one encrypted settings store per repository.
//!
//! Layout (all directories 0700, all files 0600):
//! ```text
//! $DATA_DIR/repos/OWNER/NAME/keys.txt        age identity file: every key of the repo, newest last
//! $DATA_DIR/repos/OWNER/NAME/settings.age    settings variables, age-encrypted to the newest key
//! ```
//! `keys.txt` is a plain age identity file, so `age -d -i keys.txt FILE.age` works by hand.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use age::secrecy::ExposeSecret;
use age::x25519::{Identity, Recipient};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::SecureValueProblem;
use crate::fsutil::{create_private_new, write_private};
use crate::{Error, RepoSlug, Secret};

/// The environment variable that overrides the default data directory for every command.
pub const DATA_DIR_ENV: &str = "SLIPWAY_DATA_DIR";

/// Where Slipway keeps its state unless told otherwise, the same for every command:
/// `$SLIPWAY_DATA_DIR`, else `$XDG_DATA_HOME/slipway`, else `$HOME/.local/share/slipway`.
///
/// Relative values of the variables are ignored (as the XDG spec asks), so the data dir never
/// depends on the current directory by accident.
pub fn default_data_dir() -> Result<PathBuf, Error> {
    data_dir_from(|name| std::env::var_os(name))
}

fn data_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf, Error> {
    let absolute = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(dir) = absolute(DATA_DIR_ENV) {
        return Ok(dir);
    }
    if let Some(xdg) = absolute("XDG_DATA_HOME") {
        return Ok(xdg.join("slipway"));
    }
    absolute("HOME")
        .map(|home| home.join(".local/share/slipway"))
        .ok_or(Error::NoDataDir)
}

/// Parses an X25519 recipient (`age1…`), as printed by `slipway secrets key` or `age-keygen`.
pub fn parse_recipient(recipient: &str) -> Result<Recipient, Error> {
    recipient
        .trim()
        .parse::<Recipient>()
        .map_err(|reason| Error::InvalidRecipient {
            recipient: recipient.to_string(),
            reason: reason.to_string(),
        })
}

/// Encrypts bytes to one recipient in the age format (binary, not armored).
pub fn encrypt_to(recipient: &Recipient, plaintext: &[u8], what: &str) -> Result<Vec<u8>, Error> {
    age::encrypt(recipient, plaintext).map_err(|e| Error::Encrypt {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Encrypts `FILE` to `FILE.age` for `recipient` and returns the new file's path.
/// The plaintext file is left in place; it must not be committed.
pub fn encrypt_file(path: &Path, recipient: &Recipient) -> Result<PathBuf, Error> {
    let plaintext = read_input(path)?;
    let ciphertext = encrypt_to(recipient, &plaintext, &path.display().to_string())?;
    let out = with_suffix(path, ".age");
    fs::write(&out, ciphertext).map_err(|e| Error::io("writing", &out, e))?;
    Ok(out)
}

/// `path` with `suffix` appended to its file name (`key.json` → `key.json.age`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads a file the user named, saying which file when it is missing.
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingSecretFile {
            path: path.to_path_buf(),
        },
        _ => Error::io("reading", path, e),
    })
}

/// Whether `name` can be a shell variable: letters, digits and `_`, not starting with a digit.
pub fn is_valid_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check_var_name(name: &str) -> Result<(), Error> {
    if is_valid_var_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidVarName {
            name: name.to_string(),
        })
    }
}

/// Slipway's secret state in one data directory. Cheap to make: it does no I/O until asked.
#[derive(Debug, Clone)]
pub struct SecretStore {
    data_dir: PathBuf,
}

impl SecretStore {
    /// A store rooted at `data_dir` (usually [`default_data_dir`] or `--data-dir`).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        SecretStore {
            data_dir: data_dir.into(),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The key file of a repository (whether or not it exists yet).
    pub fn key_file(&self, repo: &RepoSlug) -> PathBuf {
        self.data_dir.join(repo.relative_dir()).join("keys.txt")
    }

    /// The encrypted settings store of a repository.
    pub fn settings_file(&self, repo: &RepoSlug) -> PathBuf {
        self.data_dir.join(repo.relative_dir()).join("settings.age")
    }

    /// The repository's keys, making its first key if it has none yet.
    pub fn keyring(&self, repo: &RepoSlug) -> Result<Keyring, Error> {
        let path = self.key_file(repo);
        if !path.exists() {
            let identity = Identity::generate();
            let text = key_file_text(repo, &[identity]);
            // If another process won the race, its key is the one we load below.
            create_private_new(&path, text.expose().as_bytes())?;
        }
        let identities = read_key_file(&path)?;
        Ok(Keyring {
            repo: repo.clone(),
            key_file: path,
            identities,
        })
    }

    /// The public recipient files and values for `repo` are encrypted to (its newest key).
    pub fn recipient(&self, repo: &RepoSlug) -> Result<Recipient, Error> {
        Ok(self.keyring(repo)?.recipient())
    }

    /// Adds a new key to `repo` and makes it the one new secrets are encrypted to. Old keys stay
    /// in the key file, so files and values made before still decrypt until they are
    /// re-encrypted. The settings store is re-encrypted to the new key at once.
    pub fn rotate(&self, repo: &RepoSlug) -> Result<Recipient, Error> {
        let keyring = self.keyring(repo)?;
        let vars = self.read_settings(&keyring)?;
        let mut identities = keyring.identities;
        identities.push(Identity::generate());
        let text = key_file_text(repo, &identities);
        write_private(&keyring.key_file, text.expose().as_bytes())?;
        let keyring = Keyring {
            identities,
            ..keyring
        };
        if !vars.is_empty() {
            self.write_settings(&keyring, &vars)?;
        }
        Ok(keyring.recipient())
    }

    /// Encrypts `NAME=VALUE` for `repo`; the result goes under `secure:` in `env` or in a
    /// deploy option.
    pub fn encrypt_value(
        &self,
        repo: &RepoSlug,
        name: &str,
        value: &Secret<String>,
    ) -> Result<String, Error> {
        check_var_name(name)?;
        let recipient = self.recipient(repo)?;
        let plaintext = Secret::new(format!("{name}={}", value.expose()));
        let ciphertext = encrypt_to(&recipient, plaintext.expose().as_bytes(), name)?;
        Ok(STANDARD.encode(ciphertext))
    }

    /// Sets a settings variable of `repo` (Travis's repository settings), stored encrypted.
    pub fn set_var(
        &self,
        repo: &RepoSlug,
        name: &str,
        value: &Secret<String>,
    ) -> Result<(), Error> {
        check_var_name(name)?;
        let keyring = self.keyring(repo)?;
        let mut vars = self.read_settings(&keyring)?;
        vars.insert(name.to_string(), value.expose().clone());
        self.write_settings(&keyring, &vars)
    }

    /// Removes a settings variable; returns false when it was not set.
    pub fn unset_var(&self, repo: &RepoSlug, name: &str) -> Result<bool, Error> {
        let keyring = self.keyring(repo)?;
        let mut vars = self.read_settings(&keyring)?;
        if vars.remove(name).is_none() {
            return Ok(false);
        }
        self.write_settings(&keyring, &vars)?;
        Ok(true)
    }

    /// The names of the settings variables of `repo`, sorted; never their values.
    pub fn var_names(&self, repo: &RepoSlug) -> Result<Vec<String>, Error> {
        let keyring = self.keyring(repo)?;
        Ok(self.read_settings(&keyring)?.into_keys().collect())
    }

    /// The settings variables of `repo`, decrypted, sorted by name: what a trusted job gets in
    /// its environment (and what its masker must hide).
    pub fn vars(&self, repo: &RepoSlug) -> Result<Vec<(String, Secret<String>)>, Error> {
        let keyring = self.keyring(repo)?;
        Ok(self
            .read_settings(&keyring)?
            .into_iter()
            .map(|(name, value)| (name, Secret::new(value)))
            .collect())
    }

    fn read_settings(&self, keyring: &Keyring) -> Result<BTreeMap<String, String>, Error> {
        let path = self.settings_file(&keyring.repo);
        let ciphertext = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        let plaintext = keyring.decrypt_bytes(&ciphertext, &path)?;
        serde_json::from_slice::<Settings>(plaintext.expose())
            .map(|s| s.vars)
            .map_err(|e| Error::CorruptSettings {
                path: path.clone(),
                // Position and kind only: serde_json's message can quote a value.
                reason: format!(
                    "{:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })
    }

    fn write_settings(
        &self,
        keyring: &Keyring,
        vars: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let path = self.settings_file(&keyring.repo);
        let plaintext = Secret::new(
            serde_json::to_vec(&SettingsRef { version: 1, vars })
                .expect("a map of strings serializes"),
        );
        let ciphertext = encrypt_to(&keyring.recipient(), plaintext.expose(), "settings store")?;
        write_private(&path, &ciphertext)
    }
}

#[derive(serde::Deserialize)]
struct Settings {
    #[allow(dead_code)]
    version: u32,
    vars: BTreeMap<String, String>,
}

#[derive(serde::Serialize)]
struct SettingsRef<'a> {
    version: u32,
    vars: &'a BTreeMap<String, String>,
}

/// All keys of one repository, loaded once: what the runner holds while it prepares a job.
pub struct Keyring {
    repo: RepoSlug,
    key_file: PathBuf,
    /// Oldest first; the last one is current.
    identities: Vec<Identity>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("repo", &self.repo)
            .field("keys", &self.identities.len())
            .finish()
    }
}

impl Keyring {
    /// The repository these keys belong to.
    pub fn repo(&self) -> &RepoSlug {
        &self.repo
    }

    /// The newest key's public recipient: what new secrets are encrypted to.
    pub fn recipient(&self) -> Recipient {
        self.identities
            .last()
            .expect("a key file holds at least one key")
            .to_public()
    }

    /// Decrypts an age file (binary or armored), trying every key of the repository.
    pub fn decrypt_file(&self, path: &Path) -> Result<Secret<Vec<u8>>, Error> {
        let ciphertext = read_input(path)?;
        self.decrypt_bytes(&ciphertext, path)
    }

    /// Decrypts the bytes of an age file read from `origin` (named in errors).
    pub fn decrypt_bytes(
        &self,
        ciphertext: &[u8],
        origin: &Path,
    ) -> Result<Secret<Vec<u8>>, Error> {
        self.decrypt_raw(ciphertext)
            .map_err(|problem| match problem {
                Problem::WrongKey => Error::WrongKey {
                    path: origin.to_path_buf(),
                    repo: self.repo.to_string(),
                },
                Problem::Corrupt(reason) => Error::CorruptFile {
                    path: origin.to_path_buf(),
                    reason,
                },
            })
    }

    /// Decrypts a `secure:` value of `env` made by [`SecretStore::encrypt_value`] into the
    /// variable's name and value.
    pub fn decrypt_env(&self, secure: &str) -> Result<(String, Secret<String>), Error> {
        let plaintext = self.decrypt_secure(secure)?;
        let (name, value) = plaintext
            .expose()
            .split_once('=')
            .filter(|(name, _)| is_valid_var_name(name))
            .ok_or_else(|| self.secure_error(secure, SecureValueProblem::NotNameValue))?;
        Ok((name.to_string(), Secret::new(value.to_string())))
    }

    /// Decrypts a `{secure: …}` deploy option into the value (the part after `NAME=`).
    pub fn decrypt_value(&self, secure: &str) -> Result<Secret<String>, Error> {
        self.decrypt_env(secure).map(|(_, value)| value)
    }

    fn decrypt_secure(&self, secure: &str) -> Result<Secret<String>, Error> {
        let text = secure.trim();
        let text = text.strip_prefix("secure:").map(str::trim).unwrap_or(text);
        let text = text.trim_matches('"');
        let ciphertext = STANDARD
            .decode(text)
            .map_err(|_| self.secure_error(secure, SecureValueProblem::NotBase64))?;
        let plaintext = self.decrypt_raw(&ciphertext).map_err(|p| {
            self.secure_error(
                secure,
                match p {
                    Problem::WrongKey => SecureValueProblem::WrongKey,
                    Problem::Corrupt(reason) => SecureValueProblem::Corrupt(reason),
                },
            )
        })?;
        String::from_utf8(plaintext.into_exposed())
            .map(Secret::new)
            .map_err(|_| self.secure_error(secure, SecureValueProblem::NotNameValue))
    }

    fn secure_error(&self, secure: &str, reason: SecureValueProblem) -> Error {
        let trimmed = secure.trim();
        let mut preview: String = trimmed.chars().take(12).collect();
        if trimmed.chars().count() > 12 {
            preview.push('…');
        }
        Error::SecureValue {
            preview,
            repo: self.repo.to_string(),
            reason,
        }
    }

    fn decrypt_raw(&self, ciphertext: &[u8]) -> Result<Secret<Vec<u8>>, Problem> {
        let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(ciphertext))
            .map_err(Problem::from)?;
        let mut reader = decryptor
            .decrypt(self.identities.iter().map(|i| i as &dyn age::Identity))
            .map_err(Problem::from)?;
        let mut plaintext = Vec::new();
        reader
            .read_to_end(&mut plaintext)
            .map_err(|e| Problem::Corrupt(e.to_string()))?;
        Ok(Secret::new(plaintext))
    }
}

/// Why age refused, before we know whether it was a file or a value.
enum Problem {
    WrongKey,
    Corrupt(String),
}

impl From<age::DecryptError> for Problem {
    fn from(e: age::DecryptError) -> Self {
        match e {
            age::DecryptError::NoMatchingKeys => Problem::WrongKey,
            other => Problem::Corrupt(other.to_string()),
        }
    }
}

fn key_file_text(repo: &RepoSlug, identities: &[Identity]) -> Secret<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut text = format!(
        "# Slipway keys of {repo}; oldest first, the last one encrypts new secrets.\n\
         # Keep this file secret (mode 0600). Saved at unix time {now}.\n"
    );
    for identity in identities {
        text.push_str(&format!("# public key: {}\n", identity.to_public()));
        text.push_str(identity.to_string().expose_secret());
        text.push('\n');
    }
    Secret::new(text)
}

fn read_key_file(path: &Path) -> Result<Vec<Identity>, Error> {
    let metadata = fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::InsecureKeyFile {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = Secret::new(fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?);
    let corrupt = |reason: String| Error::CorruptKeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut identities = Vec::new();
    for (number, line) in text.expose().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let identity = line
            .parse::<Identity>()
            .map_err(|reason| corrupt(format!("line {}: {reason}", number + 1)))?;
        identities.push(identity);
    }
    if identities.is_empty() {
        return Err(corrupt("it holds no key".to_string()));
    }
    Ok(identities)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn the_data_dir_prefers_the_slipway_variable_then_xdg_then_home() {
        let all = [
            ("SLIPWAY_DATA_DIR", "/srv/slipway"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(
            data_dir_from(vars(&all)).unwrap(),
            PathBuf::from("/srv/slipway")
        );
        assert_eq!(
            data_dir_from(vars(&all[1..])).unwrap(),
            PathBuf::from("/x/slipway")
        );
        assert_eq!(
            data_dir_from(vars(&all[2..])).unwrap(),
            PathBuf::from("/home/u/.local/share/slipway")
        );
        // Relative values are ignored.
        let relative = [
            ("SLIPWAY_DATA_DIR", "data"),
            ("XDG_DATA_HOME", "x"),
            ("HOME", "/h"),
        ];
        assert_eq!(
            data_dir_from(vars(&relative)).unwrap(),
            PathBuf::from("/h/.local/share/slipway")
        );
        assert!(matches!(data_dir_from(vars(&[])), Err(Error::NoDataDir)));
    }

    #[test]
    fn variable_names_follow_the_shell() {
        for good in ["A", "_x", "AWS_SECRET_ACCESS_KEY", "a1"] {
            assert!(is_valid_var_name(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "É"] {
            assert!(!is_valid_var_name(bad), "{bad}");
        }
    }
}
