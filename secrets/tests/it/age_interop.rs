//! Files made by the `age` command line decrypt with our keys, and ours decrypt with `age`.

use std::process::Command;

use crate::util::{repo, require_tool, run, store};

const HINT: &str = "apt-get install -y age";

#[test]
fn a_file_encrypted_by_the_age_cli_to_our_recipient_decrypts_with_the_library() {
    if !require_tool("age", HINT) {
        return;
    }
    let (dir, store) = store();
    let recipient = store.recipient(&repo()).unwrap().to_string();
    let plain = dir.path().join("service-account.json");
    std::fs::write(&plain, b"{\"private_key\": \"k\\n\"}\n").unwrap();
    for armor in [false, true] {
        let encrypted = dir.path().join(format!("sa-{armor}.json.age"));
        let mut cmd = Command::new("age");
        cmd.arg("-r").arg(&recipient).arg("-o").arg(&encrypted);
        if armor {
            cmd.arg("-a");
        }
        run(cmd.arg(&plain));
        let decrypted = store
            .keyring(&repo())
            .unwrap()
            .decrypt_file(&encrypted)
            .unwrap();
        assert_eq!(
            decrypted.expose(),
            &std::fs::read(&plain).unwrap(),
            "armor: {armor}"
        );
    }
}

#[test]
fn a_file_we_encrypt_decrypts_with_the_age_cli_and_our_key_file() {
    if !require_tool("age", HINT) {
        return;
    }
    let (dir, store) = store();
    let plain = dir.path().join("secret.env");
    std::fs::write(&plain, b"TOKEN=abc123\n").unwrap();
    let recipient = store.recipient(&repo()).unwrap();
    let encrypted = slipway_secrets::encrypt_file(&plain, &recipient).unwrap();
    assert_eq!(encrypted, dir.path().join("secret.env.age"));
    let out = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(store.key_file(&repo()))
        .arg(&encrypted));
    assert_eq!(out, b"TOKEN=abc123\n");
}

#[test]
fn after_rotation_the_age_cli_still_decrypts_old_and_new_files_with_the_key_file() {
    if !require_tool("age", HINT) {
        return;
    }
    let (dir, store) = store();
    let plain = dir.path().join("f");
    std::fs::write(&plain, b"old").unwrap();
    let old = slipway_secrets::encrypt_file(&plain, &store.recipient(&repo()).unwrap()).unwrap();
    std::fs::rename(&old, dir.path().join("old.age")).unwrap();
    let new_recipient = store.rotate(&repo()).unwrap();
    std::fs::write(&plain, b"new").unwrap();
    let new = slipway_secrets::encrypt_file(&plain, &new_recipient).unwrap();
    for (file, expected) in [(dir.path().join("old.age"), "old"), (new, "new")] {
        let out = run(Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(store.key_file(&repo()))
            .arg(&file));
        assert_eq!(out, expected.as_bytes());
    }
}
