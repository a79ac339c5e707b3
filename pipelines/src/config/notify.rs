//! `notifications:` read the lenient way travis-yml normalises it: a bare value is the email
//! setting (`notifications: false`), a channel's bare value is its targets (`slack: acme:tok`,
//! `webhooks: https://…`, `slack: {secure: …}`), `true`/`false` switch a channel, aliases
//! (`emails`, `webhook`, `channel`) are accepted, and `on_success`/`on_failure` at the top are
//! inherited by every channel entry that does not set its own.

use serde_json::{Map, Value};

use super::truthy;
use crate::notify::{Channel, Frequency, Notification, Text, Triggers};
use crate::plan::Decision;

/// One channel entry before the event decides about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySpec {
    /// The entry with its decision still open (included, empty reason).
    pub notification: Notification,
    /// `enabled: false` or `disabled: true` (or `email: false`).
    pub enabled: bool,
    /// Its `if:` condition.
    pub condition: Option<String>,
}

/// The channels Slipway sends to, in the order entries are listed.
const CHANNELS: &[&str] = &["email", "slack", "webhooks", "irc"];

/// Keys inherited from the top of `notifications:` (travis-yml's `inherit` change).
const INHERITED: &[&str] = &["on_success", "on_failure"];

/// Reads the root's `notifications:` value (normalised JSON) into channel entries.
pub fn notify_specs(value: Option<&Value>) -> Vec<NotifySpec> {
    let top = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Object(map)) => canonical_top(map),
        // `notifications: - email: x` (a list of maps) is read as one map, as Travis does.
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => {
            let mut merged = Map::new();
            for item in items.iter().filter_map(Value::as_object) {
                merged.extend(canonical_top(item));
            }
            merged
        }
        // Any other bare value is the email setting (travis-yml's prefix key).
        Some(other) => Map::from_iter([("email".to_owned(), other.clone())]),
    };
    let mut out = Vec::new();
    for channel in CHANNELS {
        let Some(value) = top.get(*channel) else {
            continue;
        };
        let entries: Vec<&Value> = match value {
            Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
                items.iter().collect()
            }
            other => vec![other],
        };
        for entry in entries {
            let mut map = entry_map(channel, entry);
            for key in INHERITED {
                if let (false, Some(v)) = (map.contains_key(*key), top.get(*key)) {
                    map.insert((*key).to_owned(), v.clone());
                }
            }
            out.push(spec_of(channel, &map));
        }
    }
    out
}

/// The top map with aliases resolved (`emails` → `email`, `webhook` → `webhooks`) and a
/// misplaced `recipients:` moved under `email`.
fn canonical_top(map: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in map {
        let key = match k.replace('-', "_").as_str() {
            "emails" => "email".to_owned(),
            "webhook" => "webhooks".to_owned(),
            "recipients" => {
                out.insert(
                    "email".to_owned(),
                    Value::Object(Map::from_iter([("recipients".to_owned(), v.clone())])),
                );
                continue;
            }
            other => other.to_owned(),
        };
        out.insert(key, v.clone());
    }
    out
}

/// The key a channel's bare value stands for.
fn prefix(channel: &str) -> &'static str {
    match channel {
        "email" => "recipients",
        "slack" => "rooms",
        "webhooks" => "urls",
        _ => "channels",
    }
}

/// One entry as a map: `true`/`false` become `enabled`, bare values and `{secure: …}` the
/// channel's targets.
fn entry_map(channel: &str, entry: &Value) -> Map<String, Value> {
    let mut map = match entry {
        Value::Bool(b) => Map::from_iter([("enabled".to_owned(), Value::Bool(*b))]),
        Value::String(s) if matches!(s.to_ascii_lowercase().as_str(), "yes" | "no") => {
            Map::from_iter([(
                "enabled".to_owned(),
                Value::Bool(s.eq_ignore_ascii_case("yes")),
            )])
        }
        Value::Object(m) if m.contains_key("secure") => {
            let mut rest = m.clone();
            let secure = rest.remove("secure").unwrap_or(Value::Null);
            rest.insert(
                prefix(channel).to_owned(),
                Value::Object(Map::from_iter([("secure".to_owned(), secure)])),
            );
            rest
        }
        Value::Object(m) if channel == "webhooks" && m.contains_key("url") => {
            Map::from_iter([(prefix(channel).to_owned(), entry.clone())])
        }
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => Map::from_iter([(prefix(channel).to_owned(), other.clone())]),
    };
    if channel == "irc"
        && let Some(v) = map.remove("channel")
    {
        map.entry("channels").or_insert(v);
    }
    map
}

