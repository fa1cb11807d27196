//! What the stream tests (tests/stream.rs, tests/chaos.rs) share: a simulated community's events
//! on a broker or in a file, and what they compare against, batch `curate` over the same events,
//! with settings that make a small simulated community close many sessions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use social_reward::curate::{CurateConfig, CurateOptions, CurateSummary, ImageDedup, curate};
use social_reward::events::{Limits, Timestamp};
use social_reward::sources::simulator::Scenario;

/// The topic every stream test reads.
pub const TOPIC: &str = "events";

/// A simulated community of `users` over `days`, without pictures.
pub fn scenario(users: u64, days: f64, seed: u64) -> Scenario {
    Scenario {
        users,
        days,
        seed,
        ..Scenario::default()
    }
}

/// Simulated events: the JSON-lines file, and how many lines (messages) it holds.
pub struct Simulated {
    pub events: PathBuf,
    pub lines: u64,
}

impl Simulated {
    /// Simulates `scenario` into `dir` and produces every event to [`TOPIC`] on `brokers`.
    pub fn on_kafka(dir: &Path, brokers: &str, scenario: Scenario) -> Self {
        Self::counted(super::simulate_to_kafka(dir, brokers, TOPIC, scenario).events)
    }

    /// Simulates `scenario` into `dir` only.
    pub fn in_file(dir: &Path, scenario: Scenario) -> Self {
        Self::counted(super::simulate_to_files(dir, scenario).events)
    }

    fn counted(events: PathBuf) -> Self {
        let lines = std::fs::read_to_string(&events).unwrap().lines().count() as u64;
        Self { events, lines }
    }
}

/// librdkafka's mock cluster of `brokers` brokers, with [`TOPIC`] made of `partitions`.
pub fn mock_cluster(brokers: i32, partitions: i32) -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(brokers).unwrap();
    mock.create_topic(TOPIC, partitions, 1).unwrap();
    mock
}

/// Short windows so that a simulated day closes many sessions; low evidence bars so that a
/// small community still yields triplets.
pub fn config() -> CurateConfig {
    let mut config = CurateConfig {
        window_hours: 3.0,
        session_grace_hours: 1.0,
        allowed_lateness_hours: 0.5,
        min_views: 3,
        min_confidence: 0.6,
        max_cluster_share: 0.2,
        ..CurateConfig::default()
    };
    config.split.val_share = 0.2;
    config.split.test_share = 0.2;
    config
}

/// Every file under `root/triplets`, by relative path.
pub fn triplet_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.join("triplets")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Batch `curate` over `events` into `out`, without a catalog: what every stream must write.
pub async fn batch_curate(events: &Path, out: &Path) -> (CurateSummary, BTreeMap<String, Vec<u8>>) {
    let summary = curate(
        &CurateOptions {
            events: vec![events.to_path_buf()],
            images: None,
            out: out.display().to_string(),
            config: config(),
            limits: Limits::default(),
            now: Timestamp::now(),
            dedup_horizon_hours: 6.0,
            image_dedup: ImageDedup::Off,
            truth: None,
            run_id: "batch".into(),
            progress: false,
        },
        None,
    )
    .await
    .unwrap();
    (summary, triplet_files(out))
}
