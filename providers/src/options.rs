//! Typed reading of a deploy's options: each provider takes what it knows, and whatever is left
//! over is an error naming the option, so a typo never silently changes a deploy.

use indexmap::IndexMap;
use serde_json::Value;
use slipway_secrets::{MASK, Secret};

use crate::context::{DeployContext, EnvValue};
use crate::error::{Error, option_error};

/// A text option after `$NAME` expansion, remembering whether a secret went into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Text {
    /// Showable text.
    Plain(String),
    /// Text that came from a `secure:` value or a secret variable.
    Secret(Secret<String>),
}

impl Text {
    /// The value, for building requests.
    pub fn expose(&self) -> &str {
        match self {
            Text::Plain(v) => v,
            Text::Secret(s) => s.expose(),
        }
    }

    /// The value as a dry run or log shows it (`[secure]` for secrets).
    pub fn shown(&self) -> String {
        match self {
            Text::Plain(v) => v.clone(),
            Text::Secret(_) => MASK.to_owned(),
        }
    }

    /// Turns the text into a secret whatever its origin (for credentials).
    pub fn into_secret(self) -> Secret<String> {
        match self {
            Text::Plain(v) => Secret::new(v),
            Text::Secret(s) => s,
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Every option name a reader asked for on this thread: what the providers really read, which
    /// the test against the lint's spec compares.
    pub(crate) static ASKED: std::cell::RefCell<std::collections::BTreeSet<String>> =
        std::cell::RefCell::default();
}

/// A mapping option with the name it was written under.
pub(crate) type Named = (String, IndexMap<String, Value>);

/// Reads one deploy's options; [`Options::finish`] rejects the ones no reader asked for.
pub(crate) struct Options<'a> {
    provider: &'static str,
    rest: IndexMap<String, Value>,
    ctx: &'a DeployContext,
    dry_run: bool,
}

impl<'a> Options<'a> {
    /// Starts reading `options` for `provider`; in a dry run secure values are never decrypted.
    pub(crate) fn new(
        provider: &'static str,
        options: &IndexMap<String, Value>,
        ctx: &'a DeployContext,
        dry_run: bool,
    ) -> Self {
        Options {
            provider,
            rest: options.clone(),
            ctx,
            dry_run,
        }
    }

    /// The provider whose options these are.
    pub(crate) fn provider(&self) -> &'static str {
        self.provider
    }

