//! The Elastic Beanstalk bundle: which files of the build dir go in (`.ebignore`, else
//! `.gitignore`), and the zip written from them.

use std::collections::BTreeMap;

use slipway_providers::bundle::{files, write_zip};

use crate::util::tree;

#[test]
fn gitignore_applies_without_an_ebignore() {
    let d = tree(&[
        (".gitignore", "node_modules\n*.log\n"),
        ("app.js", "x"),
        ("debug.log", "x"),
        ("node_modules/a/index.js", "x"),
        (".ebextensions/a.config", "x"),
        (".git/HEAD", "x"),
    ]);
    assert_eq!(
        files(d.path()).unwrap(),
        [".ebextensions/a.config", ".gitignore", "app.js"]
    );
}

#[test]
fn ebignore_replaces_gitignore() {
    let d = tree(&[
        (".gitignore", "build\n"),
        (".ebignore", "src\n"),
        ("build/out.js", "x"),
        ("src/main.js", "x"),
    ]);
    assert_eq!(
        files(d.path()).unwrap(),
        [".ebignore", ".gitignore", "build/out.js"]
    );
}

#[test]
fn the_zip_holds_the_files_with_replacements() {
    let d = tree(&[("a.txt", "one"), ("b/c.txt", "two")]);
    let out = d
        .path()
        .join("..")
        .join(format!("bundle-{}.zip", std::process::id()));
    let mut replace = BTreeMap::new();
    replace.insert("a.txt".to_owned(), b"ONE".to_vec());
    write_zip(d.path(), &files(d.path()).unwrap(), &replace, &out).unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["a.txt", "b/c.txt"]);
    let mut s = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("a.txt").unwrap(), &mut s).unwrap();
    assert_eq!(s, "ONE");
    std::fs::remove_file(out).unwrap();
}
