//! The typed pipeline model: a YAML tree normalised the lenient way Travis's own normaliser does it.
//!
//! Travis accepted many spellings for the same thing (a string or a list, `matrix` for `jobs`,
//! `node` for `node_js`, `env: "A=1 B=2"`, a bare `on:` that YAML 1.1 reads as `true`, …). This
//! module turns all of them into one canonical form so that matrix expansion ([`crate::expand`])
//! and planning ([`crate::planner`]) never look at raw YAML.
//!
//! Job-level settings are kept as [`Attrs`]: an ordered map from Travis's canonical key names to
//! normalised JSON values (exactly the shape travis-yml's normalised config uses). That keeps
//! matrix matching (`exclude`, `allow_failures`, de-duplication) as faithful as Travis's, where any
//! key may take part; typed views ([`Attrs::env`], [`DeploySpec`], …) are derived from it.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::plan::PhaseName;
use crate::yaml::{Node, NodeKind, Resolved};

mod deploy;
mod env;
mod notify;

use deploy::deploy_list;
pub use deploy::{DeployOn, DeploySpec};
use env::root_env;
pub use env::{EnvEntry, parse_env_string};
pub use notify::{NotifySpec, notify_specs};

/// Job settings under Travis's canonical key names, with normalised JSON values, in file order.
pub type Attrs = IndexMap<String, Value>;

/// The keys that expand the build matrix, in the order Travis multiplies them (`env` comes last).
///
/// The list and its order are travis-yml's (`os`, `arch`, `compiler`, `osx_image`, then each
/// language's version keys), so job order matches Travis's.
pub const EXPAND_KEYS: &[&str] = &[
    "os",
    "arch",
    "compiler",
    "osx_image",
    "jdk",
    "crystal",
    "dotnet",
    "mono",
    "solution",
    "d",
    "dart",
    "dart_task",
    "elixir",
    "otp_release",
    "elm",
    "node_js",
    "go",
    "hhvm",
    "php",
    "ghc",
    "haxe",
    "julia",
    "matlab",
    "nix",
    "perl",
    "perl6",
    "python",
    "r",
    "rvm",
    "gemfile",
    "xcode_scheme",
    "xcode_sdk",
    "rust",
    "scala",
    "smalltalk",
    "smalltalk_config",
    "smalltalk_vm",
    "env",
];

/// Root keys that never reach a job: they describe the build, not a job (travis-yml's list).
pub const BUILD_ONLY_KEYS: &[&str] = &[
    "jobs",
    "import",
    "stages",
    "notifications",
    "version",
    "allow_failure",
    "global_env",
    "merge_mode",
];

/// The lifecycle keys, whose values are lists of shell commands.
pub const PHASE_KEYS: &[&str] = &[
    "before_install",
    "install",
    "before_script",
    "script",
    "before_cache",
    "after_success",
    "after_failure",
    "before_deploy",
    "deploy",
    "after_deploy",
    "after_script",
];

/// True for a key that expands the matrix.
pub fn is_expand_key(key: &str) -> bool {
    EXPAND_KEYS.contains(&key)
}

/// Which languages support a version key; `None` for keys every language accepts.
///
/// A version key a language does not support is dropped from that language's jobs, as Travis does
/// (a `python:` list in a `node_js` build does not multiply the jobs).
pub fn languages_supporting(key: &str) -> Option<&'static [&'static str]> {
    Some(match key {
        "jdk" => &["android", "clojure", "groovy", "java", "ruby", "scala"],
        "crystal" => &["crystal"],
        "dotnet" | "mono" | "solution" => &["csharp"],
        "d" => &["d"],
        "dart" | "dart_task" => &["dart"],
        "elixir" => &["elixir"],
        "otp_release" => &["elixir", "erlang"],
        "elm" => &["elm"],
        "node_js" => &["node_js", "elm"],
        "go" => &["go"],
        "hhvm" => &["hack"],
        "php" => &["php", "hack"],
        "ghc" => &["haskell"],
        "haxe" => &["haxe"],
        "julia" => &["julia"],
        "matlab" => &["matlab"],
        "nix" => &["nix"],
        "perl" => &["perl"],
        "perl6" => &["perl6"],
        "python" => &["python"],
        "r" => &["r"],
        "rvm" | "gemfile" => &["ruby", "objective-c"],
        "xcode_scheme" | "xcode_sdk" => &["objective-c"],
        "rust" => &["rust"],
        "scala" => &["scala"],
        "smalltalk" | "smalltalk_config" | "smalltalk_vm" => &["smalltalk"],
        "compiler" => &["c", "cpp"],
        _ => return None,
    })
}

