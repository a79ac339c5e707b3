//! Keys, secure values, secret files and settings variables against a real data dir.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::{all_bytes_under, repo, store};
use slipway_secrets::{Error, RepoSlug, Secret, SecureValueProblem};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn secret(s: &str) -> Secret<String> {
    Secret::new(s.to_string())
}

#[test]
fn the_first_use_makes_a_key_file_readable_by_the_owner_only() {
    let (_dir, store) = store();
    let key_file = store.key_file(&repo());
    assert!(!key_file.exists());
    let recipient = store.recipient(&repo()).unwrap();
    assert!(recipient.to_string().starts_with("age1"));
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(key_file.parent().unwrap()), 0o700);
    assert_eq!(mode(store.data_dir()), 0o700);
    // The same key on every later use.
    assert_eq!(
        store.recipient(&repo()).unwrap().to_string(),
        recipient.to_string()
    );
    // Another repository gets its own key.
    let other = RepoSlug::parse("octo/other").unwrap();
    assert_ne!(
        store.recipient(&other).unwrap().to_string(),
        recipient.to_string()
    );
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let (_dir, store) = store();
    store.recipient(&repo()).unwrap();
    let key_file = store.key_file(&repo());
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = store.keyring(&repo()).unwrap_err();
    assert!(
        matches!(err, Error::InsecureKeyFile { mode: 0o644, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(&key_file.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_damaged_key_file_is_named_without_showing_its_content() {
    let (_dir, store) = store();
    store.recipient(&repo()).unwrap();
    let key_file = store.key_file(&repo());
    let text = std::fs::read_to_string(&key_file).unwrap();
    let damaged = text.replace("AGE-SECRET-KEY-1", "AGE-SECRET-KEY-X");
    std::fs::write(&key_file, &damaged).unwrap();
    let err = store.keyring(&repo()).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "key file {} is damaged: line ",
            key_file.display()
        )),
        "{err}"
    );
    assert!(!err.contains("SECRET-KEY"), "{err}");
}

#[test]
fn a_secure_value_decrypts_to_its_name_and_value_for_env_and_to_its_value_for_deploys() {
    let (_dir, store) = store();
    let secure = store
        .encrypt_value(
            &repo(),
            "AWS_SECRET_ACCESS_KEY",
            &secret("wJalr/K7MDENG=bPx"),
        )
        .unwrap();
    assert!(!secure.contains("wJalr"));
    let keys = store.keyring(&repo()).unwrap();
    let (name, value) = keys.decrypt_env(&secure).unwrap();
    assert_eq!(name, "AWS_SECRET_ACCESS_KEY");
    assert_eq!(value.expose(), "wJalr/K7MDENG=bPx");
    assert_eq!(
        keys.decrypt_value(&secure).unwrap().expose(),
        "wJalr/K7MDENG=bPx"
    );
    // Written as `secure: "…"` in the file and passed on with its prefix: still fine.
    let quoted = format!("secure: \"{secure}\"");
    assert_eq!(
        keys.decrypt_value(&quoted).unwrap().expose(),
        "wJalr/K7MDENG=bPx"
    );
}

#[test]
fn an_invalid_variable_name_is_refused_before_encrypting() {
    let (_dir, store) = store();
    let err = store
        .encrypt_value(&repo(), "1BAD-NAME", &secret("v"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid variable name `1BAD-NAME`: use letters, digits and `_`, not starting with a digit"
    );
}

#[test]
fn secure_values_that_do_not_decode_say_why_and_which_value() {
    let (_dir, store) = store();
    let keys = store.keyring(&repo()).unwrap();
    let problem = |secure: &str| match keys.decrypt_env(secure).unwrap_err() {
        Error::SecureValue {
            preview,
            repo,
            reason,
        } => {
            assert_eq!(repo, "octo/app");
            (preview, reason)
        }
        other => panic!("{other}"),
    };
    assert_eq!(
        problem("not base64 at all!"),
        ("not base64 a…".to_string(), SecureValueProblem::NotBase64)
    );
    assert!(matches!(
        problem("aGVsbG8gd29ybGQ=").1,
        SecureValueProblem::Corrupt(_)
    ));

    // Made for another repository: the right error, not "corrupt".
    let other = RepoSlug::parse("octo/other").unwrap();
    let foreign = store
        .encrypt_value(&other, "TOKEN", &secret("abcd"))
        .unwrap();
    assert_eq!(problem(&foreign).1, SecureValueProblem::WrongKey);
    let message = keys.decrypt_env(&foreign).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "secure value `{}…` for octo/app: none of",
            &foreign[..12]
        )),
        "{message}"
    );

    // Truncated ciphertext.
    let good = store
        .encrypt_value(&repo(), "TOKEN", &secret("abcd"))
        .unwrap();
    assert!(matches!(
        problem(&good[..good.len() - 8]).1,
        SecureValueProblem::NotBase64 | SecureValueProblem::Corrupt(_)
    ));

    // Decrypts, but is not NAME=VALUE (encrypted by hand with the repository's key).
    let raw = slipway_secrets::encrypt_to(&keys.recipient(), b"just a value", "t").unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.encode(raw);
    assert_eq!(problem(&raw).1, SecureValueProblem::NotNameValue);
}

