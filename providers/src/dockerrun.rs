//! `Dockerrun.aws.json` version 2 (multi-container Beanstalk): reading it and pinning its images.

use serde_json::Value;

use crate::images::{Pinned, pushed_for};

/// The file name Beanstalk and the ECS provider look for at the root of the bundle.
pub const FILE_NAME: &str = "Dockerrun.aws.json";

/// Why a Dockerrun file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DockerrunError {
    /// The file is not JSON.
    #[error("not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// A version other than 2 (single-container definitions are not supported).
    #[error("AWSEBDockerrunVersion is {0}, not 2 (a multi-container definition)")]
    Version(String),
    /// No `containerDefinitions` list.
    #[error("containerDefinitions is missing or not a list")]
    NoContainers,
    /// An entry of `containerDefinitions` is not a mapping.
    #[error("a container definition is not a mapping")]
    NotAMapping,
    /// A container field the target service has no equivalent for.
    #[error("container {container}: field `{field}` is not supported for {service}")]
    Unsupported {
        /// The container's name.
        container: String,
        field: String,
        /// The service converted to (`ECS`).
        service: &'static str,
    },
}

/// Parses a Dockerrun file and checks it is version 2 with a `containerDefinitions` list.
pub fn parse_v2(bytes: &[u8]) -> Result<Value, DockerrunError> {
    let doc: Value = serde_json::from_slice(bytes)?;
    let version = doc.get("AWSEBDockerrunVersion");
    let is_two = match version {
        Some(Value::Number(n)) => n.as_u64() == Some(2),
        Some(Value::String(s)) => s == "2",
        _ => false,
    };
    if !is_two {
        return Err(DockerrunError::Version(
            version
                .map(Value::to_string)
                .unwrap_or_else(|| "missing".into()),
        ));
    }
    if !doc.get("containerDefinitions").is_some_and(Value::is_array) {
        return Err(DockerrunError::NoContainers);
    }
    Ok(doc)
}

/// Replaces each container's image with the tag this build pushed for its repository.
pub fn pin_images(doc: &mut Value, pushed: &[String]) -> Vec<Pinned> {
    let mut pinned = Vec::new();
    let Some(containers) = doc
        .get_mut("containerDefinitions")
        .and_then(Value::as_array_mut)
    else {
        return pinned;
    };
    for c in containers {
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let Some(image) = c.get("image").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        if let Some(to) = pushed_for(&image, pushed)
            && to != image
        {
            c["image"] = Value::String(to.to_owned());
            pinned.push(Pinned {
                container: name,
                from: image,
                to: to.to_owned(),
            });
        }
    }
    pinned
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"AWSEBDockerrunVersion": 2, "containerDefinitions": [
        {"name": "web", "image": "me/web", "memory": 64},
        {"name": "db", "image": "postgres:16", "memory": 64}]}"#;

    #[test]
    fn pins_only_images_this_build_pushed() {
        let mut doc = parse_v2(DOC.as_bytes()).unwrap();
        let pinned = pin_images(&mut doc, &["me/web:c0ffee".to_owned()]);
        assert_eq!(
            pinned,
            vec![Pinned {
                container: "web".into(),
                from: "me/web".into(),
                to: "me/web:c0ffee".into()
            }]
        );
        assert_eq!(doc["containerDefinitions"][0]["image"], "me/web:c0ffee");
        assert_eq!(doc["containerDefinitions"][1]["image"], "postgres:16");
    }

    #[test]
    fn version_one_is_refused_with_the_reason() {
        let e = parse_v2(br#"{"AWSEBDockerrunVersion": "1", "Image": {"Name": "x"}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AWSEBDockerrunVersion is \"1\", not 2 (a multi-container definition)"
        );
    }
}
