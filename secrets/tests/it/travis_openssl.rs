//! `.enc` files made the Travis way decrypt with the real `openssl aes-256-cbc … -d` line.

use std::process::Command;

use crate::util::{repo, require_tool, run, store};

#[test]
fn the_openssl_line_with_the_stored_variables_restores_the_original_bytes() {
    if !require_tool("openssl", "apt-get install -y openssl") {
        return;
    }
    let (dir, store) = store();
    // Every length around a block boundary, and binary content.
    for len in [0usize, 1, 15, 16, 17, 4099] {
        let plain = dir.path().join(format!("key-{len}.json"));
        let original: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        std::fs::write(&plain, &original).unwrap();

        let made = store.travis_encrypt_file(&repo(), &plain).unwrap();
        assert_eq!(
            made.encrypted,
            dir.path().join(format!("key-{len}.json.enc"))
        );
        let id = made
            .key_var
            .strip_prefix("encrypted_")
            .and_then(|s| s.strip_suffix("_key"))
            .unwrap();
        assert_eq!(id.len(), 12);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(made.iv_var, format!("encrypted_{id}_iv"));

        std::fs::remove_file(&plain).unwrap();
        // Run the printed line as a job's shell would, with the settings variables exported.
        let mut shell = Command::new("sh");
        shell.arg("-ec").arg(&made.command).current_dir(dir.path());
        for (name, value) in store.vars(&repo()).unwrap() {
            shell.env(name, value.expose());
        }
        run(&mut shell);
        assert_eq!(std::fs::read(&plain).unwrap(), original, "length {len}");
    }
    let names = store.var_names(&repo()).unwrap();
    assert_eq!(names.len(), 12, "a key and an iv per file: {names:?}");
}

#[test]
fn the_printed_line_is_the_one_travis_users_already_have() {
    let (dir, store) = store();
    let plain = dir.path().join("deploy key.pem");
    std::fs::write(&plain, b"k").unwrap();
    let made = store.travis_encrypt_file(&repo(), &plain).unwrap();
    let expected = format!(
        "openssl aes-256-cbc -K ${} -iv ${} -in '{}.enc' -out '{}' -d",
        made.key_var,
        made.iv_var,
        plain.display(),
        plain.display()
    );
    assert_eq!(made.command, expected);
}
