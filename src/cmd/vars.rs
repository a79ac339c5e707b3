//! Variables for one run: `--env`, `--env-file`, `--secret` and `--secret-file`, and the
//! repository's settings variables beside them.
//!
//! `slipway run` exports them (see `slipway_runner::runner::RunVar`); `slipway plan` and
//! `slipway run --dry-run` resolve them *by name* only, so a deploy's `$NAME` options can be
//! shown with the calls they make, secret values as `[secure]`, and where each value comes from.
//! Nothing here prints a secret's value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;
use slipway_pipelines::plan::{EnvValue, Job};
use slipway_runner::runner::RunVar;
use slipway_secrets::{MASK, RepoSlug, Secret, SecretStore};

use crate::cmd::dotenv;

/// The flags that give a run its own variables (shared by `slipway run` and `slipway plan`).
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct VarArgs {
    /// A variable for this run, `NAME=VALUE`, or `NAME` to take the value from this shell's
    /// environment (repeatable). Exported after the repository's settings variables and before
    /// the file's `env:`, which wins on the same name.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// A dotenv file of variables for this run: `NAME=VALUE` lines, `#` comments, values bare,
    /// 'single-' or "double-quoted"; nothing is expanded (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// A secret for this run, `NAME=VALUE`, or `NAME` to take the value from this shell's
    /// environment (out of the shell history). Masked in the log like a settings variable, never
    /// shown by `plan`, and withheld from `--fork` runs (repeatable).
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secret: Vec<String>,
    /// A dotenv file of secrets for this run (format as `--env-file`) (repeatable).
    #[arg(long = "secret-file", value_name = "FILE")]
    pub secret_file: Vec<PathBuf>,
}

/// One variable given for this run, and where it was given.
#[derive(Debug, Clone)]
pub struct Given {
    /// The variable for the runner.
    pub var: RunVar,
    /// Where it comes from, for people: `--env`, `--secret-file ci.env:3`, ….
    pub origin: String,
}

impl VarArgs {
    /// Every variable the flags give, one per name: files before flags, and `--env` before
    /// secrets, so a later one wins (a name given both plain and secret stays secret).
    pub fn read(&self) -> anyhow::Result<Vec<Given>> {
        let mut out: Vec<Given> = Vec::new();
        let mut add = |given: Given| {
            out.retain(|g| g.var.name() != given.var.name());
            out.push(given);
        };
        for (files, secret, flag) in [
            (&self.env_file, false, "--env-file"),
            (&self.secret_file, true, "--secret-file"),
        ] {
            let flags = if secret { &self.secret } else { &self.env };
            let flag_name = if secret { "--secret" } else { "--env" };
            for path in files {
                for entry in read_file(path)? {
                    add(Given {
                        var: run_var(secret, entry.name, entry.value),
                        origin: format!("{flag} {}:{}", path.display(), entry.line),
                    });
                }
            }
            for spec in flags {
                let (name, value, from_env) = assignment(flag_name, spec, secret)?;
                let origin = if from_env {
                    format!("{flag_name} {name} (from this shell's environment)")
                } else {
                    flag_name.to_owned()
                };
                add(Given {
                    var: run_var(secret, name, value),
                    origin,
                });
            }
        }
        Ok(out)
    }

    /// The plain variables, for the conditions' `env(NAME)` (secrets are never visible there).
    pub fn plain(given: &[Given]) -> impl Iterator<Item = (String, String)> + '_ {
        given.iter().filter_map(|g| match &g.var {
            RunVar::Plain { name, value } => Some((name.clone(), value.clone())),
            RunVar::Secret { .. } => None,
        })
    }
}

fn run_var(secret: bool, name: String, value: String) -> RunVar {
    if secret {
        RunVar::Secret {
            name,
            value: Secret::new(value),
        }
    } else {
        RunVar::Plain { name, value }
    }
}

fn read_file(path: &std::path::Path) -> anyhow::Result<Vec<dotenv::Entry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the variables file {}", path.display()))?;
    Ok(dotenv::parse(&path.display().to_string(), &text)?)
}

/// `NAME=VALUE`, or `NAME` alone read from this process's environment; the bool says which.
/// Errors never quote a secret's value.
fn assignment(flag: &str, spec: &str, secret: bool) -> anyhow::Result<(String, String, bool)> {
    let (name, value) = match spec.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (spec, None),
    };
    if !dotenv::is_var_name(name) {
        let shown = if secret { "" } else { spec };
        bail!(
            "{flag} {shown}: `{}` is not a variable name; write {flag} NAME=VALUE (letters, \
             digits and _, not starting with a digit)",
            name.chars().take(40).collect::<String>()
        );
    }
    match value {
        Some(v) => Ok((name.to_owned(), v.to_owned(), false)),
        None => match std::env::var(name) {
            Ok(v) => Ok((name.to_owned(), v, true)),
            Err(_) => bail!(
                "{flag} {name}: {name} is not set in this shell's environment; write {flag} \
                 {name}=VALUE, or export {name} first"
            ),
        },
    }
}

