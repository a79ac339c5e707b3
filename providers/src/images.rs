//! Image references: which repository an image belongs to, and pinning a definition's images to
//! the tags this build pushed (so a deploy runs exactly what was built, not whatever `latest` is).

/// The repository part of an image reference (`host:5000/team/web:1.2` → `host:5000/team/web`).
pub fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(colon) if colon > no_digest.rfind('/').unwrap_or(0) => &no_digest[..colon],
        _ => no_digest,
    }
}

/// The tag this build pushed for `image`'s repository, if any; a commit tag wins over `latest`.
pub fn pushed_for<'a>(image: &str, pushed: &'a [String]) -> Option<&'a str> {
    let repo = repository(image);
    let mut candidates = pushed
        .iter()
        .filter(|p| repository(p) == repo)
        .map(String::as_str);
    let first = candidates.next()?;
    if !first.ends_with(":latest") && first != repo {
        return Some(first);
    }
    Some(
        candidates
            .find(|c| !c.ends_with(":latest"))
            .unwrap_or(first),
    )
}

/// One image replaced in a definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinned {
    /// The container's name.
    pub container: String,
    /// The image as written.
    pub from: String,
    /// The image now used.
    pub to: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_strips_tag_and_digest_but_not_registry_port() {
        assert_eq!(repository("user/web"), "user/web");
        assert_eq!(repository("user/web:1"), "user/web");
        assert_eq!(repository("reg:5000/user/web"), "reg:5000/user/web");
        assert_eq!(repository("reg:5000/user/web:abc"), "reg:5000/user/web");
        assert_eq!(repository("user/web@sha256:00ff"), "user/web");
    }

    #[test]
    fn the_commit_tag_wins_over_latest() {
        let pushed = vec![
            "user/web:latest".to_owned(),
            "user/web:abc123".to_owned(),
            "user/api:latest".to_owned(),
        ];
        assert_eq!(pushed_for("user/web", &pushed), Some("user/web:abc123"));
        assert_eq!(pushed_for("user/api:old", &pushed), Some("user/api:latest"));
        assert_eq!(pushed_for("user/db", &pushed), None);
    }
}