#[test]
fn secret_files_wrong_key_truncated_corrupt_and_missing_each_name_the_file() {
    let (dir, store) = store();
    let plain = dir.path().join("service-account.json");
    std::fs::write(&plain, vec![b'x'; 200_000]).unwrap();
    let keys = store.keyring(&repo()).unwrap();
    let encrypted = slipway_secrets::encrypt_file(&plain, &keys.recipient()).unwrap();
    assert_eq!(
        keys.decrypt_file(&encrypted).unwrap().expose().len(),
        200_000
    );
    let bytes = std::fs::read(&encrypted).unwrap();
    let shown = encrypted.display().to_string();

    // Wrong key: encrypted for another repository.
    let other = RepoSlug::parse("octo/other").unwrap();
    let foreign = dir.path().join("foreign.age");
    std::fs::write(
        &foreign,
        slipway_secrets::encrypt_to(&store.recipient(&other).unwrap(), b"x", "t").unwrap(),
    )
    .unwrap();
    let err = keys.decrypt_file(&foreign).unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");
    assert!(err.to_string().starts_with(&format!(
        "{}: none of the keys of octo/app",
        foreign.display()
    )));

    // Truncated in the payload, and cut inside the header.
    for cut in [bytes.len() - 100, 40] {
        std::fs::write(&encrypted, &bytes[..cut]).unwrap();
        let err = keys.decrypt_file(&encrypted).unwrap_err();
        assert!(matches!(err, Error::CorruptFile { .. }), "cut {cut}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{shown} is not a valid age file")),
            "{err}"
        );
    }

    // One flipped byte in the payload.
    let mut flipped = bytes;
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&encrypted, &flipped).unwrap();
    assert!(matches!(
        keys.decrypt_file(&encrypted),
        Err(Error::CorruptFile { .. })
    ));

    // Not an age file at all.
    std::fs::write(&encrypted, b"{\"plain\": true}").unwrap();
    assert!(matches!(
        keys.decrypt_file(&encrypted),
        Err(Error::CorruptFile { .. })
    ));

    // Missing.
    let missing = dir.path().join("nope.json.age");
    let err = keys.decrypt_file(&missing).unwrap_err();
    assert!(matches!(err, Error::MissingSecretFile { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("secret file {} does not exist", missing.display()))
    );
}

#[test]
fn an_unknown_recipient_string_is_refused_by_name() {
    for bad in ["age1notarecipient", "ssh-ed25519 AAAA", ""] {
        let err = slipway_secrets::parse_recipient(bad).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("unknown recipient `{bad}`")),
            "{err}"
        );
    }
}