/// What a plan or dry run knows of one variable without decrypting anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The value when it may be shown; `None` for secrets (they show as `[secure]`).
    pub value: Option<String>,
    /// Where it comes from, for people.
    pub origin: String,
}

/// The variables a plan resolves by name: the repository's settings variables (names only),
/// then those given for this run; a job's own `env:` is added per job by [`RunVars::for_job`].
#[derive(Debug, Clone, Default)]
pub struct RunVars {
    /// By name, in the order the runner exports them (later wins).
    pub before_file: Vec<(String, Known)>,
}

impl RunVars {
    /// The settings variables of `repo` in the data dir (when its key is there: a plan never
    /// makes a key) and the `given` ones.
    pub fn resolve(repo: &str, given: &[Given]) -> anyhow::Result<Self> {
        let mut before_file = Vec::new();
        for name in settings_names(repo)? {
            before_file.push((
                name,
                Known {
                    value: None,
                    origin: format!("the settings variable of {repo}"),
                },
            ));
        }
        for g in given {
            let value = match &g.var {
                RunVar::Plain { value, .. } => Some(value.clone()),
                RunVar::Secret { .. } => None,
            };
            before_file.push((
                g.var.name().to_owned(),
                Known {
                    value,
                    origin: g.origin.clone(),
                },
            ));
        }
        Ok(RunVars { before_file })
    }

    /// Every variable `job` sees, by name, with the file's `env:` last (it wins, as in the job).
    pub fn for_job(&self, job: &Job) -> BTreeMap<String, Known> {
        let mut out: BTreeMap<String, Known> = self.before_file.iter().cloned().collect();
        for var in &job.env {
            let value = match &var.value {
                EnvValue::Plain(v) => Some(v.clone()),
                EnvValue::Secure(_) => None,
                // The name is inside the ciphertext: nothing to resolve by.
                EnvValue::SecureAssignment(_) => continue,
            };
            let origin = match value {
                Some(_) => "the file's env:",
                None => "a secure: value in the file's env:",
            };
            out.insert(
                var.name.clone(),
                Known {
                    value,
                    origin: origin.to_owned(),
                },
            );
        }
        out
    }

    /// The lines `plan` prints about these variables: `NAME=value (origin)`, secrets as
    /// `[secure]`.
    pub fn describe(&self) -> Vec<String> {
        self.before_file
            .iter()
            .map(|(name, k)| {
                format!(
                    "{name}={} ({})",
                    k.value.as_deref().unwrap_or(MASK),
                    k.origin
                )
            })
            .collect()
    }
}

/// The names of `repo`'s settings variables, when its key is in the data dir; none otherwise.
fn settings_names(repo: &str) -> anyhow::Result<Vec<String>> {
    let Ok(slug) = RepoSlug::parse(repo) else {
        return Ok(Vec::new());
    };
    let Ok(dir) = slipway_secrets::default_data_dir() else {
        return Ok(Vec::new());
    };
    let store = SecretStore::new(dir);
    if !store.key_file(&slug).is_file() {
        return Ok(Vec::new());
    }
    store
        .var_names(&slug)
        .with_context(|| format!("reading the names of the settings variables of {repo}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(env: &[&str], secret: &[&str]) -> VarArgs {
        VarArgs {
            env: env.iter().map(|s| s.to_string()).collect(),
            secret: secret.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn later_flags_win_and_a_name_given_as_secret_stays_secret() {
        let given = args(&["A=1", "B=plain", "A=2"], &["B=hidden"])
            .read()
            .unwrap();
        let names: Vec<_> = given.iter().map(|g| g.var.name().to_owned()).collect();
        assert_eq!(names, ["A", "B"]);
        assert_eq!(
            given[0].var,
            RunVar::Plain {
                name: "A".into(),
                value: "2".into()
            }
        );
        assert!(matches!(given[1].var, RunVar::Secret { .. }));
        assert_eq!(given[1].origin, "--secret");
    }

    #[test]
    fn bad_names_are_refused_without_showing_a_secret() {
        let e = args(&[], &["1BAD=s3cr3t-value"]).read().unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("`1BAD` is not a variable name"), "{shown}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        let e = args(&["SLIPWAY_TEST_SURELY_UNSET_VAR"], &[])
            .read()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("is not set in this shell's environment"),
            "{e}"
        );
    }
}
