//! `slipway completions SHELL` and `slipway man`: shell completions and manual pages, generated
//! from the same argument definitions the command line parses, so they cannot drift from it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args as ClapArgs;
use clap_complete::Shell;

/// Arguments of `slipway completions`.
#[derive(Debug, ClapArgs)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of `slipway man`.
#[derive(Debug, ClapArgs)]
pub struct ManArgs {
    /// Write `slipway.1` and one page per subcommand (`slipway-run.1`, …) into this directory,
    /// instead of printing `slipway.1`.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script of `shell` for `command`.
pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "slipway", &mut out);
    out.flush()?;
    Ok(())
}

/// Prints `slipway.1`, or writes every page into `--dir`.
pub fn man(args: ManArgs, command: clap::Command) -> anyhow::Result<()> {
    match args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let written = write_pages(&dir, command, "slipway")?;
            eprintln!("Wrote {written} manual pages into {}.", dir.display());
        }
    }
    Ok(())
}

/// Writes the page of `command` (named `name`) and of each of its subcommands, recursively;
/// returns how many were written.
fn write_pages(dir: &Path, command: clap::Command, name: &str) -> anyhow::Result<usize> {
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name)
        .render(&mut page)?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_name = format!("{name}-{}", sub.get_name());
        written += write_pages(dir, sub.clone(), &sub_name)?;
    }
    Ok(written)
}