fn spec_of(channel: &str, map: &Map<String, Value>) -> NotifySpec {
    let enabled = match (
        map.get("enabled").and_then(truthy),
        map.get("disabled").and_then(truthy),
    ) {
        (Some(e), _) => e,
        (None, Some(d)) => !d,
        (None, None) => true,
    };
    let targets = |key: &str| texts(map.get(key), channel != "webhooks");
    let flag = |key: &str| map.get(key).and_then(truthy).unwrap_or(false);
    let one = |key: &str| map.get(key).and_then(text);
    let kind = match channel {
        "email" => Channel::Email {
            recipients: targets("recipients"),
        },
        "slack" => Channel::Slack {
            rooms: targets("rooms"),
            on_pull_requests: map.get("on_pull_requests").and_then(truthy).unwrap_or(true),
        },
        "webhooks" => Channel::Webhooks {
            urls: targets("urls"),
        },
        _ => Channel::Irc {
            channels: targets("channels"),
            channel_key: one("channel_key"),
            password: one("password"),
            nickserv_password: one("nickserv_password"),
            nick: one("nick"),
            use_notice: flag("use_notice"),
            skip_join: flag("skip_join"),
        },
    };
    let mut on = Triggers::defaults(channel);
    let frequency = |key: &str, default: Frequency| {
        map.get(key)
            .and_then(|v| match v {
                Value::Bool(true) => Some(Frequency::Always),
                Value::Bool(false) => Some(Frequency::Never),
                Value::String(s) => Frequency::parse(s),
                _ => None,
            })
            .unwrap_or(default)
    };
    on.success = frequency("on_success", on.success);
    on.failure = frequency("on_failure", on.failure);
    if channel == "webhooks" {
        on.start = frequency("on_start", on.start);
        on.cancel = frequency("on_cancel", on.cancel);
        on.error = frequency("on_error", on.error);
    }
    let template = match map.get("template") {
        Some(Value::Array(items)) => items.iter().filter_map(plain).collect(),
        Some(v) => plain(v).into_iter().collect(),
        None => Vec::new(),
    };
    NotifySpec {
        notification: Notification {
            channel: kind,
            on,
            template: if channel == "slack" || channel == "irc" {
                template
            } else {
                Vec::new()
            },
            decision: Decision {
                included: true,
                reason: String::new(),
            },
        },
        enabled,
        condition: map.get("if").and_then(plain),
    }
}

