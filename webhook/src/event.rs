//! GitHub events: a verified delivery's header and body turned into what Slipway does with it.
//!
//! Only the fields a build needs are read, so unknown or extra fields in GitHub's payloads never
//! break parsing; a payload that lacks a needed field is an error (400), not a guess.

use serde::Deserialize;
use slipway_pipelines::plan::{Context, EventType};

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// GitHub checking the hook after it was set up.
    Ping,
    /// Build this commit.
    Build(Box<NewBuild>),
    /// A pull request was closed: cancel its queued and running builds.
    ClosePullRequest {
        /// `owner/name`.
        repo: String,
        /// The pull request number.
        number: u64,
    },
    /// A check run or check suite Slipway reported was re-requested on GitHub: run it again.
    Rerun {
        /// `owner/name`.
        repo: String,
        /// The job's check run, or the commit's builds.
        rerun: crate::store::Rerun,
    },
    /// Acknowledged and ignored (other events and actions, deleted branches).
    Ignored {
        /// The repository, when the payload names one (for the allow-list check).
        repo: Option<String>,
        /// Why nothing happens, for the response body and the logs.
        why: String,
    },
}

impl Event {
    /// The repository the event is about, if any; the allow-list is checked against it.
    pub fn repo(&self) -> Option<&str> {
        match self {
            Event::Ping => None,
            Event::Build(b) => Some(&b.repo),
            Event::ClosePullRequest { repo, .. } | Event::Rerun { repo, .. } => Some(repo),
            Event::Ignored { repo, .. } => repo.as_deref(),
        }
    }
}

/// A build to create: everything needed later to fetch, merge, plan and report, without the payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewBuild {
    /// `owner/name`.
    pub repo: String,
    /// Where to fetch from (the payload's `clone_url`; the config can override it).
    pub clone_url: String,
    /// The commit the status is reported on: the pushed commit or the PR's head.
    pub head_sha: String,
    /// The ref fetched for the head: `refs/heads/x`, `refs/tags/x` or `refs/pull/N/head`.
    pub head_ref: String,
    /// For a pull request, the base branch's ref, into which the head is merged.
    pub base_ref: Option<String>,
    /// Builds with the same key supersede each other (`pr:N` or `branch:NAME`); tags never do.
    pub supersede_key: Option<String>,
    /// The event as the pipeline planner sees it.
    pub context: Context,
    /// Who wrote the change, as the delivery names them, for the build pages; builds stored
    /// before it was recorded have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
}

/// The author a build page shows: a push's head commit author, or a pull request's opener.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Author {
    /// The name as written in the commit (a pull request's opener: their login).
    pub name: String,
    /// The GitHub login, when GitHub matched the commit to an account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{event} payload: {source}")]
pub struct ParseError {
    event: String,
    #[source]
    source: serde_json::Error,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
    clone_url: String,
    /// GitHub always sends it; a payload without it is taken as private.
    private: Option<bool>,
    /// Where caches fall back to (`main`, `master`, …).
    default_branch: Option<String>,
}

impl Repository {
    fn visibility(&self) -> Visibility {
        Visibility {
            repo: self.full_name.clone(),
            private: self.private.unwrap_or(true),
        }
    }
}

/// Whether a repository is private, as its latest delivery says (`repository.private`): a
/// private repository's builds are shown only to those GitHub lets read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    /// `owner/name`.
    pub repo: String,
    /// True unless the payload says `"private": false`.
    pub private: bool,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct Commit {
    message: String,
    author: Option<CommitAuthor>,
}

#[derive(Deserialize)]
struct CommitAuthor {
    name: Option<String>,
    username: Option<String>,
}

impl Commit {
    /// The author, when the payload names one (by name, else by login).
    fn author(&self) -> Option<Author> {
        let a = self.author.as_ref()?;
        let login = a.username.clone().filter(|l| !l.is_empty());
        let name = a.name.clone().filter(|n| !n.is_empty()).or(login.clone())?;
        Some(Author { name, login })
    }
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    head_commit: Option<Commit>,
    /// GitHub's view of the pushed changes (`…/compare/A...B`).
    compare: Option<String>,
    repository: Repository,
    sender: Option<User>,
}

#[derive(Deserialize)]
struct PrPayload {
    action: String,
    number: u64,
    pull_request: PullRequest,
    repository: Repository,
    sender: Option<User>,
}

#[derive(Deserialize)]
struct PullRequest {
    title: String,
    /// The pull request's page, Travis's `compare_url` for a pull request build.
    html_url: Option<String>,
    body: Option<String>,
    user: Option<User>,
    head: PrEnd,
    base: PrEnd,
}

