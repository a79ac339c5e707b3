//! `[images]`: which images jobs and services really pull, so pipeline files that name public
//! images run unchanged behind a firewall or against the team's own registry.
//!
//! ```toml
//! [images]
//! mirror = "registry.internal:5000/hub"   # Docker Hub images are pulled through this prefix
//! [images.map]
//! "node:16" = "registry.internal/ci/node:16"   # one tag
//! ruby = "registry.internal/ci/ruby"           # every tag, kept
//! ```
//!
//! The rules are checked when the file is read: a bad one is an error with the file's line.

use std::collections::BTreeMap;

use serde::Deserialize;
use slipway_runner::image_map::ImageMap;

/// The image map `[images]` describes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawImages")]
pub struct ImageSettings {
    /// The rules and mirror, checked.
    pub map: ImageMap,
}

/// `[images]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawImages {
    /// A registry prefix Docker Hub images no rule maps are pulled through.
    mirror: Option<String>,
    /// `FROM = "TO"` rules.
    map: BTreeMap<String, String>,
}

impl TryFrom<RawImages> for ImageSettings {
    type Error = String;

    fn try_from(raw: RawImages) -> Result<Self, String> {
        let mut map = ImageMap::default();
        for (from, to) in &raw.map {
            map.add_rule(from, to, "[images.map]")
                .map_err(|e| e.to_string())?;
        }
        if let Some(prefix) = &raw.mirror {
            map.set_mirror(prefix, "[images] mirror")
                .map_err(|e| e.to_string())?;
        }
        Ok(ImageSettings { map })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn images_are_read_and_a_bad_rule_names_its_line() {
        let c = Config::parse(
            "[images]\nmirror = \"127.0.0.1:5000/hub\"\n[images.map]\nruby = \"127.0.0.1:5000/ci/ruby\"\n",
        )
        .unwrap();
        let mapped = c.images.map.map("ruby:3");
        assert_eq!(mapped.image, "127.0.0.1:5000/ci/ruby:3");
        assert_eq!(
            mapped.why.as_deref(),
            Some("[images.map] ruby=127.0.0.1:5000/ci/ruby")
        );
        assert_eq!(
            c.images.map.map("node").image,
            "127.0.0.1:5000/hub/library/node:latest"
        );

        let e = Config::parse("workers = 1\n\n[images.map]\n\"node 16\" = \"x\"\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(
            text.contains("[images.map]: `node 16` is not an image reference"),
            "{text}"
        );
        assert!(Config::parse("[images]\nmirrors = \"x.local\"\n").is_err());
    }
}
