//! What a build is about, as its pages show it: the commit's first line, its author, the short SHA
//! linked to the commit on GitHub, the branch (or pull request, or tag) and when it ran.
//!
//! Commit messages, branch and tag names and author names come from whoever pushed: every one is
//! escaped for HTML, and those that go into a URL are percent-encoded first.

use super::super::ansi::escape;
use crate::store::{Build, Millis};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::fmt::Write as _;

/// A string percent-encoded for one URL path segment or query value.
pub(super) fn url_part(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// `web_url/owner/name/rest`, escaped for an attribute; the repository's name keeps its `/`.
fn github_url(web_url: &str, repo: &str, rest: &str) -> String {
    let repo = repo.split('/').map(url_part).collect::<Vec<_>>().join("/");
    escape(&format!("{}/{repo}/{rest}", web_url.trim_end_matches('/')))
}

/// The repository page listing only `branch`'s builds.
pub(super) fn branch_href(repo: &str, branch: &str) -> String {
    escape(&format!("/repos/{repo}?branch={}", url_part(branch)))
}

/// The first line of a commit message (a pull request's title).
pub(super) fn first_line(message: &str) -> &str {
    message.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// The commit's seven-character SHA, linked to the commit on GitHub.
pub(super) fn sha_link(web_url: &str, repo: &str, sha: &str) -> String {
    let short: String = sha.chars().take(7).collect();
    format!(
        "<a class=\"sha\" href=\"{}\" title=\"{}\"><code>{}</code></a>",
        github_url(web_url, repo, &format!("commit/{}", url_part(sha))),
        escape(sha),
        escape(&short)
    )
}

/// What was built: a branch (linked to its builds here), a pull request (linked to GitHub, with
/// the branch it goes into) or a tag.
pub(super) fn what(web_url: &str, b: &Build) -> String {
    let ctx = &b.spec.context;
    let branch = format!(
        "<a class=\"branch\" href=\"{}\">{}</a>",
        branch_href(&b.repo, &ctx.branch),
        escape(&ctx.branch)
    );
    match (ctx.pull_request, &ctx.tag) {
        (Some(n), _) => format!(
            "<a class=\"pr\" href=\"{}\">PR #{n}</a> into {branch}",
            github_url(web_url, &b.repo, &format!("pull/{n}"))
        ),
        (None, Some(t)) => format!("tag <span class=\"tag\">{}</span>", escape(t)),
        _ => branch,
    }
}

/// A span of milliseconds the way people say it: `42 s`, `3 min 5 s`, `2 h 10 min`.
pub(super) fn span(ms: Millis) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// How long ago `at` was, relative to `now`: `just now`, `5 s ago`, `3 min ago`, `2 h ago`,
/// `4 days ago`.
pub(super) fn ago(at: Millis, now: Millis) -> String {
    let s = (now - at).max(0) / 1000;
    match s {
        0..5 => "just now".into(),
        5..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        86_400..172_800 => "1 day ago".into(),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A moment as a `<time>`: relative for reading, the UTC timestamp on hover and in `datetime`.
pub(super) fn time(class: &str, label: &str, at: Millis, now: Millis) -> String {
    let stamp = crate::auth::format_timestamp((at.max(0) / 1000) as u64);
    format!(
        "<time class=\"{class}\" datetime=\"{stamp}\" title=\"{stamp}\">{label} {}</time>",
        ago(at, now)
    )
}

/// How long something ran: `ran 1 min 5 s`, or `running for 12 s` while it runs.
pub(super) fn ran(start: Option<Millis>, end: Option<Millis>, now: Millis) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("<span class=\"duration\">ran {}</span>", span(e - s)),
        (Some(s), None) => format!(
            "<span class=\"duration\">running for {}</span>",
            span(now - s)
        ),
        _ => String::new(),
    }
}

/// When something started (or was queued) and how long it ran.
pub(super) fn when(
    created: Millis,
    start: Option<Millis>,
    end: Option<Millis>,
    now: Millis,
) -> String {
    let mut out = match start {
        Some(s) => time("started", "started", s, now),
        None => time("started", "queued", created, now),
    };
    let ran = ran(start, end, now);
    if !ran.is_empty() {
        let _ = write!(out, " · {ran}");
    }
    out
}

/// The block at the top of a build's and a job's page: the commit and what was built, then
/// `when` (the build's times, or the job's).
pub(super) fn header(web_url: &str, b: &Build, when: &str) -> String {
    let ctx = &b.spec.context;
    let mut out = format!(
        "<section class=\"commit\"><p class=\"message\">{}</p><p class=\"meta\">",
        escape(first_line(&ctx.commit_message))
    );
    if let Some(a) = &b.spec.author {
        let title = a
            .login
            .as_deref()
            .map(|l| format!(" title=\"@{}\"", escape(l)))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<span class=\"author\"{title}>{}</span> · ",
            escape(&a.name)
        );
    }
    let _ = write!(
        out,
        "{} · {} · {when}</p></section>",
        sha_link(web_url, &b.repo, &b.spec.head_sha),
        what(web_url, b)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_ages_read_as_people_say_them() {
        assert_eq!(span(42_300), "42 s");
        assert_eq!(span(185_000), "3 min 5 s");
        assert_eq!(span(7_800_000), "2 h 10 min");
        assert_eq!(span(-5), "0 s");
        let now = 1_000_000_000;
        assert_eq!(ago(now - 1_000, now), "just now");
        assert_eq!(ago(now - 30_000, now), "30 s ago");
        assert_eq!(ago(now - 200_000, now), "3 min ago");
        assert_eq!(ago(now - 7_300_000, now), "2 h ago");
        assert_eq!(ago(now - 90_000_000, now), "1 day ago");
        assert_eq!(ago(now - 400_000_000, now), "4 days ago");
    }

    #[test]
    fn the_first_line_skips_leading_blank_lines() {
        assert_eq!(first_line("\n  \nFix it\n\nbecause"), "Fix it");
        assert_eq!(first_line(""), "");
    }

    #[test]
    fn links_to_github_are_encoded_then_escaped() {
        assert_eq!(
            sha_link("https://github.com/", "acme/app", "0123456789abcdef"),
            "<a class=\"sha\" href=\"https://github.com/acme/app/commit/0123456789abcdef\" \
             title=\"0123456789abcdef\"><code>0123456\
             </code></a>"
        );
        let hostile = sha_link("https://github.com", "acme/app", "\"><script>x</script>");
        assert!(!hostile.contains("<script>"), "{hostile}");
        // Only the three attributes' own quotes: the value opened none.
        assert_eq!(hostile.matches('"').count(), 6, "{hostile}");
        assert_eq!(
            branch_href("acme/app", "a&b\"<c>/d"),
            "/repos/acme/app?branch=a%26b%22%3Cc%3E%2Fd"
        );
    }
}
