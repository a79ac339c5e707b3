//! Which image a job or service really pulls: the pipeline file names public images (`ruby:latest`,
//! `redis`), and a machine behind a firewall or with its own registry maps them, without editing
//! the file. Rules are exact (`node:16=registry.local/ci/node:16`) or per repository (`node` maps
//! every tag, keeping the tag unless the target names one); whatever no rule maps and comes from
//! Docker Hub can go through a mirror prefix (a pull-through cache serves `library/node:16`).
//!
//! `slipway run --image FROM=TO`/`--image-mirror PREFIX` and the server's `[images]` fill one
//! [`ImageMap`]; the runner maps with it and says so in the log, and `slipway plan` shows the result
//! and why.

/// Why an image rule or mirror is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: `{text}` {problem}")]
pub struct ImageMapError {
    /// Where it was given (`--image`, `[images.map]`).
    pub origin: String,
    /// The text as given.
    pub text: String,
    /// What is wrong, and how to write it.
    pub problem: String,
}

/// A reference taken apart: the registry (`None` for Docker Hub), the repository path as that
/// registry names it (`library/node` for Docker Hub's official images), the tag and the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    registry: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    fn parse(text: &str) -> Option<Reference> {
        let text = text.trim();
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) if !d.is_empty() => (r, Some(d.to_owned())),
            Some(_) => return None,
            None => (text, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_owned())),
            _ => (rest, None),
        };
        if tag.as_deref() == Some("") || name.is_empty() {
            return None;
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first.to_ascii_lowercase()), path.to_owned())
            }
            _ => (None, name.to_owned()),
        };
        if registry.as_deref().is_some_and(|r| !valid_host(r)) {
            return None;
        }
        let registry = registry.filter(|r| {
            !matches!(
                r.as_str(),
                "docker.io" | "index.docker.io" | "registry-1.docker.io"
            )
        });
        let path = if registry.is_none() && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.split('/').any(str::is_empty) {
            return None;
        }
        Some(Reference {
            registry,
            path,
            tag,
            digest,
        })
    }

    /// The same repository (registry and path)?
    fn same_repository(&self, other: &Reference) -> bool {
        self.registry == other.registry && self.path == other.path
    }

    /// `:tag` and/or `@digest`, as written after a repository; `:latest` when neither is given.
    fn suffix(&self) -> String {
        match (&self.tag, &self.digest) {
            (None, None) => ":latest".to_owned(),
            (tag, digest) => format!(
                "{}{}",
                tag.as_deref().map(|t| format!(":{t}")).unwrap_or_default(),
                digest
                    .as_deref()
                    .map(|d| format!("@{d}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// `host` or `host:port`, as a registry is named.
fn valid_host(registry: &str) -> bool {
    let (host, port) = match registry.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// One `FROM=TO` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    from: Reference,
    to: String,
    /// `to` names a tag or digest itself (else the image's own is kept).
    to_pinned: bool,
    origin: String,
}

/// The image a job or service pulls, and why it is not the one the file named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The reference to pull and run.
    pub image: String,
    /// `None` when the image is used as named; else what mapped it (`--image node=…`, …).
    pub why: Option<String>,
}

/// Image rules and a Docker Hub mirror; the default maps nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMap {
    rules: Vec<Rule>,
    mirror: Option<(String, String)>,
}

impl ImageMap {
    /// Adds the rule `from` → `to`, given at `origin` (`--image`, `[images.map]`). A later rule for
    /// the same `from` replaces an earlier one.
    pub fn add_rule(&mut self, from: &str, to: &str, origin: &str) -> Result<(), ImageMapError> {
        let err = |text: &str, problem: &str| ImageMapError {
            origin: origin.to_owned(),
            text: text.to_owned(),
            problem: problem.to_owned(),
        };
        let from_ref = Reference::parse(from).ok_or_else(|| {
            err(
                from,
                "is not an image reference; write NAME[:TAG], e.g. node:16 or node",
            )
        })?;
        if from_ref.digest.is_some() {
            return Err(err(
                from,
                "names a digest; map the image by name or name:tag instead",
            ));
        }
        let to_ref = Reference::parse(to).ok_or_else(|| {
            err(
                to,
                "is not an image reference; write REGISTRY/NAME[:TAG], e.g. registry.local/ci/node:16",
            )
        })?;
        self.rules.retain(|r| r.from != from_ref);
        self.rules.push(Rule {
            from: from_ref,
            to: to.trim().to_owned(),
            to_pinned: to_ref.tag.is_some() || to_ref.digest.is_some(),
            origin: format!("{origin} {}={}", from.trim(), to.trim()),
        });
        Ok(())
    }

    /// Pulls every Docker Hub image no rule maps through `prefix` (`registry.local:5000` or
    /// `registry.local/hub`), as a pull-through cache serves it: `prefix/library/node:16`.
    pub fn set_mirror(&mut self, prefix: &str, origin: &str) -> Result<(), ImageMapError> {
        let prefix = prefix.trim().trim_end_matches('/');
        let valid = Reference::parse(&format!("{prefix}/x"))
            .is_some_and(|r| r.registry.is_some() && r.tag.is_none() && r.digest.is_none());
        if !valid {
            return Err(ImageMapError {
                origin: origin.to_owned(),
                text: prefix.to_owned(),
                problem:
                    "is not a registry prefix; write HOST[:PORT][/PATH], e.g. mirror.local:5000"
                        .to_owned(),
            });
        }
        self.mirror = Some((prefix.to_owned(), format!("{origin} {prefix}")));
        Ok(())
    }

    /// True when the map changes nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.mirror.is_none()
    }

    /// The image to pull for `image`: an exact `name:tag` rule first, then a rule for the
    /// repository, then the mirror for Docker Hub images; else `image` itself.
    pub fn map(&self, image: &str) -> Mapped {
        let unchanged = Mapped {
            image: image.to_owned(),
            why: None,
        };
        let Some(r) = Reference::parse(image) else {
            return unchanged;
        };
        let effective_tag = r.tag.clone().unwrap_or_else(|| "latest".to_owned());
        let exact = self.rules.iter().rev().find(|rule| {
            rule.from.same_repository(&r)
                && rule.from.tag.as_deref() == Some(effective_tag.as_str())
        });
        let any_tag = || {
            self.rules
                .iter()
                .rev()
                .find(|rule| rule.from.same_repository(&r) && rule.from.tag.is_none())
        };
        if let Some(rule) = exact.or_else(any_tag) {
            let image = if rule.to_pinned {
                rule.to.clone()
            } else {
                format!("{}{}", rule.to, r.suffix())
            };
            return Mapped {
                image,
                why: Some(rule.origin.clone()),
            };
        }
        match (&self.mirror, &r.registry) {
            (Some((prefix, origin)), None) => Mapped {
                image: format!("{prefix}/{}{}", r.path, r.suffix()),
                why: Some(origin.clone()),
            },
            _ => unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rules: &[(&str, &str)], mirror: Option<&str>) -> ImageMap {
        let mut m = ImageMap::default();
        for (from, to) in rules {
            m.add_rule(from, to, "--image").unwrap();
        }
        if let Some(p) = mirror {
            m.set_mirror(p, "--image-mirror").unwrap();
        }
        m
    }

    #[test]
    fn exact_rules_beat_repository_rules_and_unpinned_targets_keep_the_tag() {
        let m = map(
            &[
                ("node", "registry.local/ci/node"),
                ("node:16", "registry.local/ci/node16:pinned"),
                ("docker.io/library/ruby:latest", "registry.local/ruby:3"),
            ],
            None,
        );
        let image = |i: &str| m.map(i).image;
        assert_eq!(image("node:16"), "registry.local/ci/node16:pinned");
        assert_eq!(image("node:18"), "registry.local/ci/node:18");
        assert_eq!(image("library/node"), "registry.local/ci/node:latest");
        assert_eq!(image("ruby"), "registry.local/ruby:3");
        assert_eq!(image("ruby:latest"), "registry.local/ruby:3");
        assert_eq!(image("ruby:3.2"), "ruby:3.2");
        assert_eq!(
            m.map("node:16").why.as_deref(),
            Some("--image node:16=registry.local/ci/node16:pinned")
        );
        assert_eq!(m.map("python:3.12").why, None);
    }

    #[test]
    fn the_mirror_takes_docker_hub_images_only_and_keeps_tags_and_digests() {
        let m = map(
            &[("redis", "slipway-test/redis:7")],
            Some("mirror.local:5000/hub/"),
        );
        let image = |i: &str| m.map(i).image;
        assert_eq!(
            image("python:3.12"),
            "mirror.local:5000/hub/library/python:3.12"
        );
        assert_eq!(
            image("bitnami/kafka"),
            "mirror.local:5000/hub/bitnami/kafka:latest"
        );
        assert_eq!(
            image("docker.io/library/alpine@sha256:abc"),
            "mirror.local:5000/hub/library/alpine@sha256:abc"
        );
        assert_eq!(image("ghcr.io/o/app:1"), "ghcr.io/o/app:1");
        assert_eq!(image("127.0.0.1:5000/team/app"), "127.0.0.1:5000/team/app");
        assert_eq!(image("redis:6"), "slipway-test/redis:7");
        assert_eq!(
            m.map("python").why.as_deref(),
            Some("--image-mirror mirror.local:5000/hub")
        );
    }

    #[test]
    fn bad_rules_and_prefixes_name_where_and_how_to_write_them() {
        let mut m = ImageMap::default();
        let e = m.add_rule("node 16", "x", "--image").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--image: `node 16` is not an image reference; write NAME[:TAG], e.g. node:16 or node"
        );
        assert!(m.add_rule("node", "", "[images.map]").is_err());
        assert!(m.add_rule("node@sha256:1", "x", "--image").is_err());
        let e = m.set_mirror("hub", "[images] mirror").unwrap_err();
        assert!(e.to_string().contains("is not a registry prefix"), "{e}");
        assert!(
            m.set_mirror("mirror.local:5000:x", "--image-mirror")
                .is_err()
        );
        assert!(m.is_empty());
    }
}
