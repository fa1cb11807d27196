//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cli;
pub mod streaming;
pub mod tansu;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use social_reward::sinks::kafka::KafkaTarget;
use social_reward::sources::simulator::{Scenario, SimulateOptions, SimulationSummary, simulate};
use social_reward::store::Catalog;
use sqlx::Connection;

/// Simulates `scenario` without pictures into `dir` (`events.jsonl`, `truth.parquet`) and
/// produces every event to `topic` as well, keyed by creator.
pub fn simulate_to_kafka(
    dir: &Path,
    brokers: &str,
    topic: &str,
    scenario: Scenario,
) -> SimulationSummary {
    let target = KafkaTarget {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        per_second: None,
        create: social_reward::sinks::kafka::TopicLayout::default(),
    };
    simulate_without_images(dir, scenario, Some(target))
}

/// Simulates `scenario` without pictures into `dir` (`events.jsonl`, `truth.parquet`) only.
pub fn simulate_to_files(dir: &Path, scenario: Scenario) -> SimulationSummary {
    simulate_without_images(dir, scenario, None)
}

fn simulate_without_images(
    dir: &Path,
    scenario: Scenario,
    kafka: Option<KafkaTarget>,
) -> SimulationSummary {
    simulate(&SimulateOptions {
        out: dir.to_path_buf(),
        scenario,
        images: false,
        image_size: 64,
        gzip: false,
        progress: false,
        kafka,
    })
    .unwrap()
}

/// The PostgreSQL the tests run against (`scripts/test.sh` makes sure it is up).
pub fn postgres_url() -> String {
    std::env::var("SOCIAL_REWARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database of its own for one test on the test server, uniquely named, dropped (connections
/// and all) when the guard goes out of scope, a panicking test's included.
pub struct ScratchDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    pub async fn create(tag: &str) -> Self {
        static CREATED: AtomicU64 = AtomicU64::new(0);
        let admin_url = postgres_url();
        let name = format!(
            "sr_test_{tag}_{}_{}_{}",
            std::process::id(),
            nanos(),
            CREATED.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required for this test: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating the scratch database {name}: {e}"));
        admin.close().await.unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        Self {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        }
    }

    /// The catalog in this database, migrated.
    pub async fn catalog(&self) -> Catalog {
        Catalog::open(&self.url).await.unwrap()
    }
}

impl Drop for ScratchDatabase {
    /// Blocks until the database is gone: on a thread of its own with a runtime of its own, so
    /// that it works inside and outside a test's runtime alike. `WITH (FORCE)` (PostgreSQL 13+)
    /// ends the connections a catalog left open.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await?;
                    admin.close().await
                })
                .map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| Err("the dropping thread panicked".to_owned()));
        if let Err(error) = dropped {
            let message = format!("scratch database {} was not dropped: {error}", self.name);
            // A second panic while unwinding would abort the test binary.
            if std::thread::panicking() {
                eprintln!("{message}");
            } else {
                panic!("{message}");
            }
        }
    }
}

/// Polls `ready` every 50 ms until it holds; panics naming `what` if `timeout` passes first.
pub async fn wait_until(what: &str, timeout: Duration, mut ready: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready().await {
        assert!(
            Instant::now() < deadline,
            "waited {timeout:?} in vain until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
