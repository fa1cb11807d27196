//! Kafka, consumer side: how every consumer of the events reads them, the thread that polls
//! the consumer group, and what librdkafka reports on its own threads (rebalances, lag).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;

mod context;
mod poller;

pub use context::{LagGauge, RebalanceLog};
pub use poller::{ConsumerLink, Poller};

/// How long reading the high watermarks may take, all partitions together.
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(30);

/// How every consumer of the events reads them: the ingest loop, and the bare loop it is
/// measured against (a baseline with other fetch settings would measure librdkafka's tuning,
/// not the consumer).
pub fn consumer_config(brokers: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // librdkafka's default pauses a partition's fetching for a whole second whenever its
        // local queue is full: a fast consumer would then wait on the backoff, not on the broker.
        .set("fetch.queue.backoff.ms", "50");
    config
}

/// The high watermark of each of `partitions` of `topic` (`None`: every partition it has; a
/// topic that does not exist has none), all read within `WATERMARKS_TIMEOUT`.
pub fn high_watermarks(
    consumer: &BaseConsumer<RebalanceLog>,
    topic: &str,
    partitions: Option<&[i32]>,
) -> KafkaResult<BTreeMap<i32, i64>> {
    let deadline = Instant::now() + WATERMARKS_TIMEOUT;
    let listed: Vec<i32> = match partitions {
        Some(partitions) => partitions.to_vec(),
        None => consumer
            .fetch_metadata(Some(topic), WATERMARKS_TIMEOUT)?
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect(),
    };
    let mut highs = BTreeMap::new();
    for partition in listed {
        let left = deadline.saturating_duration_since(Instant::now());
        let (_, high) = consumer.fetch_watermarks(topic, partition, left)?;
        highs.insert(partition, high.max(0));
    }
    Ok(highs)
}
