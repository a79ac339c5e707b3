//! Trust between builds: what a build may read from earlier builds and where it may leave things
//! for later ones.
//!
//! Anyone can open a pull request from a fork, so whatever such a build writes must never reach a
//! trusted build (one that gets the repository's secrets and deploys). The rules are Travis's
//! cache lookup order, and every kind of state kept between builds (caches, and the workspaces a
//! build's jobs hand on, which use only the build's own owner) goes through
//! [`CacheScope`] so the rules live in one place:
//!
//! - a push, API or cron build reads and writes the state of its branch; a branch without any
//!   starts from the default branch's, read-only;
//! - a pull request build reads its own pull request's state (keyed by the pull request's number
//!   and head repository), else its target branch's, else the default branch's — those two
//!   read-only — and writes only into its own.
//!
//! So nothing a pull request wrote is ever read by a branch build, and one pull request never
//! reads another's.

use slipway_pipelines::plan::{Context, EventType};

/// How far a build is trusted, decided from its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The repository's own people: pushes, API and cron builds, pull requests from branches of
    /// the same repository.
    Trusted,
    /// A pull request from another repository (a fork), or whose head repository was deleted:
    /// anyone's code. No secrets, no engine socket, its own network, no deploys.
    Untrusted,
}

impl Trust {
    /// The trust of a build for `ctx`.
    pub fn of(ctx: &Context) -> Trust {
        if ctx.fork {
            Trust::Untrusted
        } else {
            Trust::Trusted
        }
    }
}

/// Whose kept state something is: a branch of the repository, or one pull request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A branch (or, for tag pushes, the tag) of the built repository.
    Branch(String),
    /// A pull request, by number and head repository (`owner/name`; `None` when it was deleted).
    PullRequest {
        number: u64,
        /// Its head repository.
        head_repo: Option<String>,
    },
}

impl Owner {
    /// A stable, unambiguous key: a branch's own name (so caches saved before pull requests had
    /// their own stay valid), or a pull request's number and head repository behind a control
    /// character, which git forbids in branch names, so no branch can be named like one.
    pub fn key(&self) -> String {
        match self {
            Owner::Branch(name) => name.clone(),
            Owner::PullRequest { number, head_repo } => format!(
                "\u{1}pull/{number}/{}",
                head_repo.as_deref().unwrap_or("\u{1}deleted")
            ),
        }
    }

    /// Labels for a volume holding this owner's state (`docker volume ls --filter`).
    pub fn labels(&self) -> Vec<(String, String)> {
        match self {
            Owner::Branch(name) => vec![("dev.slipway.cache.branch".into(), name.clone())],
            Owner::PullRequest { number, head_repo } => vec![
                ("dev.slipway.cache.pull_request".into(), number.to_string()),
                (
                    "dev.slipway.cache.head_repo".into(),
                    head_repo.clone().unwrap_or_default(),
                ),
            ],
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Branch(name) => write!(f, "branch {name}"),
            Owner::PullRequest {
                number,
                head_repo: Some(head),
            } => write!(f, "pull request #{number} from {head}"),
            Owner::PullRequest {
                number,
                head_repo: None,
            } => write!(f, "pull request #{number} (head repository deleted)"),
        }
    }
}

/// Where one build may read kept state from and where it writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheScope {
    /// The repository (`owner/name`).
    pub repo: String,
    /// The build's own state: read first, and the only place it writes.
    pub own: Owner,
    /// Read-only fallbacks, in lookup order, when the build has no state of its own yet.
    pub fallbacks: Vec<Owner>,
    /// The build's trust.
    pub trust: Trust,
}

impl CacheScope {
    /// The scope of a build for `ctx`. The repository's default branch is the one the event
    /// names, else `default_branch` (the runner's setting, for events that do not say).
    pub fn for_build(ctx: &Context, default_branch: &str) -> CacheScope {
        let default_branch = ctx.default_branch.as_deref().unwrap_or(default_branch);
        let default = Owner::Branch(default_branch.to_string());
        let (own, mut fallbacks) = match (ctx.event, ctx.pull_request) {
            (EventType::PullRequest, number) => (
                Owner::PullRequest {
                    number: number.unwrap_or(0),
                    head_repo: ctx.head_repo.clone(),
                },
                vec![Owner::Branch(ctx.branch.clone()), default],
            ),
            _ => (Owner::Branch(ctx.branch.clone()), vec![default]),
        };
        let mut seen = vec![own.clone()];
        fallbacks.retain(|o| {
            let new = !seen.contains(o);
            seen.push(o.clone());
            new
        });
        CacheScope {
            repo: ctx.repo.clone(),
            own,
            fallbacks,
            trust: Trust::of(ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(branch: &str) -> Context {
        Context {
            branch: branch.into(),
            repo: "acme/app".into(),
            ..Default::default()
        }
    }

    fn pull_request(base: &str, number: u64, head: &str) -> Context {
        Context {
            event: EventType::PullRequest,
            pull_request: Some(number),
            head_repo: Some(head.into()),
            fork: head != "acme/app",
            ..push(base)
        }
    }

    fn branch(name: &str) -> Owner {
        Owner::Branch(name.into())
    }

    #[test]
    fn the_default_branch_named_by_the_event_wins_over_the_runners_setting() {
        let ctx = Context {
            default_branch: Some("main".into()),
            ..push("feature")
        };
        assert_eq!(
            CacheScope::for_build(&ctx, "master").fallbacks,
            vec![branch("main")]
        );
        let ctx = Context {
            default_branch: Some("main".into()),
            ..pull_request("release", 42, "eve/app")
        };
        assert_eq!(
            CacheScope::for_build(&ctx, "master").fallbacks,
            vec![branch("release"), branch("main")]
        );
    }

    #[test]
    fn a_push_reads_and_writes_its_branch_and_starts_from_the_default_branch() {
        let s = CacheScope::for_build(&push("feature"), "master");
        assert_eq!(s.own, branch("feature"));
        assert_eq!(s.fallbacks, vec![branch("master")]);
        assert_eq!(s.trust, Trust::Trusted);
        let s = CacheScope::for_build(&push("master"), "master");
        assert_eq!((s.own, s.fallbacks), (branch("master"), vec![]));
    }

    #[test]
    fn a_fork_pull_request_writes_only_its_own_cache_and_reads_its_base_then_the_default() {
        let s = CacheScope::for_build(&pull_request("release", 42, "eve/app"), "master");
        assert_eq!(
            s.own,
            Owner::PullRequest {
                number: 42,
                head_repo: Some("eve/app".into())
            }
        );
        assert_eq!(s.fallbacks, vec![branch("release"), branch("master")]);
        assert_eq!(s.trust, Trust::Untrusted);
        assert_eq!(s.own.to_string(), "pull request #42 from eve/app");
        let s = CacheScope::for_build(&pull_request("master", 42, "eve/app"), "master");
        assert_eq!(s.fallbacks, vec![branch("master")]);
    }

    #[test]
    fn no_branch_name_can_stand_for_a_pull_request_and_head_repositories_are_kept_apart() {
        let pr = CacheScope::for_build(&pull_request("master", 7, "eve/app"), "master").own;
        let other = CacheScope::for_build(&pull_request("master", 7, "mallory/app"), "master").own;
        assert_ne!(pr.key(), other.key());
        for name in ["pull/7/eve/app", "\\x01pull/7/eve/app", "7"] {
            assert_ne!(branch(name).key(), pr.key());
        }
        assert_eq!(
            branch("master").key(),
            "master",
            "existing caches stay valid"
        );
    }
}