#[test]
fn rotation_keeps_old_files_and_values_decryptable_and_encrypts_new_ones_to_the_new_key() {
    let (dir, store) = store();
    let old_recipient = store.recipient(&repo()).unwrap();
    let old_value = store
        .encrypt_value(&repo(), "A", &secret("old-value"))
        .unwrap();
    let plain = dir.path().join("f");
    std::fs::write(&plain, b"old file").unwrap();
    let old_file = slipway_secrets::encrypt_file(&plain, &old_recipient).unwrap();
    store.set_var(&repo(), "SETTING", &secret("kept")).unwrap();

    let new_recipient = store.rotate(&repo()).unwrap();
    assert_ne!(new_recipient.to_string(), old_recipient.to_string());
    assert_eq!(
        store.recipient(&repo()).unwrap().to_string(),
        new_recipient.to_string()
    );
    assert_eq!(mode(&store.key_file(&repo())), 0o600);

    let keys = store.keyring(&repo()).unwrap();
    assert_eq!(keys.decrypt_file(&old_file).unwrap().expose(), b"old file");
    assert_eq!(
        keys.decrypt_value(&old_value).unwrap().expose(),
        "old-value"
    );
    assert_eq!(store.vars(&repo()).unwrap()[0].1.expose(), "kept");

    // New values are encrypted to the new key only: the old key alone cannot open them.
    let new_value = store
        .encrypt_value(&repo(), "B", &secret("new-value"))
        .unwrap();
    let key_text = std::fs::read_to_string(store.key_file(&repo())).unwrap();
    let only_old: String = key_text
        .lines()
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .take(1)
        .collect::<Vec<_>>()
        .join("\n");
    let old_only_dir = tempfile::tempdir().unwrap();
    let old_only = slipway_secrets::SecretStore::new(old_only_dir.path());
    let path = old_only.key_file(&repo());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("{only_old}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let old_keys = old_only.keyring(&repo()).unwrap();
    assert_eq!(
        old_keys.decrypt_value(&old_value).unwrap().expose(),
        "old-value"
    );
    assert!(old_keys.decrypt_value(&new_value).is_err());
}

#[test]
fn settings_variables_are_stored_encrypted_and_listed_by_name_only() {
    let (dir, store) = store();
    let value = "sup3r-s3cret-settings-value";
    store
        .set_var(&repo(), "DEPLOY_TOKEN", &secret(value))
        .unwrap();
    store
        .set_var(&repo(), "API_KEY", &secret("another-secret-value"))
        .unwrap();
    store
        .set_var(&repo(), "DEPLOY_TOKEN", &secret(value))
        .unwrap();
    assert_eq!(
        store.var_names(&repo()).unwrap(),
        ["API_KEY", "DEPLOY_TOKEN"]
    );
    let vars = store.vars(&repo()).unwrap();
    assert_eq!(vars[1].0, "DEPLOY_TOKEN");
    assert_eq!(vars[1].1.expose(), value);
    assert_eq!(
        format!("{vars:?}"),
        r#"[("API_KEY", [secure]), ("DEPLOY_TOKEN", [secure])]"#
    );

    // Nothing at rest: neither value appears anywhere in the data dir, and the store is 0600.
    let at_rest = all_bytes_under(dir.path());
    for plain in [value, "another-secret-value"] {
        assert!(
            !at_rest.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "{plain} found in the data dir"
        );
    }
    assert_eq!(mode(&store.settings_file(&repo())), 0o600);

    assert!(store.unset_var(&repo(), "API_KEY").unwrap());
    assert!(!store.unset_var(&repo(), "API_KEY").unwrap());
    assert_eq!(store.var_names(&repo()).unwrap(), ["DEPLOY_TOKEN"]);
}

#[test]
fn travis_key_and_iv_are_not_stored_in_plaintext_either() {
    let (dir, store) = store();
    let plain = dir.path().join("f.txt");
    std::fs::write(&plain, b"data").unwrap();
    let made = store.travis_encrypt_file(&repo(), &plain).unwrap();
    let vars = store.vars(&repo()).unwrap();
    let key = vars
        .iter()
        .find(|(n, _)| *n == made.key_var)
        .unwrap()
        .1
        .expose()
        .clone();
    assert_eq!(key.len(), 64);
    let at_rest = all_bytes_under(store.data_dir());
    assert!(!at_rest.windows(64).any(|w| w == key.as_bytes()));
}
