//! `addons:` as a job gets them: typed, with every addon Slipway cannot honour named with why.
//!
//! Travis applied add-ons inside the job before `before_install`; the runner does the same from
//! this model (see `docs/pipeline-reference.md`, *Addons*). Reading is lenient like the rest of
//! planning: shapes lint reports as wrong are skipped here, never guessed at.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::truthy;
use crate::spec::{self, Support};

/// The add-ons of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Addons {
    /// `apt:` (and `apt_packages:`): sources and packages installed before `before_install`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt: Option<Apt>,
    /// `hosts:`: names that resolve to 127.0.0.1 inside the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// `hostname:`: a name for the job's host, resolving to 127.0.0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `ssh_known_hosts:`: `host` or `host:port` entries scanned into `~/.ssh/known_hosts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_known_hosts: Vec<String>,
    /// `chrome:` channel (`stable`, `beta`) as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chrome: Option<String>,
    /// `firefox:` version or channel (`latest`, `latest-esr`, `91.0`) as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firefox: Option<String>,
    /// `postgresql:` version: the PostgreSQL service runs that version's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<String>,
    /// `mariadb:` version: the MariaDB service runs that version's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mariadb: Option<String>,
    /// `artifacts:` options as written (`secure:` values still encrypted), when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<serde_json::Map<String, Value>>,
    /// Add-ons a container cannot honour, each with why and what to do instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_honoured: Vec<NotHonoured>,
}

impl Addons {
    /// True when the job asks for nothing.
    pub fn is_empty(&self) -> bool {
        *self == Addons::default()
    }
}

/// `addons.apt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Apt {
    /// Sources added before the package lists are updated.
    pub sources: Vec<AptSource>,
    /// Packages installed, in file order.
    pub packages: Vec<String>,
    /// `update: true`: update the package lists even with nothing to install.
    pub update: bool,
}

/// One `addons.apt.sources` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AptSource {
    /// A source given by name (`ubuntu-toolchain-r-test`), resolved by the runner.
    Named(String),
    /// A `sourceline:` (a `deb …` line or `ppa:owner/name`) with its signing key's URL.
    Line {
        /// The `deb …` line or `ppa:` name.
        sourceline: String,
        /// Where the signing key is fetched from.
        key_url: Option<String>,
    },
}

/// An add-on a container cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotHonoured {
    /// The addon's key (`homebrew`).
    pub addon: String,
    /// Why a container cannot do it.
    pub why: String,
    /// What to write instead.
    pub instead: String,
}

fn strs(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(items) => items.iter().flat_map(strs).collect(),
        Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn sources(v: &Value) -> Vec<AptSource> {
    let items: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::String(name) if !name.trim().is_empty() => {
                Some(AptSource::Named(name.trim().to_owned()))
            }
            Value::Object(map) => {
                let sourceline = map.get("sourceline").and_then(scalar);
                let key_url = map.get("key_url").and_then(scalar);
                match (sourceline, map.get("name").and_then(scalar)) {
                    (Some(sourceline), _) => Some(AptSource::Line {
                        sourceline,
                        key_url,
                    }),
                    (None, Some(name)) => Some(AptSource::Named(name)),
                    (None, None) => None,
                }
            }
            _ => None,
        })
        .collect()
}

fn apt(v: &Value) -> Option<Apt> {
    let mut apt = Apt::default();
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match k.as_str() {
                    "packages" | "package" => apt.packages.extend(strs(v)),
                    "sources" | "source" => apt.sources.extend(sources(v)),
                    "update" => apt.update = truthy(v).unwrap_or(false),
                    _ => {}
                }
            }
        }
        Value::Bool(false) => return None,
        // `apt: true` means nothing to do; a list or a string is the packages (the prefix key).
        Value::Bool(true) => {}
        other => apt.packages.extend(strs(other)),
    }
    Some(apt)
}

/// The typed add-ons of a job's `addons:` value (normalised JSON), or none.
pub fn addons_of(value: Option<&Value>) -> Addons {
    let mut out = Addons::default();
    let Some(Value::Object(map)) = value else {
        return out;
    };
    for (k, v) in map {
        let Some(key) = spec::ADDONS.find(k) else {
            continue;
        };
        if let Support::Cannot { why, instead } = key.support {
            if truthy(v) != Some(false) && !v.is_null() {
                out.not_honoured.push(NotHonoured {
                    addon: key.name.to_owned(),
                    why: why.to_owned(),
                    instead: instead.to_owned(),
                });
            }
            continue;
        }
        match key.name {
            "apt" => {
                if let Some(a) = apt(v) {
                    let into = out.apt.get_or_insert_with(Apt::default);
                    into.sources.extend(a.sources);
                    into.packages.extend(a.packages);
                    into.update |= a.update;
                }
            }
            "apt_packages" => out
                .apt
                .get_or_insert_with(Apt::default)
                .packages
                .extend(strs(v)),
            "hosts" => out.hosts.extend(strs(v)),
            "hostname" => out.hostname = scalar(v),
            "ssh_known_hosts" => out.ssh_known_hosts.extend(strs(v)),
            "chrome" => out.chrome = scalar(v),
            "firefox" => out.firefox = scalar(v),
            "postgresql" => out.postgresql = scalar(v),
            "mariadb" => out.mariadb = scalar(v),
            "artifacts" => {
                out.artifacts = match v {
                    Value::Object(m) if m.get("enabled").and_then(truthy) != Some(false) => {
                        Some(m.clone())
                    }
                    Value::Bool(true) => Some(serde_json::Map::new()),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    if out.apt.as_ref().is_some_and(|a| *a == Apt::default()) {
        out.apt = None;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apt_forms() {
        let a = addons_of(Some(&json!({
            "apt": {"sources": ["ubuntu-toolchain-r-test", {"sourceline": "deb file:/r ./", "key_url": "file:///k.asc"}],
                    "packages": ["gcc-9", "g++-9"], "update": true},
            "apt_packages": "libfoo"
        })));
        let apt = a.apt.unwrap();
        assert_eq!(apt.packages, ["gcc-9", "g++-9", "libfoo"]);
        assert!(apt.update);
        assert_eq!(
            apt.sources,
            [
                AptSource::Named("ubuntu-toolchain-r-test".into()),
                AptSource::Line {
                    sourceline: "deb file:/r ./".into(),
                    key_url: Some("file:///k.asc".into())
                }
            ]
        );
        assert_eq!(
            addons_of(Some(&json!({"apt": ["x", "y"]})))
                .apt
                .unwrap()
                .packages,
            ["x", "y"]
        );
        assert_eq!(addons_of(Some(&json!({"apt": true}))).apt, None);
    }

    #[test]
    fn cannot_be_honoured_is_named() {
        let a = addons_of(Some(
            &json!({"homebrew": {"packages": ["x"]}, "snaps": ["y"]}),
        ));
        let names: Vec<_> = a.not_honoured.iter().map(|n| n.addon.as_str()).collect();
        assert_eq!(names, ["homebrew", "snaps"]);
        assert!(a.not_honoured[0].why.contains("macOS"));
    }
}