/// The operating systems a key or value is limited to, if any (`arch` is Linux only, …).
pub fn oses_supporting(key: &str, value: Option<&str>) -> Option<&'static [&'static str]> {
    match (key, value) {
        ("arch", _) => Some(&["linux"]),
        ("osx_image", _) => Some(&["osx"]),
        ("dist", Some("xenial" | "focal")) => Some(&["linux", "linux-ppc64le"]),
        ("dist", Some("server-2016")) => Some(&["windows"]),
        ("dist", Some("trusty" | "precise" | "bionic" | "jammy" | "noble" | "rhel8")) => {
            Some(&["linux"])
        }
        _ => None,
    }
}

/// The canonical name of a language as Travis spells it (`node` → `node_js`, `minimal` → `shell`).
pub fn canonical_language(name: &str) -> String {
    let lower = name.trim().to_lowercase();
    match lower.as_str() {
        "c++" => "cpp",
        "golang" => "go",
        "jvm" => "java",
        "javascript" | "js" | "node" | "nodejs" => "node_js",
        "objective_c" | "swift" | "objc" => "objective-c",
        "virtual_env" => "python",
        "bash" | "minimal" | "sh" => "shell",
        other => other,
    }
    .to_owned()
}

fn canonical_os(name: &str) -> String {
    let lower = name.trim().to_lowercase();
    match lower.as_str() {
        "ubuntu" => "linux",
        "mac" | "macos" | "macosx" | "ios" => "osx",
        "bsd" => "freebsd",
        "win" => "windows",
        other => other,
    }
    .to_owned()
}

fn canonical_service(name: &str) -> String {
    match name {
        "redis-server" => "redis".to_owned(),
        other => other.to_owned(),
    }
}

/// The canonical name of a key Travis accepts under another name, for the given scope.
fn canonical_key(key: &str) -> &str {
    match key {
        "matrix" => "jobs",
        "node" => "node_js",
        "ruby" | "rbenv" => "rvm",
        "gemfiles" => "gemfile",
        "jdks" => "jdk",
        other => other,
    }
}

/// The whole normalised pipeline file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Every root key in canonical form, including build-level ones (`jobs`, `stages`, `env` as
    /// `{global, jobs}`), in file order; expand keys hold lists.
    pub root: Attrs,
    /// `env.global`: entries every job gets first.
    pub env_global: Vec<Value>,
    /// `env.jobs` (alias `env.matrix`, or a plain `env:` list): one row per job, if given.
    pub env_jobs: Option<Vec<Value>>,
    /// `stages:` in order.
    pub stages: Vec<StageSpec>,
    /// `jobs.include` entries, each a job's own settings (stage inheritance not yet applied).
    pub include: Vec<Attrs>,
    /// `jobs.exclude` entries: partial matches removing jobs.
    pub exclude: Vec<Attrs>,
    /// `jobs.allow_failures` entries: partial matches marking jobs allowed to fail.
    pub allow_failures: Vec<Attrs>,
    /// `jobs.fast_finish`.
    pub fast_finish: bool,
    /// `branches:` (request level).
    pub branches: Option<Branches>,
    /// Root `if:` (request level).
    pub condition: Option<String>,
}

/// One `stages:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpec {
    /// The stage's name.
    pub name: String,
    /// Its `if:` condition.
    pub condition: Option<String>,
}

/// `branches:` safelist/blocklist; each pattern is a name or `/regex/`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Branches {
    /// Only these branches build (wins over `except`).
    pub only: Vec<String>,
    /// These branches never build.
    pub except: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Scalars and lists.

/// A scalar's text as written (`3.10` stays `"3.10"`); `None` for null or a collection.
fn text(node: &Node) -> Option<String> {
    match node.resolve()? {
        Resolved::Null => None,
        _ => node.as_str().map(str::to_owned),
    }
}