#[derive(Deserialize)]
struct PrEnd {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    repo: Option<Repository>,
}

/// `check_run` and `check_suite` deliveries: only what a re-run needs.
#[derive(Deserialize)]
struct CheckPayload {
    action: String,
    check_run: Option<CheckRunRef>,
    check_suite: Option<CheckSuiteRef>,
    repository: Repository,
}

#[derive(Deserialize)]
struct CheckRunRef {
    id: i64,
}

#[derive(Deserialize)]
struct CheckSuiteRef {
    head_sha: String,
}

#[derive(Deserialize)]
struct AnyRepo {
    repository: Option<Repository>,
}

/// Reads a delivery whose signature has already been checked.
pub fn parse(event: &str, body: &[u8]) -> Result<Event, ParseError> {
    parse_delivery(event, body).map(|(e, _)| e)
}

/// Reads a delivery whose signature has already been checked, with the visibility of the
/// repository it names (kept current from every delivery).
pub fn parse_delivery(event: &str, body: &[u8]) -> Result<(Event, Option<Visibility>), ParseError> {
    let err = |source| ParseError {
        event: event.to_string(),
        source,
    };
    match event {
        "ping" => Ok((Event::Ping, None)),
        "push" => {
            let p: PushPayload = serde_json::from_slice(body).map_err(err)?;
            let vis = p.repository.visibility();
            Ok((parse_push(p)?, Some(vis)))
        }
        "pull_request" => {
            let p: PrPayload = serde_json::from_slice(body).map_err(err)?;
            let vis = p.repository.visibility();
            Ok((parse_pr(p), Some(vis)))
        }
        "check_run" | "check_suite" => {
            let p: CheckPayload = serde_json::from_slice(body).map_err(err)?;
            let vis = p.repository.visibility();
            Ok((parse_check(event, p), Some(vis)))
        }
        other => {
            let repo = serde_json::from_slice::<AnyRepo>(body)
                .ok()
                .and_then(|r| r.repository);
            let vis = repo.as_ref().map(Repository::visibility);
            Ok((
                Event::Ignored {
                    repo: repo.map(|r| r.full_name),
                    why: format!("{other} events are not built"),
                },
                vis,
            ))
        }
    }
}

fn parse_check(event: &str, p: CheckPayload) -> Event {
    let repo = p.repository.full_name;
    let rerun = match (p.action.as_str(), p.check_run, p.check_suite) {
        ("rerequested", Some(run), _) if event == "check_run" => {
            crate::store::Rerun::CheckRun(run.id)
        }
        ("rerequested", _, Some(suite)) if event == "check_suite" => crate::store::Rerun::Suite {
            head_sha: suite.head_sha,
        },
        (action, ..) => {
            return Event::Ignored {
                repo: Some(repo),
                why: format!("{event} {action} starts nothing"),
            };
        }
    };
    Event::Rerun { repo, rerun }
}

fn parse_push(p: PushPayload) -> Result<Event, ParseError> {
    let repo = p.repository.full_name;
    if p.deleted || p.after.bytes().all(|b| b == b'0') {
        return Ok(Event::Ignored {
            repo: Some(repo),
            why: format!("{} was deleted", p.git_ref),
        });
    }
    let (branch, tag, supersede_key) = if let Some(b) = p.git_ref.strip_prefix("refs/heads/") {
        (b.to_string(), None, Some(format!("branch:{b}")))
    } else if let Some(t) = p.git_ref.strip_prefix("refs/tags/") {
        (t.to_string(), Some(t.to_string()), None)
    } else {
        return Ok(Event::Ignored {
            repo: Some(repo),
            why: format!("{} is neither a branch nor a tag", p.git_ref),
        });
    };
    let author = p.head_commit.as_ref().and_then(Commit::author);
    let context = Context {
        event: EventType::Push,
        branch,
        tag,
        repo: repo.clone(),
        commit_message: p.head_commit.map(|c| c.message).unwrap_or_default(),
        commit: Some(p.after.clone()),
        sender: p.sender.map(|s| s.login).unwrap_or_default(),
        default_branch: p.repository.default_branch.clone(),
        compare_url: p.compare.filter(|c| !c.is_empty()),
        ..Context::default()
    };
    Ok(Event::Build(Box::new(NewBuild {
        repo,
        clone_url: p.repository.clone_url,
        head_sha: p.after,
        head_ref: p.git_ref,
        base_ref: None,
        supersede_key,
        context,
        author,
    })))
}

