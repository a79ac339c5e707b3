//! Lint never panics: not on arbitrary YAML-ish bytes, not on random mutations of a valid pipeline.

use proptest::prelude::*;
use slipway_pipelines::lint::lint;

/// A valid pipeline touching most of the lint paths (env, conditions, deploys, jobs, secure values).
const VALID: &str = "\
language: python
python: ['3.10', '3.12']
services: [docker]
cache: pip
env:
  global:
    - A=1 B=\"two words\"
    - secure: YWJjZA==
  jobs:
    - DB=pg
if: branch = main OR tag IS present
before_install: pip install -U pip
script:
  - pytest
jobs:
  fast_finish: true
  include:
    - stage: deploy
      if: type = push
      script: skip
      deploy:
        - provider: elasticbeanstalk
          app: web
          env: Web-env
          bucket: web-bundles
          on: {branch: main}
        - provider: script
          script: ./deploy.sh
  allow_failures:
    - python: '3.12'
notifications:
  slack:
    secure: YWJjZA==
_anchors: &a
  x: 1
";

fn yamlish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"  ".to_vec()),
        Just(b"- ".to_vec()),
        Just(b": ".to_vec()),
        Just(b"&a ".to_vec()),
        Just(b"*a".to_vec()),
        Just(b"<<: ".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"|\n".to_vec()),
        Just(b"secure: ".to_vec()),
        Just(b"if: ".to_vec()),
        Just(b"env: ".to_vec()),
        Just(b"deploy: ".to_vec()),
        Just(b"provider: ".to_vec()),
        Just(b"jobs: ".to_vec()),
        Just(b"include: ".to_vec()),
        Just(b"script".to_vec()),
        Just(b"=".to_vec()),
        Just(b"(".to_vec()),
        Just(b"\xff".to_vec()),
        Just("é".as_bytes().to_vec()),
        "[a-z_]{1,8}".prop_map(String::into_bytes),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|ps| ps.concat())
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Replace(usize, u8),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..20).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        (
            any::<usize>(),
            prop::sample::select(b" :-\n\t[]{}&*!|>'\"#%@`,?".to_vec())
        )
            .prop_map(|(at, b)| Mutation::Replace(at, b)),
        (any::<usize>(), 1usize..80).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Insert(at, b) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Replace(at, b) => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = *b;
                }
            }
            Mutation::Duplicate(at, n) => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    let end = (at + n).min(bytes.len());
                    let copy = bytes[at..end].to_vec();
                    bytes.splice(end..end, copy);
                }
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn lint_never_panics_on_yamlish_bytes(bytes in yamlish()) {
        let diags = lint("fuzz.yml", &bytes);
        for d in &diags {
            prop_assert!(!d.message.is_empty());
        }
    }

    #[test]
    fn lint_never_panics_on_mutated_pipelines(mutations in prop::collection::vec(mutation(), 1..6)) {
        let bytes = apply(VALID.as_bytes().to_vec(), &mutations);
        let diags = lint("mutated.yml", &bytes);
        for d in &diags {
            prop_assert!(!d.message.is_empty());
        }
    }
}

#[test]
fn the_mutation_base_is_clean() {
    let diags = lint("valid.yml", VALID.as_bytes());
    let problems: Vec<String> = diags
        .iter()
        .filter(|d| d.severity != slipway_pipelines::diagnostic::Severity::Info)
        .map(|d| d.to_string())
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}
