//! The catalog on both backends: migrations apply (twice is a no-op), and every write path
//! round-trips through bound parameters.

mod common;

use std::borrow::Cow;

use social_reward::events::{DeadLetter, Publish, Reason, Rejection, SourcePosition, Timestamp};
use social_reward::store::{
    Catalog, CatalogTable, CommitOutcome, ConsumedOffsets, CounterDelta, PartitionCommit, RunStatus,
};

fn publish(image_id: &str) -> Publish<'static> {
    Publish {
        event_id: Cow::Owned(format!("e-{image_id}")),
        ts: Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        image_id: Cow::Owned(image_id.to_owned()),
        creator_id: "u1".into(),
        generation_id: "g1".into(),
        // Quotes and a statement terminator: bound parameters must carry them verbatim.
        prompt: "a fox'); DROP TABLE images; --".into(),
        image_uri: format!("{image_id}.png").into(),
        model: "sdxl-1.0".into(),
        creator_followers: 12,
    }
}

/// How many migration files `backend` has (PostgreSQL has one more, for its storage settings).
fn migration_files(backend: &str) -> usize {
    std::fs::read_dir(format!("migrations/{backend}"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "sql")
        })
        .count()
}

/// A catalog connected to an empty database: migrating applies every migration, once.
async fn migrate_fresh(url: &str) -> Catalog {
    let catalog = Catalog::connect(url).await.unwrap();
    let files = migration_files(catalog.backend());
    assert!(files >= 2, "{files} migration files");
    assert_eq!(
        catalog.migrate().await.unwrap(),
        files,
        "a fresh catalog gets every migration"
    );
    catalog
}

