//! A JSON Schema (draft-07) for pipeline files, generated from [`crate::spec`].
//!
//! Editors using yaml-language-server complete and check `.slipway.yml` / `.travis.yml` with it.
//! Because it is built from the same tables lint reads, the schema and lint cannot drift apart:
//! a key added to `spec` appears in both.

use serde_json::{Map, Value, json};

use crate::spec::{self, EnumSpec, Key, Obj, Provider, Ty};

/// The URI of the draft the schema follows (the one yaml-language-server understands best).
pub const DRAFT: &str = "http://json-schema.org/draft-07/schema#";

/// Builds the whole schema.
pub fn schema() -> Value {
    let mut definitions = Map::new();
    definitions.insert(
        "secure".into(),
        json!({
            "description": "A secret: an encrypted `{secure: …}` value, or a `$VARIABLE` from the repository settings",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {"secure": {"type": "string", "description": "Encrypted value (base64)"}},
                    "required": ["secure"],
                    "additionalProperties": false
                }
            ]
        }),
    );
    definitions.insert(
        "env_vars".into(),
        json!({
            "description": "Environment variables: `NAME=value` strings, a list of them, a map, or `secure:`",
            "anyOf": [
                {"type": "string"},
                {"type": "object", "additionalProperties": {"anyOf": [{"type": ["string", "number", "boolean", "null"]}, {"$ref": "#/definitions/secure"}]}},
                {"type": "array", "items": {"anyOf": [
                    {"type": "string"},
                    {"type": "object", "additionalProperties": {"anyOf": [{"type": ["string", "number", "boolean", "null"]}, {"$ref": "#/definitions/secure"}]}}
                ]}}
            ]
        }),
    );
    definitions.insert("job_entry".into(), object(&spec::JOB_ENTRY));
    definitions.insert("deploy_conditions".into(), object(&spec::DEPLOY_ON));
    let mut providers = Vec::new();
    for p in spec::PROVIDERS {
        definitions.insert(format!("deploy_{}", p.name), provider(p));
        providers.push(json!({"$ref": format!("#/definitions/deploy_{}", p.name)}));
    }
    let names: Vec<&str> = spec::PROVIDERS.iter().map(|p| p.name).collect();
    providers.push(json!({"type": "string", "enum": names}));
    definitions.insert("deploy".into(), json!({"anyOf": providers}));

    let mut root = Map::new();
    root.insert("$schema".into(), json!(DRAFT));
    root.insert(
        "$id".into(),
        json!("https://slipway.invalid/schema/pipeline.json"),
    );
    root.insert(
        "title".into(),
        json!("Slipway pipeline file (.slipway.yml / .travis.yml)"),
    );
    if let Value::Object(body) = object(&spec::ROOT) {
        root.extend(body);
    }
    root.insert("definitions".into(), Value::Object(definitions));
    Value::Object(root)
}

/// The schema as pretty-printed JSON text (what `slipway schema` prints).
pub fn schema_json() -> String {
    serde_json::to_string_pretty(&schema()).unwrap_or_default()
}

fn scalar_types() -> Value {
    json!(["string", "number", "boolean", "null"])
}

fn enum_values(e: &EnumSpec) -> Value {
    let mut values: Vec<&str> = e.values.to_vec();
    values.extend(e.aliases.iter().map(|(a, _)| *a));
    json!({"type": "string", "enum": values})
}

