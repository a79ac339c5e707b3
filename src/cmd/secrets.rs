//! `slipway secrets`: repository keys, encrypted files and values, and settings variables.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Args as ClapArgs, Subcommand};
use slipway_secrets::{RepoSlug, Secret, SecretStore, default_data_dir, parse_recipient};

/// Arguments of `slipway secrets`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Slipway's data directory, where repository keys and settings live [default:
    /// $SLIPWAY_DATA_DIR, else $XDG_DATA_HOME/slipway, else ~/.local/share/slipway].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Action,
}

/// The `slipway secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Print the repository's public recipient (`age1…`), making its key on first use.
    Key {
        /// The repository, `owner/name` [default: from the `origin` remote of the current directory].
        #[arg(long)]
        repo: Option<String>,
    },
    /// Make a new key for new secrets; old keys are kept so existing secrets still decrypt.
    Rotate {
        /// The repository, `owner/name`.
        #[arg(long)]
        repo: String,
    },
    /// Encrypt FILE to FILE.age (or FILE.enc with --travis) and print what to add to the pipeline.
    EncryptFile {
        /// The plaintext file; it is left in place and must not be committed.
        file: PathBuf,
        /// The repository, `owner/name` [default: from the `origin` remote of the current directory].
        #[arg(long)]
        repo: Option<String>,
        /// Encrypt to this age recipient instead of a repository's key.
        #[arg(long, conflicts_with_all = ["repo", "travis"])]
        recipient: Option<String>,
        /// Do what `travis encrypt-file` does: AES-256-CBC to FILE.enc, key and IV stored as the
        /// repository's `encrypted_<id>_key`/`_iv` settings variables, and an openssl line.
        #[arg(long)]
        travis: bool,
    },
    /// Encrypt NAME=VALUE for `secure:` in `env` or in a deploy option. With NAME alone, the
    /// value is read from standard input (and kept out of the shell history).
    Encrypt {
        /// `NAME=VALUE`, or `NAME` to read the value from standard input.
        assignment: String,
        /// The repository, `owner/name` [default: from the `origin` remote of the current directory].
        #[arg(long)]
        repo: Option<String>,
    },
    /// Set a repository settings variable (stored encrypted). Without VALUE, it is read from
    /// standard input.
    Set {
        /// The repository, `owner/name`.
        #[arg(long)]
        repo: String,
        /// The variable name.
        name: String,
        /// The value.
        value: Option<String>,
    },
    /// Remove a repository settings variable.
    Unset {
        /// The repository, `owner/name`.
        #[arg(long)]
        repo: String,
        /// The variable name.
        name: String,
    },
    /// List the names (never the values) of a repository's settings variables.
    List {
        /// The repository, `owner/name`.
        #[arg(long)]
        repo: String,
    },
}

/// Runs `slipway secrets`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let store = SecretStore::new(data_dir);
    match args.command {
        Action::Key { repo } => {
            let repo = repo_or_origin(repo)?;
            println!("{}", store.recipient(&repo)?);
        }
        Action::Rotate { repo } => {
            let repo = RepoSlug::parse(&repo)?;
            let recipient = store.rotate(&repo)?;
            println!("{recipient}");
            eprintln!(
                "New secrets of {repo} are now encrypted to this key. Old keys are kept, so files and \
                 values made before still decrypt; re-encrypt them with `slipway secrets encrypt-file` \
                 and `slipway secrets encrypt`."
            );
        }
        Action::EncryptFile {
            file,
            repo,
            recipient,
            travis,
        } => encrypt_file(&store, &file, repo, recipient, travis)?,
        Action::Encrypt { assignment, repo } => {
            let repo = repo_or_origin(repo)?;
            let (name, value) = match assignment.split_once('=') {
                Some((name, value)) => (name.to_string(), Secret::new(value.to_string())),
                None => (assignment, read_stdin_value()?),
            };
            let secure = store.encrypt_value(&repo, &name, &value)?;
            println!("secure: \"{secure}\"");
            eprintln!(
                "Use it in `env` as `- secure: \"…\"` (the job gets {name}), or as a deploy option \
                 `option: {{secure: \"…\"}}` (the option gets the value)."
            );
        }
        Action::Set { repo, name, value } => {
            let repo = RepoSlug::parse(&repo)?;
            let value = match value {
                Some(value) => Secret::new(value),
                None => read_stdin_value()?,
            };
            store.set_var(&repo, &name, &value)?;
            eprintln!("Set {name} for {repo}.");
        }
        Action::Unset { repo, name } => {
            let repo = RepoSlug::parse(&repo)?;
            if !store.unset_var(&repo, &name)? {
                bail!("{name} is not set for {repo}");
            }
            eprintln!("Removed {name} from {repo}.");
        }
        Action::List { repo } => {
            let repo = RepoSlug::parse(&repo)?;
            for name in store.var_names(&repo)? {
                println!("{name}");
            }
        }
    }
    Ok(())
}

