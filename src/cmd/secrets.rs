//! `slipway secrets`: repository keys, encrypted files and values, and settings variables.

use std::io::Read as _;
use std::path::{Path, PathBuf};

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
        /// The repository, `owner/name` [default: from the `origin` remote of the current
        /// directory, else `local/<its name>`].
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
        /// The repository, `owner/name` [default: from the `origin` remote of the current
        /// directory, else `local/<its name>`].
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
        /// The repository, `owner/name` [default: from the `origin` remote of the current
        /// directory, else `local/<its name>`].
        #[arg(long)]
        repo: Option<String>,
    },
    /// Set a repository settings variable (stored encrypted). Without VALUE, it is read from
    /// standard input.
    Set {
        /// The repository, `owner/name` [default: from the `origin` remote of the current
        /// directory, else `local/<its name>`].
        #[arg(long)]
        repo: Option<String>,
        /// The variable name.
        name: String,
        value: Option<String>,
    },
    /// Remove a repository settings variable.
    Unset {
        /// The repository, `owner/name` [default: as for `set`].
        #[arg(long)]
        repo: Option<String>,
        /// The variable name.
        name: String,
    },
    /// List the names (never the values) of a repository's settings variables.
    List {
        /// The repository, `owner/name` [default: as for `set`].
        #[arg(long)]
        repo: Option<String>,
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
            let repo = repo_or_origin(repo)?;
            let value = match value {
                Some(value) => Secret::new(value),
                None => read_stdin_value()?,
            };
            store.set_var(&repo, &name, &value)?;
            eprintln!("Set {name} for {repo}.");
        }
        Action::Unset { repo, name } => {
            let repo = repo_or_origin(repo)?;
            if !store.unset_var(&repo, &name)? {
                bail!("{name} is not set for {repo}");
            }
            eprintln!("Removed {name} from {repo}.");
        }
        Action::List { repo } => {
            let repo = repo_or_origin(repo)?;
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

/// The `--repo` given, else the current directory's: its `origin` remote's slug, else
/// `local/<its name>`, as `slipway run` and `slipway plan` take it.
fn repo_or_origin(repo: Option<String>) -> anyhow::Result<RepoSlug> {
    let repo = repo.unwrap_or_else(|| crate::cmd::repo::default_repo(Path::new(".")));
    Ok(RepoSlug::parse(&repo)?)
}
