//! What a notification says about a build: the facts both `slipway run` and `slipway serve`
//! collect (from the local run, or from the store), in one shape every channel renders from.

use serde::{Deserialize, Serialize};
use slipway_pipelines::plan::{EventType, Outcome};

/// A build as notifications describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BuildFacts {
    /// The build's id (the server's build number; a local run's id).
    pub id: String,
    /// The build's number as shown to users.
    pub number: String,
    /// The build's page, when there is one (`slipway serve`'s public URL).
    pub url: Option<String>,
    /// `owner/name`.
    pub repo: String,
    /// The repository's web address (`https://github.com/owner/name`), when known.
    pub repo_url: Option<String>,
    /// Push, pull request, API or cron.
    pub event: EventType,
    /// The branch built (a pull request's base branch).
    pub branch: String,
    /// The tag, for tag pushes.
    pub tag: Option<String>,
    /// The commit built (full SHA).
    pub commit: String,
    /// The commit's message.
    pub message: String,
    /// The commit's author.
    pub author_name: String,
    /// The author's address.
    pub author_email: String,
    /// The commit's committer.
    pub committer_name: String,
    /// The committer's address.
    pub committer_email: String,
    /// When the commit was made (`2011-11-11T11:11:11Z`).
    pub committed_at: Option<String>,
    /// A link comparing the commit with what came before, when known.
    pub compare_url: Option<String>,
    /// The pull request number.
    pub pull_request: Option<u64>,
    /// The pull request's title, when known.
    pub pull_request_title: Option<String>,
    /// The outcome being reported (`Started` at start).
    pub state: Option<Outcome>,
    /// The previous finished build's outcome on the same branch (`None` for the first).
    pub previous: Option<Outcome>,
    /// When the build started (`2011-11-11T11:11:11Z`).
    pub started_at: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
    /// Seconds it ran.
    pub duration: Option<u64>,
    pub jobs: Vec<JobFacts>,
}

/// One job of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JobFacts {
    pub id: String,
    /// `BUILD.JOB`.
    pub number: String,
    /// `passed`, `failed`, `errored`, `canceled`, …
    pub state: String,
    /// A failure does not fail the build.
    pub allow_failure: bool,
    /// The job's matrix keys (`language`, `os`, `env`, …).
    pub config: serde_json::Value,
    /// When it started.
    pub started_at: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
}

impl BuildFacts {
    /// The commit's first seven characters, as Travis shows it.
    pub fn short_commit(&self) -> &str {
        self.commit.get(..7).unwrap_or(&self.commit)
    }

    /// The state's name; `started` at start.
    pub fn state_name(&self) -> &'static str {
        self.state.map_or("started", Outcome::as_str)
    }

    /// Travis's result word, which tells a change from the previous build apart: `Fixed`,
    /// `Broken`, `Still Failing`, else the state's own.
    pub fn result_word(&self) -> &'static str {
        match (self.previous, self.state) {
            (_, None | Some(Outcome::Started)) => "Pending",
            (Some(Outcome::Passed), Some(Outcome::Failed)) => "Broken",
            (Some(Outcome::Failed), Some(Outcome::Passed)) => "Fixed",
            (Some(Outcome::Failed), Some(Outcome::Failed)) => "Still Failing",
            (_, Some(Outcome::Passed)) => "Passed",
            (_, Some(Outcome::Failed)) => "Failed",
            (_, Some(Outcome::Errored)) => "Errored",
            (_, Some(Outcome::Canceled | Outcome::Superseded)) => "Canceled",
        }
    }

    /// Travis's one-sentence result (`The build was fixed.`).
    pub fn result_sentence(&self) -> &'static str {
        match self.result_word() {
            "Pending" => "The build is pending.",
            "Broken" => "The build was broken.",
            "Fixed" => "The build was fixed.",
            "Still Failing" => "The build is still failing.",
            "Passed" => "The build passed.",
            "Failed" => "The build failed.",
            "Errored" => "The build has errored.",
            _ => "The build was canceled.",
        }
    }

    /// Travis's numeric result: 0 passed, 1 failed or errored, none otherwise.
    pub fn result_code(&self) -> Option<u8> {
        match self.state {
            Some(Outcome::Passed) => Some(0),
            Some(Outcome::Failed | Outcome::Errored) => Some(1),
            _ => None,
        }
    }

    /// The pull request's page on the repository's host, when both are known.
    pub fn pull_request_url(&self) -> Option<String> {
        let base = self.repo_url.as_deref()?;
        Some(format!(
            "{}/pull/{}",
            base.trim_end_matches('/'),
            self.pull_request?
        ))
    }

    /// Travis's `%{duration}`: `1 min 5 sec`.
    pub fn duration_text(&self) -> String {
        let s = self.duration.unwrap_or(0);
        format!("{} min {} sec", s / 60, s % 60)
    }

    /// The default recipients of email: the commit's author and committer (Travis's default),
    /// lower-cased, de-duplicated, without GitHub's no-reply addresses that reach nobody.
    pub fn default_recipients(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for email in [&self.author_email, &self.committer_email] {
            let email = email.trim().to_ascii_lowercase();
            if email.is_empty() || email.ends_with("noreply.github.com") || out.contains(&email) {
                continue;
            }
            out.push(email);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_words_follow_travis() {
        let f = |previous, state| BuildFacts {
            previous,
            state: Some(state),
            ..BuildFacts::default()
        };
        assert_eq!(f(None, Outcome::Failed).result_word(), "Failed");
        assert_eq!(
            f(Some(Outcome::Failed), Outcome::Passed).result_word(),
            "Fixed"
        );
        assert_eq!(
            f(Some(Outcome::Passed), Outcome::Failed).result_word(),
            "Broken"
        );
        assert_eq!(
            f(Some(Outcome::Failed), Outcome::Failed).result_sentence(),
            "The build is still failing."
        );
    }

    #[test]
    fn default_recipients_are_author_and_committer_once() {
        let f = BuildFacts {
            author_email: "Dev@Example.org".into(),
            committer_email: "dev@example.org".into(),
            ..BuildFacts::default()
        };
        assert_eq!(f.default_recipients(), ["dev@example.org"]);
        let f = BuildFacts {
            author_email: "1+dev@users.noreply.github.com".into(),
            committer_email: "ops@example.org".into(),
            ..BuildFacts::default()
        };
        assert_eq!(f.default_recipients(), ["ops@example.org"]);
    }
}
