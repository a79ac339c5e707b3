//! Travis's notification templates: `%{name}` placeholders filled from a build's facts, and the
//! default lines Slack and IRC send when the file gives no `template:`.

use slipway_pipelines::plan::EventType;

use crate::facts::BuildFacts;

/// Slack's default line for a branch build (Travis's, with the same placeholders).
pub const SLACK_BRANCH: &str = "Build <%{build_url}|#%{build_number}> (<%{compare_url}|%{commit}>) of %{repository}@%{branch} by %{author} %{result} in %{duration}";
/// Slack's default line for a pull request build.
pub const SLACK_PULL_REQUEST: &str = "Build <%{build_url}|#%{build_number}> (<%{compare_url}|%{commit}>) of %{repository}@%{branch} in PR <%{pull_request_url}|#%{pull_request_number}> by %{author} %{result} in %{duration}";
/// IRC's default lines.
pub const IRC: &[&str] = &[
    "%{repository}#%{build_number} (%{branch} - %{commit} : %{author}): %{message}",
    "Change view : %{compare_url}",
    "Build details : %{build_url}",
];

/// The value of one placeholder; unknown names are empty, as Travis leaves them.
fn value(name: &str, f: &BuildFacts) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    match name {
        "repository" | "repository_slug" => f.repo.clone(),
        "repository_name" => f.repo.rsplit('/').next().unwrap_or_default().to_owned(),
        "build_number" => f.number.clone(),
        "build_id" => f.id.clone(),
        "build_url" => opt(&f.url),
        "branch" => f.branch.clone(),
        "commit" => f.short_commit().to_owned(),
        "commit_subject" => f.message.lines().next().unwrap_or_default().to_owned(),
        "commit_message" => f.message.clone(),
        "author" => f.author_name.clone(),
        "pull_request" => (f.event == EventType::PullRequest).to_string(),
        "pull_request_number" => f.pull_request.map(|n| n.to_string()).unwrap_or_default(),
        "pull_request_url" => f.pull_request_url().unwrap_or_default(),
        "compare_url" => opt(&f.compare_url),
        "result" => f.state_name().to_owned(),
        "duration" | "elapsed_time" => f.duration_text(),
        "message" => f.result_sentence().to_owned(),
        _ => String::new(),
    }
}

/// Fills every `%{name}` of `template` from `facts`.
pub fn interpolate(template: &str, facts: &BuildFacts) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("%{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&value(&after[..end], facts));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_unknown_ones_emptied() {
        let f = BuildFacts {
            id: "42".into(),
            number: "7".into(),
            repo: "acme/app".into(),
            branch: "main".into(),
            commit: "0123456789abcdef".into(),
            author_name: "Dev".into(),
            state: Some(slipway_pipelines::plan::Outcome::Passed),
            duration: Some(65),
            ..BuildFacts::default()
        };
        assert_eq!(
            interpolate(
                "%{repository}#%{build_number} %{commit} %{author}: %{result} in %{duration}%{nope}",
                &f
            ),
            "acme/app#7 0123456 Dev: passed in 1 min 5 sec"
        );
        assert_eq!(interpolate("50%{ done", &f), "50%{ done");
    }
}