fn plain(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One value as [`Text`]: a string, or `{secure: …}`.
fn text(v: &Value) -> Option<Text> {
    match v {
        Value::Object(m) => m
            .get("secure")
            .and_then(Value::as_str)
            .map(|s| Text::Secure(s.to_owned())),
        other => plain(other).map(Text::Plain),
    }
}

/// A target list: one value or a list; webhook URL objects (`{url: …}`) give their URL.
/// Plain strings are split on commas, as travis-hub does, except a webhooks list's items (a
/// URL may hold a comma); secure values are split after decryption.
fn texts(v: Option<&Value>, split_items: bool) -> Vec<Text> {
    let split = |t: Text| -> Vec<Text> {
        match t {
            Text::Plain(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Text::Plain(s.to_owned()))
                .collect(),
            secure @ Text::Secure(_) => vec![secure],
        }
    };
    let item = |v: &Value| match v {
        Value::Object(m) if m.contains_key("url") => m.get("url").and_then(text),
        other => text(other),
    };
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(item)
            .flat_map(|t| if split_items { split(t) } else { vec![t] })
            .collect(),
        Some(one) => item(one).map(split).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn specs(v: Value) -> Vec<NotifySpec> {
        notify_specs(Some(&v))
    }

    #[test]
    fn bare_values_are_the_email_setting() {
        let s = specs(json!(false));
        assert_eq!(s.len(), 1);
        assert!(!s[0].enabled);
        assert_eq!(s[0].notification.channel.name(), "email");
        let s = specs(json!("a@x.org, b@x.org"));
        assert_eq!(
            s[0].notification.channel.targets(),
            [Text::Plain("a@x.org".into()), Text::Plain("b@x.org".into())]
        );
    }

    #[test]
    fn channel_forms_of_the_corpus() {
        // Kong, jekyll: a secure map is the rooms; `if:` kept.
        let s = specs(json!({"email": false, "slack": {"if": "branch = master", "secure": "abc"}}));
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[1].notification.channel.targets(),
            [Text::Secure("abc".into())]
        );
        assert_eq!(s[1].condition.as_deref(), Some("branch = master"));
        // huginn: a bare URL; minikube: a list whose item holds a comma.
        let s = specs(json!({"webhooks": "https://a.test/hook"}));
        assert_eq!(
            s[0].notification.channel.targets(),
            [Text::Plain("https://a.test/hook".into())]
        );
        let s = specs(
            json!({"webhooks": {"urls": ["https://t.test?only=failed,errored"], "on_cancel": "always", "on_success": "never"}}),
        );
        assert_eq!(s[0].notification.channel.targets().len(), 1);
        assert_eq!(s[0].notification.on.success, Frequency::Never);
        assert_eq!(s[0].notification.on.cancel, Frequency::Always);
        // gin: `on_start: false`.
        let s = specs(json!({"webhooks": {"urls": ["https://x.test"], "on_start": false}}));
        assert_eq!(s[0].notification.on.start, Frequency::Never);
        // OpenRA: IRC with notices, no join, a template.
        let s = specs(
            json!({"irc": {"channels": ["irc.example.test#chan"], "use_notice": true, "skip_join": true, "template": ["%{repository} %{result}"]}}),
        );
        let Channel::Irc {
            use_notice,
            skip_join,
            ..
        } = s[0].notification.channel
        else {
            panic!()
        };
        assert!(use_notice && skip_join);
        assert_eq!(s[0].notification.template, ["%{repository} %{result}"]);
    }

    #[test]
    fn top_level_frequencies_are_inherited_unless_the_entry_sets_its_own() {
        // node-gyp puts them at the top.
        let s = specs(
            json!({"on_success": "change", "on_failure": "change", "email": true,
                              "slack": {"rooms": ["a:b"], "on_failure": "never"}}),
        );
        assert_eq!(s[0].notification.on.success, Frequency::Change);
        assert_eq!(s[0].notification.on.failure, Frequency::Change);
        assert_eq!(s[1].notification.on.success, Frequency::Change);
        assert_eq!(s[1].notification.on.failure, Frequency::Never);
        // With no channel, nothing is sent (Travis drops the key).
        assert!(specs(json!({"on_success": "change"})).is_empty());
    }

    #[test]
    fn several_entries_of_one_channel_and_aliases() {
        let s = specs(json!({"emails": {"recipients": "a@x.org"},
                              "webhook": [{"urls": "https://a.test"}, {"urls": "https://b.test", "on_success": "never"}]}));
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].notification.on.success, Frequency::Never);
        let s = specs(json!({"irc": {"channel": "irc.test#x", "disabled": true}}));
        assert!(!s[0].enabled);
        assert_eq!(s[0].notification.channel.targets().len(), 1);
    }

    #[test]
    fn unsupported_channels_are_not_read() {
        assert!(specs(json!({"campfire": {"rooms": ["x"]}})).is_empty());
    }
}
