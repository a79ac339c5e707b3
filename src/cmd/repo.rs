//! Which repository a local command is about, when `--repo` does not say: the `origin` remote's
//! `owner/name`, else `local/<the directory's name>`. Secrets and settings variables are looked up
//! under this slug, so it must be one `slipway secrets --repo` accepts.

use std::path::Path;
use std::process::Command;

/// `owner/name` from a remote URL (`git@host:owner/name.git`, `https://host/owner/name`, …).
pub fn slug_of(url: &str) -> Option<String> {
    let path = url.trim().trim_end_matches('/').trim_end_matches(".git");
    let mut parts = path.rsplit(['/', ':']);
    let name = parts.next().filter(|s| !s.is_empty())?;
    let owner = parts.next().filter(|s| !s.is_empty())?;
    Some(format!("{owner}/{name}"))
}

/// The slug of `dir`'s `origin` remote, when it has one.
pub fn origin_slug(dir: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["config", "--get", "remote.origin.url"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    slug_of(&String::from_utf8_lossy(&out.stdout))
}

/// `--repo` for a command run on `dir`: the `origin` remote's slug, else `local/<name>` where
/// `<name>` is the directory's own name (the real one, also for `.`), made a valid slug part.
pub fn default_repo(dir: &Path) -> String {
    if let Some(slug) = origin_slug(dir) {
        return slug;
    }
    let absolute = std::fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf());
    let name = absolute
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("local/{}", slug_part(&name))
}

/// `name` with every character a slug cannot hold replaced by `-`; `project` when nothing usable
/// is left (the file system's root, `.`, `..`).
fn slug_part(name: &str) -> String {
    let part: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if part.is_empty() || part.chars().all(|c| c == '.') {
        "project".to_owned()
    } else {
        part
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slug_comes_from_ssh_and_https_remotes() {
        for (url, slug) in [
            ("git@github.com:octo/app.git", "octo/app"),
            ("https://github.com/octo/app", "octo/app"),
            ("https://github.com/octo/app.git/\n", "octo/app"),
            ("ssh://git@host:2222/octo/app.git", "octo/app"),
        ] {
            assert_eq!(slug_of(url).as_deref(), Some(slug), "{url}");
        }
        assert_eq!(slug_of("app"), None);
    }

    #[test]
    fn a_directory_without_origin_gives_local_and_its_own_name() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("My App");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(default_repo(&dir), "local/My-App");
        assert_eq!(default_repo(&dir.join("..").join("My App")), "local/My-App");
        assert_eq!(slug_part(".."), "project");
        assert_eq!(slug_part(""), "project");
    }
}