/// Whether a pull request's head lives outside the repository built: its jobs are then not
/// trusted with secrets. GitHub sends `head.repo: null` when the fork was deleted; nothing says
/// whose it was, so it counts as a fork. Names compare as GitHub does, ignoring ASCII case.
fn is_fork(repo: &str, head_repo: Option<&str>) -> bool {
    head_repo.is_none_or(|h| !h.eq_ignore_ascii_case(repo))
}

fn parse_pr(p: PrPayload) -> Event {
    let repo = p.repository.full_name;
    match p.action.as_str() {
        "opened" | "synchronize" | "reopened" => {}
        "closed" => {
            return Event::ClosePullRequest {
                repo,
                number: p.number,
            };
        }
        other => {
            return Event::Ignored {
                repo: Some(repo),
                why: format!("pull_request action {other} is not built"),
            };
        }
    }
    let pr = p.pull_request;
    let author = pr.user.map(|u| Author {
        name: u.login.clone(),
        login: Some(u.login),
    });
    let head_repo = pr.head.repo.map(|r| r.full_name);
    let fork = is_fork(&repo, head_repo.as_deref());
    let message = match pr.body.as_deref() {
        Some(body) if !body.is_empty() => format!("{}\n\n{}", pr.title, body),
        _ => pr.title,
    };
    let context = Context {
        event: EventType::PullRequest,
        branch: pr.base.git_ref.clone(),
        pull_request: Some(p.number),
        fork,
        repo: repo.clone(),
        head_repo,
        head_branch: Some(pr.head.git_ref),
        commit_message: message,
        commit: Some(pr.head.sha.clone()),
        sender: p.sender.map(|s| s.login).unwrap_or_default(),
        default_branch: p.repository.default_branch.clone(),
        compare_url: pr.html_url.filter(|u| !u.is_empty()),
        ..Context::default()
    };
    Event::Build(Box::new(NewBuild {
        repo,
        clone_url: p.repository.clone_url,
        head_sha: pr.head.sha,
        head_ref: format!("refs/pull/{}/head", p.number),
        base_ref: Some(format!("refs/heads/{}", pr.base.git_ref)),
        supersede_key: Some(format!("pr:{}", p.number)),
        context,
        author,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr_body(action: &str, head_repo: &str) -> String {
        format!(
            r#"{{"action":"{action}","number":7,"sender":{{"login":"ann"}},
            "repository":{{"full_name":"acme/app","clone_url":"https://example.invalid/acme/app.git"}},
            "pull_request":{{"title":"Fix","body":null,
              "head":{{"ref":"fix","sha":"{h}","repo":{{"full_name":"{head_repo}","clone_url":"x"}}}},
              "base":{{"ref":"main","sha":"{b}","repo":{{"full_name":"acme/app","clone_url":"x"}}}}}}}}"#,
            h = "a".repeat(40),
            b = "b".repeat(40)
        )
    }

    #[test]
    fn an_opened_pull_request_builds_the_merge_of_its_head_into_its_base() {
        let Event::Build(b) =
            parse("pull_request", pr_body("opened", "acme/app").as_bytes()).unwrap()
        else {
            panic!("expected a build")
        };
        assert_eq!(b.head_ref, "refs/pull/7/head");
        assert_eq!(b.base_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!(b.supersede_key.as_deref(), Some("pr:7"));
        assert_eq!(b.context.event, EventType::PullRequest);
        assert_eq!(b.context.branch, "main");
        assert_eq!(b.context.pull_request, Some(7));
        assert!(!b.context.fork);
    }

    #[test]
    fn the_repositorys_default_branch_rides_with_the_build_when_the_payload_names_it() {
        let named = pr_body("opened", "eve/app").replace(
            r#""clone_url":"https://example.invalid/acme/app.git""#,
            r#""clone_url":"https://example.invalid/acme/app.git","default_branch":"trunk""#,
        );
        let Event::Build(b) = parse("pull_request", named.as_bytes()).unwrap() else {
            panic!("expected a build")
        };
        assert_eq!(b.context.default_branch.as_deref(), Some("trunk"));
        let Event::Build(b) =
            parse("pull_request", pr_body("opened", "eve/app").as_bytes()).unwrap()
        else {
            panic!("expected a build")
        };
        assert_eq!(b.context.default_branch, None);
    }

    #[test]
    fn a_pull_request_from_another_repository_is_a_fork() {
        let Event::Build(b) =
            parse("pull_request", pr_body("synchronize", "eve/app").as_bytes()).unwrap()
        else {
            panic!("expected a build")
        };
        assert!(b.context.fork);
    }

    #[test]
    fn a_pull_request_whose_fork_was_deleted_is_a_fork() {
        let body = pr_body("synchronize", "eve/app")
            .replace(r#"{"full_name":"eve/app","clone_url":"x"}"#, "null");
        assert!(body.contains(r#""repo":null"#), "{body}");
        let Event::Build(b) = parse("pull_request", body.as_bytes()).unwrap() else {
            panic!("expected a build")
        };
        assert!(b.context.fork);
        assert_eq!(b.context.head_repo, None);
    }

    #[test]
    fn the_same_repository_in_another_case_is_not_a_fork() {
        let Event::Build(b) =
            parse("pull_request", pr_body("opened", "Acme/App").as_bytes()).unwrap()
        else {
            panic!("expected a build")
        };
        assert!(!b.context.fork);
    }

    #[test]
    fn closed_cancels_and_labeled_is_ignored() {
        assert_eq!(
            parse("pull_request", pr_body("closed", "acme/app").as_bytes()).unwrap(),
            Event::ClosePullRequest {
                repo: "acme/app".into(),
                number: 7
            }
        );
        assert!(matches!(
            parse("pull_request", pr_body("labeled", "acme/app").as_bytes()).unwrap(),
            Event::Ignored { .. }
        ));
    }

    #[test]
    fn a_tag_push_builds_the_tag_and_a_deleted_branch_is_ignored() {
        let tag = format!(
            r#"{{"ref":"refs/tags/v1","after":"{}","deleted":false,"head_commit":{{"message":"m"}},
            "repository":{{"full_name":"acme/app","clone_url":"u"}}}}"#,
            "c".repeat(40)
        );
        let Event::Build(b) = parse("push", tag.as_bytes()).unwrap() else {
            panic!("expected a build")
        };
        assert_eq!(b.context.tag.as_deref(), Some("v1"));
        assert_eq!(b.supersede_key, None);
        let deleted = format!(
            r#"{{"ref":"refs/heads/x","after":"{}","deleted":true,"head_commit":null,
            "repository":{{"full_name":"acme/app","clone_url":"u"}}}}"#,
            "0".repeat(40)
        );
        assert!(matches!(
            parse("push", deleted.as_bytes()).unwrap(),
            Event::Ignored { .. }
        ));
    }

    #[test]
    fn the_author_is_the_head_commits_or_the_pull_requests_opener() {
        let push = |author: &str| {
            format!(
                r#"{{"ref":"refs/heads/main","after":"{}","head_commit":{{"message":"m"{author}}},
                "repository":{{"full_name":"acme/app","clone_url":"u"}}}}"#,
                "c".repeat(40)
            )
        };
        let author = |body: String| match parse("push", body.as_bytes()).unwrap() {
            Event::Build(b) => b.author,
            other => panic!("expected a build, got {other:?}"),
        };
        assert_eq!(
            author(push(
                r#","author":{"name":"Ann Lee","email":"a@x","username":"ann"}"#
            )),
            Some(Author {
                name: "Ann Lee".into(),
                login: Some("ann".into())
            })
        );
        assert_eq!(
            author(push(r#","author":{"name":"Ann Lee","email":"a@x"}"#)),
            Some(Author {
                name: "Ann Lee".into(),
                login: None
            })
        );
        assert_eq!(author(push("")), None);
        let pr = pr_body("opened", "acme/app").replace(
            r#""title":"Fix","#,
            r#""title":"Fix","user":{"login":"octo"},"#,
        );
        let Event::Build(b) = parse("pull_request", pr.as_bytes()).unwrap() else {
            panic!("expected a build")
        };
        assert_eq!(
            b.author,
            Some(Author {
                name: "octo".into(),
                login: Some("octo".into())
            })
        );
    }

    #[test]
    fn other_events_are_ignored_but_keep_their_repository() {
        let e = parse(
            "issues",
            br#"{"repository":{"full_name":"acme/app","clone_url":"u"}}"#,
        )
        .unwrap();
        assert_eq!(e.repo(), Some("acme/app"));
    }

    #[test]
    fn a_repository_is_private_unless_the_payload_says_it_is_not() {
        let body = |private: &str| {
            format!(r#"{{"repository":{{"full_name":"acme/app","clone_url":"u"{private}}}}}"#)
        };
        let vis = |b: String| parse_delivery("issues", b.as_bytes()).unwrap().1.unwrap();
        assert!(!vis(body(r#","private":false"#)).private);
        assert!(vis(body(r#","private":true"#)).private);
        assert!(vis(body("")).private);
    }
}