    /// The context the options are expanded against.
    pub(crate) fn ctx(&self) -> &'a DeployContext {
        self.ctx
    }

    fn error(&self, option: &str, problem: impl Into<String>) -> Error {
        option_error(self.provider, option, problem)
    }

    /// Removes the first of `names` present, each followed by its aliases from the lint's spec
    /// (the one alias table, `slipway_pipelines::spec`): a planned deploy has canonical names
    /// already, a deploy built another way is read the same.
    fn take(&mut self, names: &[&str]) -> Option<(String, Value)> {
        let spec = slipway_pipelines::spec::provider(self.provider);
        let mut spelled: Vec<&str> = Vec::new();
        for name in names {
            let all = spec.map_or_else(|| vec![*name], |p| p.option_names(name));
            for n in all {
                if !spelled.contains(&n) {
                    spelled.push(n);
                }
            }
        }
        let names = &spelled[..];
        #[cfg(test)]
        ASKED.with(|asked| {
            asked
                .borrow_mut()
                .extend(names.iter().map(|n| (*n).to_owned()));
        });
        let found: Vec<String> = names
            .iter()
            .filter(|n| self.rest.contains_key(**n))
            .map(|n| (*n).to_owned())
            .collect();
        let first = found.first()?.clone();
        let value = self.rest.shift_remove(&first)?;
        for other in &found[1..] {
            self.rest.shift_remove(other);
        }
        Some((first, value))
    }

    /// `username` and `password` for HTTP Basic auth: both, or neither.
    pub(crate) fn user_password(&mut self) -> Result<Option<(String, Text)>, Error> {
        let user = self.string(&["username"])?;
        let password = self.text(&["password"])?;
        match (user, password) {
            (Some(u), Some(p)) => Ok(Some((u, p))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(self.error("password", "is required with username")),
            (None, Some(_)) => Err(self.error("username", "is required with password")),
        }
    }

    /// A text option (strings, numbers and booleans as written; `secure:` objects decrypted).
    pub(crate) fn text(&mut self, names: &[&str]) -> Result<Option<Text>, Error> {
        let Some((name, value)) = self.take(names) else {
            return Ok(None);
        };
        self.text_value(&name, &value).map(Some)
    }

    /// Reads one value as text, for options and for the entries of map options.
    pub(crate) fn text_value(&self, name: &str, value: &Value) -> Result<Text, Error> {
        match value {
            Value::String(s) => expand(self.provider, name, s, self.ctx),
            Value::Number(n) => Ok(Text::Plain(n.to_string())),
            Value::Bool(b) => Ok(Text::Plain(b.to_string())),
            Value::Object(map) if map.len() == 1 && map.contains_key("secure") => {
                let encrypted = map["secure"].as_str().unwrap_or_default();
                self.decrypt(name, encrypted).map(Text::Secret)
            }
            // dpl's per-branch values: `env: {master: prod, staging: stage}`.
            Value::Object(map) => match map.get(&self.ctx.branch) {
                Some(v) => self.text_value(name, v),
                None => Err(self.error(
                    name,
                    format!(
                        "has per-branch values ({}) but none for branch {}",
                        map.keys().cloned().collect::<Vec<_>>().join(", "),
                        self.ctx.branch
                    ),
                )),
            },
            other => Err(self.error(name, format!("expected a string, got {}", json_type(other)))),
        }
    }

    fn decrypt(&self, name: &str, encrypted: &str) -> Result<Secret<String>, Error> {
        if self.dry_run {
            return Ok(Secret::new(MASK.to_owned()));
        }
        // `secure: $NAME` (seen in course files) names a secret variable of the job rather than
        // holding ciphertext; take the variable's value and keep it secret.
        if let Some(var) = whole_reference(encrypted) {
            return match self.ctx.env.get(var) {
                Some(v) => Ok(Secret::new(v.expose().to_owned())),
                None => Err(Error::Secret {
                    provider: self.provider,
                    option: name.to_owned(),
                    reason: format!("it names ${var}, which is not set in the job's environment"),
                }),
            };
        }
        let Some(source) = &self.ctx.secrets else {
            return Err(Error::Secret {
                provider: self.provider,
                option: name.to_owned(),
                reason: "no secrets are available to this job".to_owned(),
            });
        };
        match source.decrypt_env(&self.ctx.repo, encrypted) {
            Ok((_, value)) => Ok(value),
            Err(e) => Err(Error::Secret {
                provider: self.provider,
                option: name.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// A text option that must not carry a secret (names, paths, regions).
    pub(crate) fn string(&mut self, names: &[&str]) -> Result<Option<String>, Error> {
        match self.text(names)? {
            None => Ok(None),
            Some(Text::Plain(s)) => Ok(Some(s)),
            Some(Text::Secret(s)) => Ok(Some(s.into_exposed())),
        }
    }

    /// A required string taken as written, without `$NAME` expansion (shell text).
    pub(crate) fn raw_string(&mut self, name: &str) -> Result<String, Error> {
        match self.take(&[name]) {
            Some((_, Value::String(s))) => Ok(s),
            Some((_, other)) => Err(self.error(
                name,
                format!("expected a string, got {}", json_type(&other)),
            )),
            None => Err(self.error(name, "is required")),
        }
    }

    /// A text option that must be present.
    pub(crate) fn required(&mut self, names: &[&str]) -> Result<String, Error> {
        self.string(names)?
            .ok_or_else(|| self.error(names[0], "is required"))
    }

    /// A boolean option (`true`/`false`, also as strings).
    pub(crate) fn bool(&mut self, names: &[&str]) -> Result<Option<bool>, Error> {
        let Some((name, value)) = self.take(names) else {
            return Ok(None);
        };
        match &value {
            Value::Bool(b) => Ok(Some(*b)),
            Value::String(s) if s == "true" => Ok(Some(true)),
            Value::String(s) if s == "false" => Ok(Some(false)),
            other => Err(self.error(
                &name,
                format!("expected true or false, got {}", json_type(other)),
            )),
        }
    }

    /// A whole number option (seconds, counts).
    pub(crate) fn u64(&mut self, names: &[&str]) -> Result<Option<u64>, Error> {
        let Some((name, value)) = self.take(names) else {
            return Ok(None);
        };
        let parsed = match &value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| self.error(&name, format!("expected a whole number, got {value}")))
    }

    /// A string-or-list option.
    pub(crate) fn strings(&mut self, names: &[&str]) -> Result<Vec<String>, Error> {
        let Some((name, value)) = self.take(names) else {
            return Ok(Vec::new());
        };
        let items = match &value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        items
            .iter()
            .map(|v| match self.text_value(&name, v)? {
                Text::Plain(s) => Ok(s),
                Text::Secret(s) => Ok(s.into_exposed()),
            })
            .collect()
    }

    /// A mapping option, as written (the provider reads its entries with [`Options::text_value`]).
    pub(crate) fn map(&mut self, names: &[&str]) -> Result<Option<Named>, Error> {
        let Some((name, value)) = self.take(names) else {
            return Ok(None);
        };
        match value {
            Value::Object(map) => Ok(Some((name, map.into_iter().collect()))),
            other => Err(self.error(
                &name,
                format!("expected a mapping, got {}", json_type(&other)),
            )),
        }
    }

    /// Rejects every option no reader took, naming each, with the accepted names as the hint.
    pub(crate) fn finish(self, known: &[&str]) -> Result<(), Error> {
        let Some(name) = self.rest.keys().next() else {
            return Ok(());
        };
        Err(self.error(
            name,
            format!(
                "unknown option (the {} provider takes: {})",
                self.provider,
                known.join(", ")
            ),
        ))
    }
}

/// `$NAME` or `${NAME}` as the whole string.
fn whole_reference(text: &str) -> Option<&str> {
    let t = text.trim();
    let inner = t.strip_prefix("${").and_then(|r| r.strip_suffix('}'));
    let name = inner.or_else(|| t.strip_prefix('$'))?;
    (!name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit()))
    .then_some(name)
}

/// Expands `$NAME` and `${NAME}` from the job's environment, as Travis does for deploy options.
/// `\$` is a literal dollar; a variable that is not set is an error naming it.
pub(crate) fn expand(
    provider: &'static str,
    option: &str,
    text: &str,
    ctx: &DeployContext,
) -> Result<Text, Error> {
    let mut out = String::new();
    let mut secret = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\\' && text[i + 1..].starts_with('$') {
            out.push('$');
            chars.next();
            continue;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        let rest = &text[i + 1..];
        let (name, consumed) = if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], end)
        };
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            out.push('$');
            continue;
        }
        match ctx.env.get(name) {
            Some(value) => {
                secret |= value.is_secret();
                out.push_str(value.expose());
            }
            None => {
                return Err(option_error(
                    provider,
                    option,
                    format!("${name} is not set in the job's environment"),
                ));
            }
        }
        for _ in 0..consumed {
            chars.next();
        }
    }
    Ok(if secret {
        Text::Secret(Secret::new(out))
    } else {
        Text::Plain(out)
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl From<&EnvValue> for Text {
    fn from(value: &EnvValue) -> Self {
        match value {
            EnvValue::Plain(v) => Text::Plain(v.clone()),
            EnvValue::Secret(s) => Text::Secret(s.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> DeployContext {
        let mut c = DeployContext::new("octo/app", "abc123", "/nonexistent")
            .with_env("SHA", "abc123")
            .with_env("AWS_ACCESS_KEY", "AKIDPLAIN");
        c.env.insert(
            "AWS_SECRET_KEY".into(),
            EnvValue::Secret(Secret::new("s3cr3t".into())),
        );
        c
    }

    fn opts(v: Value) -> IndexMap<String, Value> {
        v.as_object().unwrap().clone().into_iter().collect()
    }

    #[test]
    fn expands_plain_and_braced_variables() {
        let c = ctx();
        let t = expand("p", "images", "user/web:$SHA and ${SHA}-x \\$HOME $1", &c).unwrap();
        assert_eq!(
            t,
            Text::Plain("user/web:abc123 and abc123-x $HOME $1".into())
        );
    }

    #[test]
    fn a_secret_variable_makes_the_text_secret() {
        let t = expand("p", "key", "x-$AWS_SECRET_KEY", &ctx()).unwrap();
        assert_eq!(t.shown(), "[secure]");
        assert_eq!(t.expose(), "x-s3cr3t");
    }

    #[test]
    fn an_unset_variable_is_an_error_naming_option_and_variable() {
        let e = expand("elasticbeanstalk", "app", "$NOPE", &ctx()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "elasticbeanstalk: option `app`: $NOPE is not set in the job's environment"
        );
    }

    #[test]
    fn secure_values_are_masked_in_dry_runs_and_decrypted_otherwise() {
        let map = opts(json!({"secret_access_key": {"secure": "CIPHER"}}));
        let c = ctx();
        let mut dry = Options::new("s3", &map, &c, true);
        assert_eq!(
            dry.text(&["secret_access_key"]).unwrap().unwrap().expose(),
            "[secure]"
        );

        let mut with = ctx();
        with.secrets = Some(std::sync::Arc::new(slipway_runner::fake::PrefixSecrets {
            name: "X",
            prefix: "plain-of-",
        }));
        let mut real = Options::new("s3", &map, &with, false);
        let t = real.text(&["secret_access_key"]).unwrap().unwrap();
        assert_eq!(t.expose(), "plain-of-CIPHER");
        assert_eq!(t.shown(), "[secure]");
    }

    #[test]
    fn secure_dollar_reference_reads_the_job_variable() {
        let map = opts(json!({"secret_access_key": {"secure": "$AWS_SECRET_KEY"}}));
        let c = ctx();
        let mut o = Options::new("elasticbeanstalk", &map, &c, false);
        assert_eq!(
            o.text(&["secret_access_key"]).unwrap().unwrap().expose(),
            "s3cr3t"
        );
    }

    #[test]
    fn secure_values_without_a_resolver_fail_with_the_option_name() {
        let map = opts(json!({"secret_access_key": {"secure": "CIPHER"}}));
        let c = ctx();
        let mut o = Options::new("s3", &map, &c, false);
        let e = o.text(&["secret_access_key"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "s3: option `secret_access_key`: cannot decrypt the secure value: no secrets are available to this job"
        );
    }

    #[test]
    fn unknown_options_are_named() {
        let map = opts(json!({"bucket": "b", "bukcet_path": "x"}));
        let c = ctx();
        let mut o = Options::new("s3", &map, &c, false);
        o.string(&["bucket"]).unwrap();
        let e = o.finish(&["bucket", "bucket_path"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "s3: option `bukcet_path`: unknown option (the s3 provider takes: bucket, bucket_path)"
        );
    }

    #[test]
    fn aliases_come_from_the_spec_and_types_are_checked() {
        let map = opts(json!({"bucket_name": "b", "wait_until_deployed": "yes", "timeout": "30"}));
        let c = ctx();
        let mut o = Options::new("elasticbeanstalk", &map, &c, false);
        // `bucket_name` is the spec's alias of `bucket`: the reader asks for `bucket` only.
        assert_eq!(o.string(&["bucket"]).unwrap().as_deref(), Some("b"));
        assert_eq!(o.u64(&["timeout"]).unwrap(), Some(30));
        let e = o.bool(&["wait_until_deployed"]).unwrap_err();
        assert!(e.to_string().contains("expected true or false"), "{e}");
    }
}