async fn exercise(catalog: &Catalog) {
    assert_eq!(
        catalog.migrate().await.unwrap(),
        0,
        "re-running migrations is a no-op"
    );
    assert_eq!(
        catalog
            .insert_images(&[publish("i1"), publish("i2")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        catalog.insert_images(&[publish("i1")]).await.unwrap(),
        0,
        "replayed publish"
    );

    let deltas = [
        CounterDelta {
            image_id: "i1".into(),
            views: 10,
            remixes: 2,
        },
        CounterDelta {
            image_id: "missing".into(),
            views: 3,
            remixes: 1,
        },
    ];
    let unmatched = catalog.add_counters(&deltas).await.unwrap();
    assert_eq!(unmatched, vec![deltas[1].clone()]);
    catalog.add_counters(&deltas[..1]).await.unwrap();
    assert_eq!(catalog.image_counters("i1").await.unwrap(), Some((20, 4)));

    let letter = DeadLetter::new(
        b"{\"v\":1,\0",
        8,
        Rejection::new(Reason::MalformedJson, "EOF"),
        SourcePosition::Kafka {
            topic: "events".into(),
            partition: 3,
            offset: 42,
        },
    );
    let file_letter = DeadLetter::new(
        b"\xff\xfe",
        2,
        Rejection::new(Reason::InvalidUtf8, "at byte 0"),
        SourcePosition::File {
            path: "x.jsonl".into(),
            line: 7,
        },
    );
    assert_eq!(
        catalog
            .insert_dead_letters("r1", &[letter.clone(), file_letter])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        catalog.insert_dead_letters("r1", &[letter]).await.unwrap(),
        0,
        "same position once"
    );
    assert_eq!(
        catalog.dead_letters_by_reason().await.unwrap(),
        vec![
            ("invalid_utf8".to_owned(), 1),
            ("malformed_json".to_owned(), 1)
        ]
    );

    let params = serde_json::json!({"users": 10});
    catalog
        .start_run("r1", "simulate", "test", &params)
        .await
        .unwrap();
    assert_eq!(
        catalog
            .run_status("r1", "simulate")
            .await
            .unwrap()
            .as_deref(),
        Some("running")
    );
    catalog
        .finish_run(
            "r1",
            "simulate",
            RunStatus::Succeeded,
            &serde_json::json!({"images": 2}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        catalog
            .run_status("r1", "simulate")
            .await
            .unwrap()
            .as_deref(),
        Some("succeeded")
    );
    assert!(catalog.last_finished("simulate").await.unwrap().is_some());

    let counts = catalog.table_counts().await.unwrap();
    assert_eq!((counts.images, counts.dead_letters, counts.runs), (2, 2, 1));
    tables_read_the_same_on_either_backend(catalog).await;
}

/// Analysts' tables (`query`, `report`): one type per column whichever backend holds it, so the
/// same SQL gives the same result on SQLite and PostgreSQL.
async fn tables_read_the_same_on_either_backend(catalog: &Catalog) {
    use polars::prelude::*;
    for table in CatalogTable::ALL {
        catalog.table_frame(table).await.unwrap_or_else(|e| {
            panic!("{} on {}: {e}", table.name(), catalog.backend());
        });
    }
    let images = catalog.table_frame(CatalogTable::Images).await.unwrap();
    assert_eq!(images.height(), 2);
    let published = images.column("published_at").unwrap();
    assert_eq!(
        published.dtype(),
        &DataType::Datetime(TimeUnit::Microseconds, None)
    );
    assert_eq!(
        published.datetime().unwrap().physical().get(0),
        Some(1_767_225_600_000_000),
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(
        images.column("creator_followers").unwrap().dtype(),
        &DataType::Int64
    );
    let prompt = images.column("prompt").unwrap().str().unwrap().get(0);
    assert_eq!(prompt, Some("a fox'); DROP TABLE images; --"));
    let runs = catalog.table_frame(CatalogTable::Runs).await.unwrap();
    let metrics = runs
        .column("metrics")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap();
    let metrics: serde_json::Value = serde_json::from_str(metrics).unwrap();
    assert_eq!(
        metrics,
        serde_json::json!({"images": 2}),
        "JSON as its text"
    );
    let letters = catalog
        .table_frame(CatalogTable::DeadLetters)
        .await
        .unwrap();
    assert_eq!(letters.height(), 2);
    assert_eq!(
        letters.column("partition_id").unwrap().dtype(),
        &DataType::Int64
    );
}

/// A partition's commit moves its offset only from where the committer started: a second
/// committer from the same start is fenced off and writes nothing.
async fn partition_commits_are_compare_and_set(catalog: &Catalog) {
    let letter = |offset| {
        DeadLetter::new(
            b"nope",
            4,
            Rejection::new(Reason::MalformedJson, "expected value"),
            SourcePosition::Kafka {
                topic: "cas".into(),
                partition: 1,
                offset,
            },
        )
    };
    fn commit<'a>(
        expected: Option<i64>,
        next: i64,
        letters: &'a [DeadLetter],
        snapshot: Option<&'a [u8]>,
    ) -> PartitionCommit<'a> {
        PartitionCommit {
            run_id: "cas",
            location: "file:///cas",
            group: "g",
            topic: "cas",
            partition: 1,
            expected_offset: expected,
            next_offset: next,
            publishes: &[],
            deltas: &[],
            letters,
            files: &[],
            images: &[],
            snapshot,
        }
    }
    let (first, second) = ([letter(3)], [letter(12)]);
    let state = b"state at 10".as_slice();
    let outcome = catalog
        .commit_partition(&commit(None, 10, &first, Some(state)))
        .await
        .unwrap();
    assert!(
        matches!(outcome, CommitOutcome::Committed(_)),
        "{outcome:?}"
    );
    let before = catalog.table_counts().await.unwrap().dead_letters;
    for expected in [None, Some(7)] {
        let outcome = catalog
            .commit_partition(&commit(expected, 20, &second, None))
            .await
            .unwrap();
        assert!(matches!(outcome, CommitOutcome::Fenced), "{outcome:?}");
    }
    assert_eq!(catalog.table_counts().await.unwrap().dead_letters, before);
    let outcome = catalog
        .commit_partition(&commit(Some(10), 20, &second, None))
        .await
        .unwrap();
    assert!(
        matches!(outcome, CommitOutcome::Committed(_)),
        "{outcome:?}"
    );
    let stored = catalog.partition_state("g", "cas", 1).await.unwrap();
    assert_eq!(stored.next_offset, Some(20));
    assert_eq!(stored.snapshot, Some((10, state.to_vec())));
}

/// A consumed batch lands whole: images, counters, dead letters and the partitions' next
/// offsets together, and a later batch moves the offsets on.
async fn batches_commit_with_their_offsets(catalog: &Catalog) {
    let consumed = ConsumedOffsets {
        group: "g",
        topic: "events",
        next_offsets: &[(0, 120), (3, 7)],
    };
    let delta = |image: &str, views| CounterDelta {
        image_id: image.into(),
        views,
        remixes: 1,
    };
    let letter = DeadLetter::new(
        b"nope",
        4,
        Rejection::new(Reason::MalformedJson, "expected value"),
        SourcePosition::Kafka {
            topic: "events".into(),
            partition: 3,
            offset: 5,
        },
    );
    let applied = catalog
        .apply_batch(
            "stream",
            &[publish("s1")],
            &[delta("s1", 4), delta("unknown", 2)],
            &[letter],
            Some(&consumed),
        )
        .await
        .unwrap();
    assert_eq!(
        applied.images_inserted, 1,
        "the publish and its views in one batch"
    );
    assert_eq!(applied.unmatched, vec![delta("unknown", 2)]);
    assert_eq!(applied.dead_letters_stored, 1);
    assert_eq!(catalog.image_counters("s1").await.unwrap(), Some((4, 1)));
    assert_eq!(
        catalog.stored_offsets("g", "events").await.unwrap(),
        vec![(0, 120), (3, 7)]
    );
    let later = ConsumedOffsets {
        next_offsets: &[(3, 9)],
        ..consumed.clone()
    };
    catalog
        .apply_batch("stream", &[], &[delta("s1", 1)], &[], Some(&later))
        .await
        .unwrap();
    assert_eq!(
        catalog.stored_offsets("g", "events").await.unwrap(),
        vec![(0, 120), (3, 9)]
    );
    assert!(
        catalog
            .stored_offsets("other", "events")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sqlite_catalog_migrates_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("nested/catalog.db").display());
    let catalog = migrate_fresh(&url).await;
    assert_eq!(catalog.backend(), "sqlite");
    exercise(&catalog).await;
    partition_commits_are_compare_and_set(&catalog).await;
    batches_commit_with_their_offsets(&catalog).await;
    catalog.close().await;
    // Reopening finds the data and the applied migrations.
    let reopened = Catalog::open(&url).await.unwrap();
    assert_eq!(reopened.migrate().await.unwrap(), 0);
    assert_eq!(reopened.table_counts().await.unwrap().images, 3);
    reopened.close().await;
}

/// Counter updates find room on their page (HOT), and snapshots are compressed with lz4.
async fn storage_settings_took(url: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let options: Vec<String> =
        sqlx::query_scalar("SELECT unnest(reloptions) FROM pg_class WHERE relname = 'images'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(options, ["fillfactor=70"]);
    let compression: String = sqlx::query_scalar(
        "SELECT attcompression::text FROM pg_attribute \
         WHERE attrelid = 'stream_snapshots'::regclass AND attname = 'state'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(compression, "l", "lz4 (this server is built with it)");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn postgres_catalog_migrates_and_round_trips() {
    let db = common::ScratchDatabase::create("catalog").await;
    let catalog = migrate_fresh(&db.url).await;
    assert_eq!(catalog.backend(), "postgres");
    exercise(&catalog).await;
    storage_settings_took(&db.url).await;
    partition_commits_are_compare_and_set(&catalog).await;
    batches_commit_with_their_offsets(&catalog).await;

    // All or nothing: PostgreSQL refuses a NUL in text, so this batch fails as a whole and
    // neither its counters nor its offsets move.
    let mut bad = publish("s2");
    bad.prompt = "a fox\0".into();
    let failed = catalog
        .apply_batch(
            "stream",
            &[bad],
            &[CounterDelta {
                image_id: "s1".into(),
                views: 100,
                remixes: 0,
            }],
            &[],
            Some(&ConsumedOffsets {
                group: "g",
                topic: "events",
                next_offsets: &[(0, 999)],
            }),
        )
        .await;
    assert!(failed.is_err());
    assert_eq!(catalog.image_counters("s1").await.unwrap(), Some((5, 2)));
    assert_eq!(
        catalog.stored_offsets("g", "events").await.unwrap(),
        vec![(0, 120), (3, 9)]
    );
    catalog.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused_clearly() {
    let error = Catalog::connect("mysql://root@localhost/test")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("neither postgres:// nor sqlite:")
    );
}

/// A managed PostgreSQL is reached over TLS: `sslmode=require` encrypts (the test server has
/// Debian's self-signed certificate), and `verify-full` checks the certificate, so a server
/// whose certificate no trusted authority signed is refused, not silently trusted.
#[tokio::test]
async fn postgres_catalog_speaks_tls_when_the_url_asks() {
    use sqlx::Connection;
    let db = common::ScratchDatabase::create("tls").await;
    let required = format!("{}?sslmode=require", db.url);
    let catalog = Catalog::open(&required).await.unwrap();
    assert_eq!(catalog.insert_images(&[publish("t1")]).await.unwrap(), 1);
    catalog.close().await;

    let mut connection = sqlx::PgConnection::connect(&required).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert!(encrypted, "sslmode=require gave a plain connection");
    connection.close().await.unwrap();

    let verified = Catalog::open(&format!("{}?sslmode=verify-full", db.url)).await;
    let error = verified.expect_err("a self-signed certificate was trusted");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
}