fn encrypt_file(
    store: &SecretStore,
    file: &Path,
    repo: Option<String>,
    recipient: Option<String>,
    travis: bool,
) -> anyhow::Result<()> {
    if travis {
        let repo = repo_or_origin(repo)?;
        let made = store.travis_encrypt_file(&repo, file)?;
        println!(
            "Wrote {}; its key and IV are the settings variables {} and {} of {repo}.",
            made.encrypted.display(),
            made.key_var,
            made.iv_var
        );
        println!(
            "Commit {}, not {}, and add to before_install:",
            made.encrypted.display(),
            file.display()
        );
        println!();
        println!("  - {}", made.command);
        return Ok(());
    }
    let recipient = match recipient {
        Some(text) => parse_recipient(&text)?,
        None => store.recipient(&repo_or_origin(repo)?)?,
    };
    let encrypted = slipway_secrets::encrypt_file(file, &recipient)?;
    println!("Wrote {} (encrypted to {recipient}).", encrypted.display());
    println!(
        "Commit {}, not {}, and add to .slipway.yml:",
        encrypted.display(),
        file.display()
    );
    println!();
    println!("secrets:");
    println!("  files:");
    println!("    - {}", encrypted.display());
    Ok(())
}

/// Reads a value from standard input, without the final newline `echo` or a terminal adds.
fn read_stdin_value() -> anyhow::Result<Secret<String>> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("reading the value from standard input")?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(Secret::new(value))
}

/// The `--repo` given, else the slug of the current directory's `origin` remote.
fn repo_or_origin(repo: Option<String>) -> anyhow::Result<RepoSlug> {
    if let Some(repo) = repo {
        return Ok(RepoSlug::parse(&repo)?);
    }
    let output = Command::new("git")
        .args(["config", "--get", "remote.origin.url"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let url = output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match url.as_deref().and_then(slug_from_remote) {
        Some(slug) => RepoSlug::parse(&slug).with_context(|| {
            format!(
                "the origin remote `{}` names no repository",
                url.unwrap_or_default()
            )
        }),
        None => {
            bail!("no --repo given and no `origin` remote to take it from: pass --repo OWNER/NAME")
        }
    }
}

/// `owner/name` from a remote URL: `git@host:owner/name.git`, `https://host/owner/name`, ….
fn slug_from_remote(url: &str) -> Option<String> {
    let path = url.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = path.rsplit(['/', ':']);
    let name = parts.next().filter(|s| !s.is_empty())?;
    let owner = parts.next().filter(|s| !s.is_empty())?;
    Some(format!("{owner}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::slug_from_remote;

    #[test]
    fn the_slug_comes_from_ssh_and_https_remotes() {
        for (url, slug) in [
            ("git@github.com:octo/app.git", "octo/app"),
            ("https://github.com/octo/app", "octo/app"),
            ("https://github.com/octo/app.git/", "octo/app"),
            ("ssh://git@host:2222/octo/app.git", "octo/app"),
        ] {
            assert_eq!(slug_from_remote(url).as_deref(), Some(slug), "{url}");
        }
        assert_eq!(slug_from_remote("app"), None);
    }
}