fn ty(t: &Ty) -> Value {
    match t {
        Ty::Any => json!({}),
        Ty::Str | Ty::Condition => json!({"type": ["string", "number", "boolean"]}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Num => json!({"type": "number"}),
        Ty::Strs | Ty::Template => json!({"anyOf": [
            {"type": scalar_types()},
            {"type": "array", "items": {"anyOf": [
                {"type": scalar_types()},
                {"type": "array", "items": {"type": scalar_types()}}
            ]}}
        ]}),
        Ty::Enum(e) => enum_values(e),
        Ty::Enums(e) => {
            json!({"anyOf": [enum_values(e), {"type": "array", "items": enum_values(e)}]})
        }
        Ty::Secure | Ty::SecureLax => json!({"$ref": "#/definitions/secure"}),
        Ty::Secures | Ty::Targets(_) => json!({"anyOf": [
            {"$ref": "#/definitions/secure"},
            {"type": "array", "items": {"$ref": "#/definitions/secure"}}
        ]}),
        Ty::StrOrMap => json!({"anyOf": [
            {"type": "string"},
            {"type": "object", "additionalProperties": {"type": "string"}}
        ]}),
        Ty::Map => json!({"type": "object"}),
        Ty::Env => json!({"anyOf": [object(&spec::ENV), {"$ref": "#/definitions/env_vars"}]}),
        Ty::EnvVars => json!({"$ref": "#/definitions/env_vars"}),
        Ty::Cache => {
            let names: Vec<&str> = spec::CACHE
                .keys()
                .filter(|k| k.ty == Ty::Bool)
                .map(|k| k.name)
                .collect();
            json!({"anyOf": [
                {"type": "boolean"},
                {"type": "string", "enum": names},
                {"type": "array", "items": {"anyOf": [{"type": "string", "enum": names}, object(&spec::CACHE)]}},
                object(&spec::CACHE)
            ]})
        }
        Ty::Object(o) if std::ptr::eq(*o, &raw const spec::JOB_ENTRY) => {
            json!({"$ref": "#/definitions/job_entry"})
        }
        Ty::Object(o) if std::ptr::eq(*o, &raw const spec::DEPLOY_ON) => {
            json!({"$ref": "#/definitions/deploy_conditions"})
        }
        Ty::Object(o) => object(o),
        Ty::OneOrMany(inner) => {
            json!({"anyOf": [ty(inner), {"type": "array", "items": ty(inner)}]})
        }
        Ty::Jobs => json!({"anyOf": [
            object(&spec::JOBS),
            {"type": "array", "items": {"$ref": "#/definitions/job_entry"}}
        ]}),
        Ty::Deploys => json!({"anyOf": [
            {"$ref": "#/definitions/deploy"},
            {"type": "array", "items": {"$ref": "#/definitions/deploy"}}
        ]}),
    }
}

fn property(key: &Key) -> Value {
    // `key:` with nothing after it is null, which Travis and Slipway read as "not given".
    let mut v = match ty(&key.ty) {
        any if any == json!({}) => any,
        v => json!({"anyOf": [v, {"type": "null"}]}),
    };
    if let Value::Object(m) = &mut v {
        let mut description = key.summary.to_owned();
        match key.support {
            spec::Support::NotYet => description.push_str(" (not supported by Slipway yet)"),
            spec::Support::Cannot { why, instead } => description.push_str(&format!(
                " (cannot be honoured in a container: {why}; instead, {instead})"
            )),
            spec::Support::Yes | spec::Support::NoEffect(_) => {}
        }
        if !description.trim().is_empty() {
            m.insert("description".into(), json!(description.trim()));
        }
        if let Some(why) = key.deprecated {
            m.insert("deprecationMessage".into(), json!(why));
        }
    }
    v
}

fn properties<'k>(keys: impl Iterator<Item = &'k Key>) -> Map<String, Value> {
    let mut props = Map::new();
    for key in keys {
        let p = property(key);
        for alias in key.aliases {
            let mut a = p.clone();
            if let Value::Object(m) = &mut a {
                m.insert(
                    "description".into(),
                    json!(format!("Alias of `{}`", key.name)),
                );
            }
            props.insert((*alias).to_owned(), a);
        }
        props.insert(key.name.to_owned(), p);
    }
    props
}

fn map_schema(props: Map<String, Value>) -> Value {
    json!({
        "type": "object",
        "properties": props,
        "patternProperties": {"^_": {"description": "Private key (e.g. for YAML anchors); ignored"}},
        "additionalProperties": false
    })
}

fn object(o: &Obj) -> Value {
    let map = map_schema(properties(o.keys()));
    let mut alternatives = vec![map];
    if let Some(prefix) = o.prefix.and_then(|p| o.find(p)) {
        alternatives.push(ty(&prefix.ty));
    }
    if o.toggle {
        alternatives.push(json!({"type": "boolean"}));
    }
    if alternatives.len() == 1 {
        alternatives.remove(0)
    } else {
        json!({"anyOf": alternatives})
    }
}

fn provider(p: &Provider) -> Value {
    let mut props = properties(spec::DEPLOY_COMMON.iter().chain(p.options));
    props.insert(
        "provider".into(),
        json!({"const": p.name, "description": "Which provider deploys"}),
    );
    let mut required = vec!["provider"];
    required.extend(p.required.iter().copied());
    let mut v = map_schema(props);
    if let Value::Object(m) = &mut v {
        m.insert("required".into(), json!(required));
        if p.support == spec::Support::NotYet {
            m.insert(
                "description".into(),
                json!(format!("`{}` (not supported by Slipway yet)", p.name)),
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_key_and_alias_is_in_the_schema() {
        let s = schema();
        assert_eq!(s["$schema"], DRAFT);
        let props = s["properties"].as_object().unwrap();
        for key in spec::ROOT.keys() {
            assert!(
                props.contains_key(key.name),
                "root key {} missing",
                key.name
            );
            for alias in key.aliases {
                assert!(props.contains_key(*alias), "alias {alias} missing");
            }
        }
        let entry = s["definitions"]["job_entry"]["properties"]
            .as_object()
            .unwrap();
        for key in spec::JOB_ENTRY.keys() {
            assert!(entry.contains_key(key.name), "job key {} missing", key.name);
        }
    }

    #[test]
    fn every_provider_has_a_definition_with_its_options() {
        let s = schema();
        for p in spec::PROVIDERS {
            let def = &s["definitions"][format!("deploy_{}", p.name)];
            assert_eq!(def["properties"]["provider"]["const"], p.name);
            for option in p.options.iter().chain(spec::DEPLOY_COMMON) {
                assert!(
                    def["properties"].get(option.name).is_some(),
                    "{}.{}",
                    p.name,
                    option.name
                );
            }
        }
    }

    #[test]
    fn deprecated_keys_carry_their_message() {
        let s = schema();
        assert_eq!(
            s["properties"]["sudo"]["deprecationMessage"],
            "The key `sudo` has no effect anymore."
        );
    }

    #[test]
    fn the_providers_slipway_documents_exist() {
        for name in [
            "elasticbeanstalk",
            "ecs",
            "gke",
            "kubernetes",
            "s3",
            "script",
            "pages",
            "heroku",
            "npm",
            "pypi",
            "releases",
        ] {
            assert!(spec::provider(name).is_some(), "{name}");
        }
    }
}
