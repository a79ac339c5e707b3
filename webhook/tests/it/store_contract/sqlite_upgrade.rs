//! A SQLite database made before the store's migrations were versioned is brought up to date in
//! place: its rows stay, the columns and tables it lacks are added, and its repositories and
//! permissions keep comparing names without case.

use super::*;
use slipway_webhook::event::Visibility;

/// The tables of an older database that differ from what the migrations create: repository
/// names keyed without case, no delivery body hash.
const OLDER: &str = "
CREATE TABLE deliveries (id TEXT PRIMARY KEY, event TEXT NOT NULL,
    received_at INTEGER NOT NULL, build_id INTEGER);
CREATE TABLE repos (name TEXT PRIMARY KEY COLLATE NOCASE, private INTEGER NOT NULL,
    badge_token TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE permissions (login TEXT NOT NULL, repo TEXT NOT NULL COLLATE NOCASE,
    level TEXT NOT NULL, checked_at INTEGER NOT NULL, PRIMARY KEY (login, repo)) WITHOUT ROWID;
INSERT INTO deliveries VALUES ('d-old', 'push', 1, NULL);
INSERT INTO repos VALUES ('Octo/App', 1, 'token-of-old', 1);
INSERT INTO permissions VALUES ('alice', 'Octo/App', 'pull', 9999999999999);
";

#[test]
fn an_older_sqlite_database_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slipway.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(OLDER)
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    runtime().block_on(async {
        let repo = store.repo_access("octo/app").await.unwrap().unwrap();
        assert_eq!(repo.badge_token, "token-of-old");
        let public = Delivery {
            id: "d-new".into(),
            event: "push".into(),
            body_sha256: [7; 32],
            visibility: Some(Visibility {
                repo: "OCTO/app".into(),
                private: false,
            }),
            action: DeliveryAction::Build {
                build: Box::new(push("main", "a1")),
                auto_cancel: true,
            },
        };
        let replay = Delivery {
            id: "d-replay".into(),
            ..public.clone()
        };
        assert!(matches!(
            store.record_delivery(public).await.unwrap(),
            Recorded::Accepted { build: Some(_), .. }
        ));
        assert_eq!(
            store.record_delivery(replay).await.unwrap(),
            Recorded::Duplicate,
            "the body hash added to the old table makes a replay a duplicate"
        );
        let repos = store.repos_access().await.unwrap();
        assert_eq!(repos.len(), 1, "{repos:?}");
        assert!(!repos[0].private);
        assert_eq!(repos[0].badge_token, "token-of-old");

        store
            .cache_permission("alice", "octo/APP", Permission::Push)
            .await
            .unwrap();
        let level = store.cached_permission("alice", "Octo/App", 0).await;
        assert_eq!(level.unwrap(), Some(Permission::Push));
        assert_eq!(store.counts().await.unwrap().deliveries, 2);
    });
    drop(store);
    let again = SqliteStore::open(&path).unwrap();
    runtime().block_on(async {
        assert_eq!(again.repos_access().await.unwrap().len(), 1);
    });
}
