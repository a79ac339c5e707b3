//! What only the PostgreSQL store has: its URL setting (whose password is a secret), migrations
//! shared by processes starting together, and deliveries recorded in batches.

use super::*;

#[test]
fn a_bad_store_url_names_the_setting_and_never_the_password() {
    let err = PgUrl::parse("mysql://slipway:hunter2-secret@db/slipway").unwrap_err();
    let text = err.to_string();
    assert!(text.contains(STORE_SETTING), "{text}");
    assert!(
        text.contains("postgres://"),
        "says what is expected: {text}"
    );
    assert!(!text.contains("hunter2-secret"), "{text}");

    let url = PgUrl::parse("postgres://slipway:hunter2-secret@127.0.0.1:1/slipway").unwrap();
    assert_eq!(
        url.to_string(),
        "postgres://slipway:***@127.0.0.1:1/slipway"
    );
    assert!(!format!("{url:?}").contains("hunter2-secret"));
    let setting = StoreSetting::new("postgres://slipway:hunter2-secret@127.0.0.1:1/slipway".into());
    assert!(!format!("{setting:?}").contains("hunter2-secret"));
    let err = runtime()
        .block_on(PgStore::connect(&url))
        .err()
        .expect("nothing listens on port 1");
    let text = err.to_string();
    assert!(
        text.contains(STORE_SETTING) && text.contains("cannot be reached"),
        "{text}"
    );
    assert!(text.contains("slipway:***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("hunter2-secret"), "{text}");
}

#[test]
fn processes_starting_together_migrate_the_schema_once() {
    let Some(base) = postgres_url() else { return };
    runtime().block_on(async {
        let (schema, url) = fresh_schema(&base).await;
        let url = PgUrl::parse(&url).unwrap();
        let starting: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PgStore::connect(&url).await.map(|_| ()) })
            })
            .collect();
        for s in starting {
            s.await.unwrap().unwrap();
        }
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let rows = client
            .query(
                &format!("SELECT version FROM {schema}.schema_version ORDER BY version"),
                &[],
            )
            .await
            .unwrap();
        let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(versions, vec![1, 2, 3, 4, 5, 6], "each migration once");
        drop_schema(&base, &schema).await;
    });
}

#[test]
fn a_delivery_failing_in_a_batch_fails_alone() {
    let Some(base) = postgres_url() else { return };
    // One thread: the three deliveries are all handed over before the task recording them runs,
    // so they make one batch.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (schema, url) = fresh_schema(&base).await;
        let store = PgStore::connect(&PgUrl::parse(&url).unwrap())
            .await
            .unwrap();
        let delivery = |id: &str, n: u8, branch: &str| Delivery {
            id: id.into(),
            event: "push".into(),
            body_sha256: [n; 32],
            visibility: None,
            action: DeliveryAction::Build {
                build: Box::new(push(branch, &format!("c{n}"))),
                auto_cancel: true,
            },
        };
        // PostgreSQL refuses a NUL in text.
        let (first, bad, last) = tokio::join!(
            store.record_delivery(delivery("d-1", 1, "b1")),
            store.record_delivery(delivery("d-\0", 2, "b2")),
            store.record_delivery(delivery("d-3", 3, "b3")),
        );
        assert!(bad.is_err(), "{bad:?}");
        for recorded in [first.unwrap(), last.unwrap()] {
            let Recorded::Accepted {
                build: Some(id), ..
            } = recorded
            else {
                panic!("{recorded:?}");
            };
            let (b, _) = store.build(id).await.unwrap().unwrap();
            assert_eq!(b.state, BuildState::Queued);
        }
        let counts = store.counts().await.unwrap();
        let builds: i64 = counts.builds.iter().map(|(_, n)| n).sum();
        assert_eq!((counts.deliveries, builds), (2, 2));
        drop(store);
        drop_schema(&base, &schema).await;
    });
}
