//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod streaming;
pub mod tansu;

use std::path::Path;

use social_reward::sources::kafka::KafkaTarget;
use social_reward::sources::simulator::{Scenario, SimulateOptions, SimulationSummary, simulate};
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
        create: social_reward::sources::kafka::TopicLayout::default(),
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

/// A database of its own for one test, dropped when the guard goes out of scope.
pub struct ScratchDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    pub async fn create(tag: &str) -> Self {
        let admin_url = postgres_url();
        let name = format!("sr_test_{tag}_{}_{}", std::process::id(), nanos());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required for this test: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
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

    pub async fn drop_now(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
