//! The deploy providers real pipelines use, counted in the shared corpus (`corpus/travis/` and
//! `corpus/course/`): every `deploy:` entry, at the top level and in `jobs`/`matrix` `include`,
//! by provider, and how many of them Slipway runs itself. The figures are pinned here and in
//! `docs/providers.md`; a provider that starts (or stops) running changes them.

use std::collections::BTreeMap;

use slipway_pipelines::spec::{self, Support};
use slipway_pipelines::yaml::{self, Node};

use crate::util::shared_dir;

/// The corpus's deploy entries that Slipway runs, and those it skips with a warning.
const RUN: usize = 60;
const SKIPPED: usize = 3;

/// Every deploy entry of one file's YAML tree, each as its `provider:` (lower case).
fn providers(root: &Node) -> Vec<String> {
    let mut holders = vec![root];
    for key in ["jobs", "matrix"] {
        if let Some(include) = root.get(key).and_then(|j| j.get("include")) {
            holders.extend(include.one_or_many());
        }
    }
    holders
        .iter()
        .filter_map(|h| h.get("deploy"))
        .flat_map(Node::one_or_many)
        .filter_map(|d| d.get("provider").and_then(Node::as_str))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The corpus's pipeline files, as its expected results list them.
fn files(shared: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for (set, dir) in [("travis", "corpus/travis"), ("course", "corpus/course")] {
        let list = std::fs::read_to_string(shared.join(format!("corpus/expected/{set}.jsonl")))
            .expect("expected results are readable");
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            out.push(
                shared
                    .join(dir)
                    .join(v["file"].as_str().expect("a file name")),
            );
        }
    }
    out
}

#[test]
fn the_corpus_deploys_slipway_runs_and_skips() {
    let Some(shared) = shared_dir() else { return };
    let paths = files(&shared);
    // Entries and files per provider.
    let mut by_provider: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let Ok(Some(root)) = yaml::load(&bytes, yaml::Limits::default()) else {
            continue;
        };
        let found = providers(&root);
        for p in &found {
            by_provider.entry(p.clone()).or_default().0 += 1;
        }
        let mut once = found.clone();
        once.sort();
        once.dedup();
        for p in once {
            by_provider.entry(p).or_default().1 += 1;
        }
    }
    let runs = |name: &str| spec::provider(name).is_some_and(|p| p.support == Support::Yes);
    let mut rows: Vec<(&String, &(usize, usize))> = by_provider.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let (mut run, mut skipped) = (0, 0);
    for (name, (entries, files)) in &rows {
        if runs(name) {
            run += entries;
        } else {
            skipped += entries;
        }
        let verdict = if runs(name) { "runs" } else { "skipped" };
        println!("  {name}: {entries} entries in {files} files ({verdict})");
    }
    println!(
        "corpus deploys: {} in {} files; Slipway runs {run}, skips {skipped}",
        run + skipped,
        paths.len()
    );
    assert_eq!(
        (run, skipped),
        (RUN, SKIPPED),
        "the corpus figure changed: update RUN and SKIPPED here and in docs/providers.md"
    );
}
