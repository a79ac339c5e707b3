//! `slipway completions` and `slipway man`, through the binary: the bash script is valid bash
//! that completes the subcommands and their flags, zsh and fish get their own formats, and the
//! manual pages render with groff (through preconv, as `man` does) without warnings.

use std::process::Command;

use crate::support::{ci, slipway, text};

#[test]
fn the_bash_completion_script_is_valid_and_knows_subcommands_and_flags() {
    let out = slipway(&["completions", "bash"]);
    assert!(out.status.success(), "{}", text(&out));
    let script = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slipway.bash");
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", text(&check));
    for word in [
        "run",
        "plan",
        "completions",
        "--env-file",
        "--secret-file",
        "--image-mirror",
    ] {
        assert!(script.contains(word), "the script lacks {word}");
    }
    // Sourced in a real shell, it registers the completion function for `slipway`.
    let registered = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p slipway", path.display()))
        .output()
        .unwrap();
    assert!(registered.status.success(), "{}", text(&registered));
    assert!(
        String::from_utf8_lossy(&registered.stdout).contains("slipway"),
        "{}",
        text(&registered)
    );
}

#[test]
fn zsh_and_fish_get_their_own_formats_and_an_unknown_shell_is_refused() {
    let zsh = slipway(&["completions", "zsh"]);
    assert!(zsh.status.success());
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef slipway"));
    let fish = slipway(&["completions", "fish"]);
    assert!(fish.status.success());
    assert!(String::from_utf8_lossy(&fish.stdout).contains("complete -c slipway"));
    let bad = slipway(&["completions", "tcsh"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("invalid value 'tcsh'"),
        "{}",
        text(&bad)
    );
}

#[test]
fn the_manual_pages_render_without_warnings() {
    let groff = Command::new("groff").arg("--version").output();
    if groff.is_err() {
        assert!(
            !ci(),
            "groff is missing (CI=true): apt-get install groff-base"
        );
        eprintln!("skipped: groff is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = slipway(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    for page in ["slipway.1", "slipway-run.1", "slipway-secrets-set.1"] {
        let path = dir.path().join(page);
        assert!(path.is_file(), "{page} was not written");
        let rendered = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(rendered.status.success(), "{page}: {}", text(&rendered));
        assert!(rendered.stderr.is_empty(), "{page}: {}", text(&rendered));
    }
    let run = std::fs::read_to_string(dir.path().join("slipway-run.1")).unwrap();
    assert!(run.contains("\\-\\-env\\-file"), "{run}");

    let printed = slipway(&["man"]);
    assert!(printed.status.success());
    assert!(String::from_utf8_lossy(&printed.stdout).starts_with(".ie \\n(.g .ds Aq"));
}
