//! Repository slugs (`owner/name`), validated once so they can be used as paths safely.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Error;

/// A repository's `owner/name`, lower-cased (forges treat slugs case-insensitively, so
/// `Owner/Repo` and `owner/repo` share one key). Each part is ASCII letters, digits, `-`, `_`
/// or `.`, and neither is `.` or `..`, so a slug always maps to a directory inside the data dir.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoSlug {
    owner: String,
    name: String,
}

impl RepoSlug {
    /// Parses and normalizes `owner/name`.
    pub fn parse(slug: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidRepo {
            slug: slug.to_string(),
            reason: reason.to_string(),
        };
        let (owner, name) = slug
            .split_once('/')
            .ok_or_else(|| invalid("expected OWNER/NAME"))?;
        for part in [owner, name] {
            if part.is_empty() {
                return Err(invalid("expected OWNER/NAME"));
            }
            if part == "." || part == ".." {
                return Err(invalid("`.` and `..` are not repository names"));
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(invalid(
                    "only ASCII letters, digits, `-`, `_` and `.` are allowed in each part",
                ));
            }
        }
        Ok(RepoSlug {
            owner: owner.to_ascii_lowercase(),
            name: name.to_ascii_lowercase(),
        })
    }

    /// The owner (user or organisation).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The repository name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The repository's directory relative to the data dir: `repos/OWNER/NAME`.
    pub(crate) fn relative_dir(&self) -> PathBuf {
        PathBuf::from("repos").join(&self.owner).join(&self.name)
    }
}

impl FromStr for RepoSlug {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        RepoSlug::parse(s)
    }
}

impl fmt::Display for RepoSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slug_is_normalized_to_lower_case() {
        let slug = RepoSlug::parse("StephenGrider/Multi-K8s").unwrap();
        assert_eq!(slug.to_string(), "stephengrider/multi-k8s");
        assert_eq!(
            slug.relative_dir(),
            PathBuf::from("repos/stephengrider/multi-k8s")
        );
    }

    #[test]
    fn slugs_that_could_escape_the_data_dir_are_refused() {
        for bad in [
            "owner", "/name", "owner/", "../x", "owner/..", "a/b/c", "a b/c", "a/b\\c",
        ] {
            let err = RepoSlug::parse(bad).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{bad}`")),
                "{bad}: {err}"
            );
        }
    }
}
