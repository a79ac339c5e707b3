//! Checks of notification values: each target's plain form (email address, Slack
//! `account:token#channel`, webhook URL, IRC `host#channel`) and template placeholders.
//! A target that does not parse is dropped when notifications are sent, so lint names it first.

use super::text::nearest;
use super::{Linter, join, shown};
use crate::diagnostic::Severity;
use crate::notify::{TEMPLATE_VARS, placeholders};
use crate::spec::Target;
use crate::yaml::{Node, NodeKind, Resolved};

impl Linter<'_> {
    /// One target or a list of them.
    pub(super) fn targets(&mut self, node: &Node, target: Target, path: &str) {
        match &node.kind {
            NodeKind::Seq(items) => {
                for item in items {
                    self.target(item, target, path);
                }
            }
            _ => self.target(node, target, path),
        }
    }

    fn target(&mut self, node: &Node, target: Target, path: &str) {
        if node.is_null() {
            return;
        }
        match &node.kind {
            NodeKind::Map(_) if target == Target::WebhookUrl && node.get("url").is_some() => {
                self.webhook_object(node, path);
            }
            NodeKind::Map(_) => self.secure(node, path, false),
            NodeKind::Seq(_) => self.invalid_type(node, path, "a target or a list of targets"),
            NodeKind::Scalar(s) => {
                if target == Target::SlackRoom {
                    // The token in a room is a secret: Travis alerts on plain rooms too.
                    self.secure(node, path, true);
                }
                if !matches!(node.resolve(), Some(Resolved::Str(_))) {
                    self.invalid_type(node, path, expected(target));
                    return;
                }
                let text = s.text.trim();
                if text.starts_with('$') {
                    return;
                }
                // A plain list in one string is split on commas, except a webhook URL's.
                let parts: Vec<&str> = if target == Target::WebhookUrl {
                    vec![text]
                } else {
                    text.split(',').map(str::trim).collect()
                };
                for part in parts.into_iter().filter(|p| !p.is_empty()) {
                    if let Err(why) = check_target(target, part) {
                        self.at(
                            Severity::Warning,
                            "invalid_target",
                            node,
                            path,
                            format!(
                                "`{part}` in `{}` is not {}: {why}",
                                shown(path),
                                expected(target)
                            ),
                            &format!(
                                "write {}; a target that does not parse is not notified",
                                example(target)
                            ),
                        );
                    }
                }
            }
        }
    }

    /// `{url: …, msteams: …}` under `webhooks.urls`.
    fn webhook_object(&mut self, node: &Node, path: &str) {
        for (k, v) in node.as_map().unwrap_or(&[]) {
            match k.as_str() {
                Some("url") => self.target(v, Target::WebhookUrl, &join(path, "url")),
                Some("msteams") => self.at(
                    Severity::Warning,
                    "unsupported",
                    k,
                    &join(path, "msteams"),
                    "Slipway does not send the Microsoft Teams card format yet; this URL gets Travis's webhook payload".into(),
                    "remove `msteams:` or point the URL at a receiver of Travis's payload",
                ),
                other => self.at(
                    Severity::Warning,
                    "unknown_key",
                    k,
                    &join(path, other.unwrap_or("?")),
                    format!("unknown key `{}` in a webhook URL entry; it is ignored", other.unwrap_or("?")),
                    "a webhook URL entry holds `url:` (and `msteams:`)",
                ),
            }
        }
    }

    /// Template lines: every `%{name}` must be one Travis fills in.
    pub(super) fn template(&mut self, node: &Node, path: &str) {
        let lines: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        for line in lines {
            let Some(text) = line
                .as_str()
                .filter(|_| !matches!(line.kind, NodeKind::Map(_)))
            else {
                self.invalid_type(line, path, "a template string or a list of them");
                continue;
            };
            for name in placeholders(text) {
                if TEMPLATE_VARS.contains(&name) {
                    continue;
                }
                let hint = match nearest(name, TEMPLATE_VARS.iter().copied()) {
                    Some(near) => {
                        format!("did you mean `%{{{near}}}`? It is replaced by nothing as written")
                    }
                    None => format!("known placeholders: {}", TEMPLATE_VARS.join(", ")),
                };
                self.at(
                    Severity::Warning,
                    "unknown_placeholder",
                    line,
                    path,
                    format!(
                        "`%{{{name}}}` in `{}` is not a placeholder Travis fills in",
                        shown(path)
                    ),
                    &hint,
                );
            }
        }
    }
}