/// A string-or-list value, as a list of scalar texts (nulls and collections dropped).
fn str_list(node: &Node) -> Vec<String> {
    match &node.kind {
        NodeKind::Seq(items) => items.iter().filter_map(text).collect(),
        NodeKind::Scalar(_) => text(node).into_iter().collect(),
        NodeKind::Map(_) => Vec::new(),
    }
}

/// A single value; a list gives its first item (Travis's `unexpected_seq` leniency).
fn single_str(node: &Node) -> Option<String> {
    match &node.kind {
        NodeKind::Seq(items) => items.iter().find_map(text),
        NodeKind::Scalar(_) => text(node),
        NodeKind::Map(_) => None,
    }
}

fn bool_of(node: &Node) -> Option<bool> {
    match node.resolve()? {
        Resolved::Bool(b) => Some(b),
        Resolved::Str(s) => bool_word(s),
        _ => None,
    }
}

/// Travis's `true`/`false` spellings, YAML 1.1's `yes`/`no`/`on`/`off` among them.
fn bool_word(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A normalised value read as Travis reads a boolean.
pub(crate) fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => bool_word(s),
        _ => None,
    }
}

fn strings(items: Vec<String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

/// A map key's canonical text; YAML 1.1 booleans that spell `on` (`on`, `yes`, `true`, `y`) are
/// read as `on`, which is what Travis's Ruby loader turned into `true` and back.
fn key_text(key: &Node) -> Option<String> {
    let s = key.as_str()?;
    if matches!(key.resolve(), Some(Resolved::Bool(true))) {
        return Some("on".to_owned());
    }
    Some(s.to_owned())
}

/// A mapping's entries with canonical key names; later duplicates replace earlier ones in place.
fn entries(node: &Node) -> Vec<(String, &Node)> {
    let mut out: Vec<(String, &Node)> = Vec::new();
    for (k, v) in node.as_map().unwrap_or(&[]) {
        let Some(key) = key_text(k) else { continue };
        if let Some(slot) = out.iter_mut().find(|(name, _)| *name == key) {
            slot.1 = v;
        } else {
            out.push((key, v));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Keys

/// Normalises one job-level key; `expand_as_list` is true at the root, where version keys are lists.
fn normalize_value(key: &str, node: &Node, expand_as_list: bool) -> Option<Value> {
    let value = match key {
        "language" => Value::String(canonical_language(&single_str(node)?)),
        "os" if expand_as_list => strings(str_list(node).iter().map(|s| canonical_os(s)).collect()),
        "os" => Value::String(canonical_os(&single_str(node)?)),
        "arch" if expand_as_list => {
            strings(str_list(node).iter().map(|s| s.to_lowercase()).collect())
        }
        "arch" => Value::String(single_str(node)?.to_lowercase()),
        "dist" | "name" | "stage" | "group" | "if" | "image" => Value::String(single_str(node)?),
        // A job's `env.global` is ignored, as Travis does (only the root has global vars).
        "env" => Value::Array(root_env(node).1.unwrap_or_default()),
        "services" => strings(
            str_list(node)
                .iter()
                .map(|s| canonical_service(s))
                .collect(),
        ),
        "deploy" => Value::Array(deploy_list(node)),
        "cache" => cache_value(node)?,
        k if is_expand_key(k) && expand_as_list => strings(str_list(node)),
        k if is_expand_key(k) => Value::String(single_str(node)?),
        k if PHASE_KEYS.contains(&k) => strings(str_list(node)),
        _ => node.to_json(),
    };
    Some(value)
}

/// `cache:` as a map: `npm` → `{npm: true}`, lists of both, `directories:` kept as a list.
fn cache_value(node: &Node) -> Option<Value> {
    let mut map = Map::new();
    let add_item = |item: &Node, map: &mut Map<String, Value>| match &item.kind {
        NodeKind::Map(_) => {
            for (k, v) in entries(item) {
                let value = if k == "directories" {
                    strings(str_list(v))
                } else {
                    v.to_json()
                };
                map.insert(k, value);
            }
        }
        _ => {
            if let Some(name) = text(item) {
                match item.resolve() {
                    Some(Resolved::Bool(false)) => {}
                    _ => {
                        map.insert(name, Value::Bool(true));
                    }
                }
            }
        }
    };
    match &node.kind {
        NodeKind::Seq(items) => items.iter().for_each(|i| add_item(i, &mut map)),
        _ => add_item(node, &mut map),
    }
    if map.is_empty() && node.as_map().is_none_or(|m| m.is_empty()) {
        return match node.resolve() {
            Some(Resolved::Bool(false)) => Some(Value::Bool(false)),
            _ => None,
        };
    }
    Some(Value::Object(map))
}

/// Normalises a job-like mapping (root or `jobs.include` entry) into [`Attrs`].
fn job_attrs(node: &Node, root: bool) -> Attrs {
    let mut attrs = Attrs::new();
    for (key, value) in entries(node) {
        let key = match key.as_str() {
            // `scripts:` is a common typo Travis fixes.
            "scripts" => "script".to_owned(),
            other => canonical_key(other).to_owned(),
        };
        if root && matches!(key.as_str(), "env" | "jobs" | "stages" | "branches") {
            continue;
        }
        if let Some(v) = normalize_value(&key, value, root) {
            attrs.insert(key, v);
        }
    }
    attrs
}

fn stage_list(node: &Node) -> Vec<StageSpec> {
    node.one_or_many()
        .into_iter()
        .filter_map(|item| match &item.kind {
            NodeKind::Map(_) => Some(StageSpec {
                name: item.get("name").and_then(single_str)?,
                condition: item.get("if").and_then(single_str),
            }),
            _ => Some(StageSpec {
                name: text(item)?,
                condition: None,
            }),
        })
        .collect()
}

/// The job maps of an `include`/`exclude`/`allow_failures` list. Blank entries (`- {}`, a bare
/// `-`, a map of nulls) are dropped as Travis's processor drops them: a blank include is no job,
/// and a blank `allow_failures` or `exclude` entry would otherwise match every job.
fn map_list(node: &Node) -> Vec<Attrs> {
    node.one_or_many()
        .into_iter()
        .filter(|n| n.as_map().is_some() && !is_blank(n))
        .map(|n| job_attrs(n, false))
        .collect()
}

/// Null, or a list or map holding only blank values (Ruby's `blank?`, which Travis applies).
pub(crate) fn is_blank(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Scalar(_) => node.is_null(),
        NodeKind::Seq(items) => items.iter().all(is_blank),
        NodeKind::Map(entries) => entries.iter().all(|(_, v)| is_blank(v)),
    }
}

fn branches(node: &Node) -> Branches {
    match &node.kind {
        NodeKind::Map(_) => {
            let mut b = Branches::default();
            for (k, v) in entries(node) {
                match k.as_str() {
                    "only" => b.only = str_list(v),
                    "except" => b.except = str_list(v),
                    _ => {}
                }
            }
            b
        }
        _ => Branches {
            only: str_list(node),
            except: Vec::new(),
        },
    }
}

/// Why a loaded YAML tree cannot be a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The document is a list or a scalar, not a mapping of keys.
    #[error("the pipeline file must be a mapping of keys, found {found}")]
    NotAMap {
        /// What it is instead.
        found: &'static str,
    },
}

impl Config {
    /// Normalises a loaded root node, filling in Travis's defaults (`language: ruby`,
    /// `os: linux`, `dist: focal` on Linux).
    pub fn from_node(node: &Node) -> Result<Config, ConfigError> {
        if node.as_map().is_none() {
            return Err(ConfigError::NotAMap {
                found: node.type_name(),
            });
        }
        let mut config = Config::default();
        let mut root = job_attrs(node, true);
        // With both `jobs` and `matrix`, Travis lets `matrix` overwrite `jobs` (and warns).
        let jobs_node = node.get("matrix").or_else(|| node.get("jobs"));
        let mut jobs_json = Map::new();
        if let Some(jobs) = jobs_node {
            let jobs_entries: Vec<(String, &Node)> = match &jobs.kind {
                NodeKind::Map(_) => entries(jobs),
                NodeKind::Seq(_) => vec![("include".to_owned(), jobs)],
                NodeKind::Scalar(_) => Vec::new(),
            };
            for (k, v) in jobs_entries {
                match k.as_str() {
                    "include" => config.include = map_list(v),
                    "exclude" => config.exclude = map_list(v),
                    "allow_failures" => config.allow_failures = map_list(v),
                    "fast_finish" => config.fast_finish = bool_of(v).unwrap_or(false),
                    _ => {}
                }
                jobs_json.insert(k, v.to_json());
            }
        }
        if let Some(env) = node.get("env") {
            let (global, jobs) = root_env(env);
            let mut map = Map::new();
            if !global.is_empty() {
                map.insert("global".to_owned(), Value::Array(global.clone()));
            }
            if let Some(jobs) = &jobs {
                map.insert("jobs".to_owned(), Value::Array(jobs.clone()));
            }
            config.env_global = global;
            config.env_jobs = jobs;
            if !map.is_empty() {
                root.insert("env".to_owned(), Value::Object(map));
            }
        }
        if let Some(stages) = node.get("stages") {
            config.stages = stage_list(stages);
        }
        if let Some(b) = node.get("branches") {
            let b = branches(b);
            let mut map = Map::new();
            if !b.only.is_empty() {
                map.insert("only".to_owned(), strings(b.only.clone()));
            }
            if !b.except.is_empty() {
                map.insert("except".to_owned(), strings(b.except.clone()));
            }
            root.insert("branches".to_owned(), Value::Object(map));
            config.branches = Some(b);
        }
        if !jobs_json.is_empty() {
            root.insert("jobs".to_owned(), Value::Object(jobs_json));
        }
        config.condition = root.get("if").and_then(|v| v.as_str()).map(str::to_owned);

        // Defaults, as travis-yml applies them.
        let os_list: Vec<String> = root
            .get("os")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if !root.contains_key("language") {
            let lang = if !os_list.is_empty() && os_list.iter().all(|o| o == "osx") {
                "objective-c"
            } else {
                "ruby"
            };
            root.insert("language".to_owned(), Value::String(lang.to_owned()));
        }
        if os_list.is_empty() {
            let lang = root.get("language").and_then(|v| v.as_str()).unwrap_or("");
            let os = if lang == "objective-c" {
                "osx"
            } else {
                "linux"
            };
            root.insert("os".to_owned(), strings(vec![os.to_owned()]));
        }
        let linux = root.get("os").and_then(|v| v.as_array()).is_some_and(|a| {
            a.iter()
                .any(|o| matches!(o.as_str(), Some("linux" | "linux-ppc64le")))
        });
        if !root.contains_key("dist") && linux {
            root.insert("dist".to_owned(), Value::String(DEFAULT_DIST.to_owned()));
        }
        config.root = root;
        Ok(config)
    }

    /// The root's value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.root.get(key)
    }
}

/// The dist Travis defaults Linux jobs to.
pub const DEFAULT_DIST: &str = "focal";

// ---------------------------------------------------------------------------------------------
// Typed views of a job's attributes.

/// Typed reads of a job's [`Attrs`].
pub trait JobAttrs {
    /// A string-valued key.
    fn str_of(&self, key: &str) -> Option<&str>;
    /// The job's env entries, in order.
    fn env_entries(&self) -> Vec<EnvEntry>;
    /// The commands of a lifecycle phase, if the key is set.
    fn phase(&self, phase: PhaseName) -> Option<Vec<String>>;
    /// A list-of-strings key.
    fn str_list(&self, key: &str) -> Vec<String>;
    /// The deploy entries.
    fn deploys(&self) -> Vec<DeploySpec>;
}

impl JobAttrs for Attrs {
    fn str_of(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    fn env_entries(&self) -> Vec<EnvEntry> {
        match self.get("env") {
            Some(Value::Array(items)) => items.iter().filter_map(EnvEntry::from_json).collect(),
            _ => Vec::new(),
        }
    }

    fn phase(&self, phase: PhaseName) -> Option<Vec<String>> {
        let value = self.get(phase.as_str())?;
        Some(
            value
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        )
    }

    fn str_list(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    fn deploys(&self) -> Vec<DeploySpec> {
        let Some(Value::Array(items)) = self.get("deploy") else {
            return Vec::new();
        };
        items.iter().filter_map(DeploySpec::from_json).collect()
    }
}

fn json_strs(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().filter_map(scalar_string).collect(),
        other => scalar_string(other).into_iter().collect(),
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, load};

    fn config(s: &str) -> Config {
        Config::from_node(&load(s.as_bytes(), Limits::default()).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn env_string_splits_into_one_entry_keeping_shell_text() {
        assert_eq!(
            parse_env_string(r#"A=1 B="two words" SHA=$(git rev-parse HEAD) C='x y'"#).unwrap(),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"two words\"".into()),
                ("SHA".into(), "$(git rev-parse HEAD)".into()),
                ("C".into(), "'x y'".into()),
            ]
        );
        assert_eq!(parse_env_string("A = 1"), None);
        assert_eq!(
            parse_env_string("COVERAGE DB=x").unwrap(),
            vec![("COVERAGE".into(), "".into()), ("DB".into(), "x".into())]
        );
        assert_eq!(parse_env_string(""), Some(vec![]));
    }

    #[test]
    fn aliases_and_defaults() {
        let c = config("language: node\nnode: [8, '10']\nmatrix:\n  fast_finish: true\n");
        assert_eq!(c.root["language"], "node_js");
        assert_eq!(c.root["node_js"], serde_json::json!(["8", "10"]));
        assert_eq!(c.root["os"], serde_json::json!(["linux"]));
        assert_eq!(c.root["dist"], "focal");
        assert!(c.fast_finish);
        let c = config("os: osx\n");
        assert_eq!(c.root["language"], "objective-c");
        assert!(!c.root.contains_key("dist"));
    }

    #[test]
    fn env_forms() {
        let c = config(
            "env:\n  global:\n    - secure: abc\n    - X=1\n  matrix:\n    - A=1 B=2\n    - A=3\n",
        );
        assert_eq!(c.env_global.len(), 2);
        assert_eq!(
            EnvEntry::from_json(&c.env_global[0]),
            Some(EnvEntry::Secure("abc".into()))
        );
        assert_eq!(c.env_jobs.unwrap().len(), 2);
        let c = config("env: A=1\n");
        assert_eq!(c.env_jobs.unwrap(), vec![serde_json::json!({"A": "1"})]);
    }

    #[test]
    fn bare_on_key_is_the_deploy_condition() {
        let c = config(
            "deploy:\n  provider: script\n  script: x\n  on:\n    branch: main\n    tags: true\n",
        );
        let d = c.root.deploys();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].on.branch, vec!["main"]);
        assert_eq!(d[0].on.tags, Some(true));
        assert_eq!(d[0].options["script"], "x");
        let c = config("deploy:\n  provider: s3\n  yes:\n    all_branches: true\n");
        assert!(c.root.deploys()[0].on.all_branches);
    }

    #[test]
    fn cleanup_follows_dpl_v1_by_default_and_dpl_v2_with_edge() {
        let skip = |extra: &str| {
            let c = config(&format!("deploy:\n  provider: s3\n  bucket: b\n{extra}"));
            c.root.deploys()[0].skip_cleanup
        };
        // dpl v1: cleaned unless skip_cleanup: true or cleanup: false.
        assert!(!skip(""));
        assert!(skip("  skip_cleanup: true\n"));
        assert!(skip("  cleanup: false\n"));
        assert!(!skip("  skip_cleanup: false\n"));
        assert!(!skip("  edge: false\n"));
        // dpl v2: kept unless cleanup: true.
        assert!(skip("  edge: true\n"));
        assert!(skip("  edge: true\n  skip_cleanup: false\n"));
        assert!(!skip("  edge: true\n  cleanup: true\n"));
        assert!(skip("  edge:\n    branch: v2\n"));
    }

    #[test]
    fn cache_forms() {
        let c = config("cache: npm\n");
        assert_eq!(c.root["cache"], serde_json::json!({"npm": true}));
        let c = config("cache:\n  - pip\n  - directories: [a, b]\n");
        assert_eq!(
            c.root["cache"],
            serde_json::json!({"pip": true, "directories": ["a", "b"]})
        );
    }
}
