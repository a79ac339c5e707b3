//! The documented table from `language` + version key to an official container image.
//!
//! Travis ran every job on a full VM with the runtime installed by version managers; Slipway runs
//! each job in a container, so the language and its version key choose an official image
//! (`node_js: 16` → `node:16`). The table is documented in `docs/pipeline-reference.md`; a job's
//! `image:` key (Slipway's extension) overrides it.

use crate::config::{Attrs, JobAttrs};

/// The image for jobs whose language has no runtime image of its own (`generic`, `minimal`,
/// `shell`, `c`, …) and no `dist:`: Ubuntu 20.04, the release of Travis's default dist `focal`.
pub const DEFAULT_IMAGE: &str = "ubuntu:20.04";

/// The Ubuntu image matching a Travis `dist:` name.
fn ubuntu_for_dist(dist: Option<&str>) -> &'static str {
    match dist {
        Some("trusty") => "ubuntu:14.04",
        Some("xenial") => "ubuntu:16.04",
        Some("bionic") => "ubuntu:18.04",
        Some("jammy") => "ubuntu:22.04",
        Some("noble") => "ubuntu:24.04",
        _ => DEFAULT_IMAGE,
    }
}

/// Versions that mean "the newest" in Travis files.
fn is_latest(version: &str) -> bool {
    matches!(
        version,
        "stable" | "latest" | "node" | "current" | "master" | "tip" | "nightly" | "head" | "dev"
    ) || version.ends_with("-dev")
        || version.ends_with("-head")
}

fn tagged(repo: &str, version: Option<&str>, default_tag: &str) -> String {
    match version {
        Some(v) if is_latest(v) => format!("{repo}:latest"),
        Some(v) => format!("{repo}:{v}"),
        None => format!("{repo}:{default_tag}"),
    }
}

/// The image for a job's language and version, per the documented table.
pub fn image_for(job: &Attrs) -> String {
    let language = job.str_of("language").unwrap_or("ruby");
    let version = |key: &str| job.str_of(key);
    match language {
        "node_js" => match version("node_js") {
            Some(v) if v.starts_with("lts/") => "node:lts".to_owned(),
            Some(v) => tagged("node", Some(v.trim_start_matches('v')), "lts"),
            None => "node:lts".to_owned(),
        },
        "python" => match version("python") {
            Some(v) if v.starts_with("pypy3") => "pypy:3".to_owned(),
            Some(v) if v.starts_with("pypy") => "pypy:2".to_owned(),
            Some(v) => tagged("python", Some(v), "3"),
            None => "python:3".to_owned(),
        },
        "ruby" => match version("rvm") {
            Some(v) if v.starts_with("jruby") => "jruby:latest".to_owned(),
            Some(v) => tagged("ruby", Some(v.trim_start_matches("ruby-")), "latest"),
            None => "ruby:latest".to_owned(),
        },
        "go" => match version("go") {
            Some(v) if v.ends_with(".x") => format!("golang:{}", v.trim_end_matches(".x")),
            v => tagged("golang", v, "latest"),
        },
        "java" | "android" | "groovy" | "clojure" | "scala" | "kotlin" => {
            match version("jdk").and_then(jdk_major) {
                Some(major) => format!("eclipse-temurin:{major}"),
                None => "eclipse-temurin:latest".to_owned(),
            }
        }
        "php" | "hack" => tagged("php", version("php"), "latest"),
        "rust" => tagged("rust", version("rust").filter(|v| *v != "beta"), "latest"),
        "perl" => tagged("perl", version("perl"), "latest"),
        "elixir" => tagged("elixir", version("elixir"), "latest"),
        "erlang" => tagged("erlang", version("otp_release"), "latest"),
        "haskell" => tagged("haskell", version("ghc"), "latest"),
        "julia" => tagged("julia", version("julia"), "latest"),
        "r" => tagged("r-base", version("r").filter(|v| *v != "release"), "latest"),
        "dart" => tagged("dart", version("dart"), "stable"),
        "crystal" => tagged("crystallang/crystal", version("crystal"), "latest"),
        "csharp" => tagged("mono", version("mono"), "latest"),
        "elm" => "node:lts".to_owned(),
        "c" | "cpp" => "gcc:latest".to_owned(),
        _ => ubuntu_for_dist(job.str_of("dist")).to_owned(),
    }
}

/// The major version in a Travis JDK name (`openjdk11`, `oraclejdk8`, `openjdk-ea` → none).
fn jdk_major(jdk: &str) -> Option<String> {
    let digits: String = jdk
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(pairs: &[(&str, &str)]) -> Attrs {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect()
    }

    #[test]
    fn the_documented_table() {
        let cases = [
            (
                job(&[("language", "node_js"), ("node_js", "16")]),
                "node:16",
            ),
            (
                job(&[("language", "node_js"), ("node_js", "lts/*")]),
                "node:lts",
            ),
            (job(&[("language", "node_js")]), "node:lts"),
            (
                job(&[("language", "python"), ("python", "3.8")]),
                "python:3.8",
            ),
            (
                job(&[("language", "python"), ("python", "pypy3")]),
                "pypy:3",
            ),
            (job(&[("language", "ruby"), ("rvm", "2.7")]), "ruby:2.7"),
            (job(&[("language", "go"), ("go", "1.15.x")]), "golang:1.15"),
            (job(&[("language", "go"), ("go", "1.16")]), "golang:1.16"),
            (
                job(&[("language", "java"), ("jdk", "openjdk11")]),
                "eclipse-temurin:11",
            ),
            (job(&[("language", "php"), ("php", "7.4")]), "php:7.4"),
            (
                job(&[("language", "rust"), ("rust", "stable")]),
                "rust:latest",
            ),
            (
                job(&[("language", "rust"), ("rust", "1.60.0")]),
                "rust:1.60.0",
            ),
            (job(&[("language", "shell")]), "ubuntu:20.04"),
            (
                job(&[("language", "generic"), ("dist", "jammy")]),
                "ubuntu:22.04",
            ),
        ];
        for (job, want) in cases {
            assert_eq!(image_for(&job), want, "{job:?}");
        }
    }
}