fn expected(target: Target) -> &'static str {
    match target {
        Target::Email => "an email address",
        Target::SlackRoom => "a Slack room",
        Target::WebhookUrl => "an http(s) URL",
        Target::IrcChannel => "an IRC channel",
    }
}

fn example(target: Target) -> &'static str {
    match target {
        Target::Email => "an address such as `dev@example.org`",
        Target::SlackRoom => "`account:token#channel` (encrypted: `secure: …`)",
        Target::WebhookUrl => "a URL such as `https://ci.example.org/hook`",
        Target::IrcChannel => {
            "`irc.example.org#channel` (or `ircs://irc.example.org:6697#channel`)"
        }
    }
}

/// Whether a plain target has its channel's form, and if not, why.
pub(crate) fn check_target(target: Target, text: &str) -> Result<(), &'static str> {
    match target {
        Target::Email => {
            let (local, domain) = text.rsplit_once('@').ok_or("it has no `@`")?;
            if local.is_empty() || local.chars().any(char::is_whitespace) {
                return Err("the part before `@` is empty or has spaces");
            }
            if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
                return Err("the domain has no dot");
            }
            if domain.chars().any(|c| c.is_whitespace() || c == '@') {
                return Err("the domain has spaces");
            }
            Ok(())
        }
        Target::SlackRoom => {
            let (account, rest) = text
                .split_once(':')
                .ok_or("it has no `:` between account and token")?;
            let token = rest.split_once('#').map_or(rest, |(t, _)| t);
            let word = |s: &str, extra: char| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == extra)
            };
            if !word(account, '-') {
                return Err("the account holds characters other than letters, digits and `-`");
            }
            if !word(token, '_') {
                return Err("the token holds characters other than letters, digits, `-` and `_`");
            }
            if rest.ends_with('#') {
                return Err("the channel after `#` is empty");
            }
            Ok(())
        }
        Target::WebhookUrl => {
            let rest = text
                .strip_prefix("https://")
                .or_else(|| text.strip_prefix("http://"))
                .ok_or("it does not start with http:// or https://")?;
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            if host.is_empty() || text.chars().any(char::is_whitespace) {
                return Err("it has no host, or spaces");
            }
            Ok(())
        }
        Target::IrcChannel => {
            let rest = text
                .strip_prefix("ircs://")
                .or_else(|| text.strip_prefix("irc://"))
                .unwrap_or(text);
            let (server, channel) = rest.split_once('#').ok_or("it has no `#channel`")?;
            let (host, port) = server
                .rsplit_once(':')
                .map_or((server, None), |(h, p)| (h, Some(p)));
            if host.is_empty() || host.contains('/') {
                return Err("it has no server before `#`");
            }
            if port.is_some_and(|p| p.parse::<u16>().is_err()) {
                return Err("the port is not a number");
            }
            if channel.is_empty() || channel.contains(' ') {
                return Err("the channel after `#` is empty or has spaces");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_forms() {
        use Target::*;
        assert!(check_target(Email, "dev@example.org").is_ok());
        assert!(check_target(Email, "dev@localhost").is_err());
        assert!(check_target(Email, "dev example.org").is_err());
        assert!(check_target(SlackRoom, "slimphp:0RNzx2JuhkAqIf0MXcUZ0asT").is_ok());
        assert!(check_target(SlackRoom, "acme:tok_1#builds").is_ok());
        assert!(check_target(SlackRoom, "acme").is_err());
        assert!(check_target(SlackRoom, "acme:tok#").is_err());
        assert!(check_target(WebhookUrl, "https://hooks.example.com?only=failed,errored").is_ok());
        assert!(check_target(WebhookUrl, "ftp://x").is_err());
        assert!(check_target(WebhookUrl, "https:///path").is_err());
        assert!(check_target(IrcChannel, "irc.example.net#openra").is_ok());
        assert!(check_target(IrcChannel, "ircs://irc.example.org:6697#c").is_ok());
        assert!(check_target(IrcChannel, "irc.example.org:66x#c").is_err());
        assert!(check_target(IrcChannel, "#c").is_err());
        assert!(check_target(IrcChannel, "irc.example.org").is_err());
    }
}
