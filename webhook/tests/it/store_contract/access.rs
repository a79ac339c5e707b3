//! Repositories' visibility and badge tokens, sessions and the permission cache.

use super::*;
use slipway_secrets::Secret;
use slipway_webhook::event::Visibility;

pub async fn repositories_keep_their_visibility_and_badge_token(store: Arc<dyn Store>) {
    let seen = |id: &str, body: u8, private: bool| Delivery {
        id: id.into(),
        event: "push".into(),
        body_sha256: [body; 32],
        visibility: Some(Visibility {
            repo: "Octo/App".into(),
            private,
        }),
        action: DeliveryAction::Nothing,
    };
    store.record_delivery(seen("d-1", 1, true)).await.unwrap();
    let first = store.repo_access("octo/app").await.unwrap().unwrap();
    assert!(first.private);
    assert_eq!(first.badge_token.len(), 64);
    store.record_delivery(seen("d-2", 2, false)).await.unwrap();
    let now = store.repo_access("OCTO/APP").await.unwrap().unwrap();
    assert!(!now.private, "the latest delivery says it is public");
    assert_eq!(now.badge_token, first.badge_token, "the badge token stays");
    assert_eq!(store.repos_access().await.unwrap().len(), 1);
    assert!(store.repo_access("octo/other").await.unwrap().is_none());
}

pub async fn sessions_and_permissions_round_trip(store: Arc<dyn Store>) {
    let now = slipway_webhook::store::now_ms();
    let session = |expires_at| Session {
        login: "alice".into(),
        github_token: Some(Secret::new("gho_token".to_string())),
        admin: false,
        csrf: Secret::new("csrf".to_string()),
        expires_at,
    };
    store
        .create_session([1; 32], session(now + 60_000))
        .await
        .unwrap();
    store
        .create_session([2; 32], session(now - 1))
        .await
        .unwrap();
    let back = store.session([1; 32]).await.unwrap().unwrap();
    assert_eq!(back.login, "alice");
    assert_eq!(back.github_token.unwrap().expose(), "gho_token");
    assert!(store.session([2; 32]).await.unwrap().is_none(), "expired");
    store.delete_session([1; 32]).await.unwrap();
    assert!(store.session([1; 32]).await.unwrap().is_none());

    store
        .cache_permission("alice", "Octo/App", Permission::Push)
        .await
        .unwrap();
    let cached = store
        .cached_permission("alice", "octo/app", now - 1000)
        .await;
    assert_eq!(cached.unwrap(), Some(Permission::Push));
    let stale = store
        .cached_permission("alice", "octo/app", now + 60_000)
        .await;
    assert_eq!(stale.unwrap(), None);
    store
        .cache_permission("alice", "octo/app", Permission::Pull)
        .await
        .unwrap();
    let replaced = store
        .cached_permission("alice", "OCTO/APP", now - 1000)
        .await;
    assert_eq!(replaced.unwrap(), Some(Permission::Pull));

    deliver(&store, "d-1", push("master", "a1")).await;
    let listed = store
        .builds_of(vec!["OCTO/APP".into()], BuildFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        store
            .builds_of(vec!["octo/other".into()], BuildFilter::default(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}
