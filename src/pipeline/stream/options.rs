//! What a streaming run is told: where its messages come from, where its results go, and when
//! it commits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::curate::partition::PartitionSettings;

/// Where the messages come from.
#[derive(Debug, Clone)]
pub enum StreamInput {
    /// A Kafka consumer group on `topic`.
    Kafka { brokers: String },
    /// JSON-lines files, each one partition whose offsets are its 0-based line numbers: the
    /// embedded default, same loop and same catalog commits, no broker. `topic` and `group`
    /// name the stream in the catalog, so a rerun over the same files resumes (and, over
    /// files read to their end, adds nothing).
    Files(Vec<PathBuf>),
}

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub input: StreamInput,
    pub topic: String,
    pub group: String,
    pub out: String,
    pub run_id: String,
    pub settings: PartitionSettings,
    /// Commit a partition after this many messages…
    pub batch_messages: u64,
    /// …or this long after its first uncommitted one.
    pub batch_interval: Duration,
    /// Snapshot a partition's state with a commit at least this often (replay after a restart
    /// is bounded by it).
    pub snapshot_interval: Duration,
    /// Exit after this long without a message, every partition's input ended (see
    /// `PartitionCurator::end_of_input`) and committed. From Kafka, only once this consumer
    /// holds a partition and has read each one it holds up to its high watermark at the start;
    /// it fails instead (`StreamError`) when that has not happened after `until_idle`, and at
    /// least a minute, without a message (docs/streaming.md).
    pub until_idle: Option<Duration>,
    /// Testing crashes: stop dead after this many messages, committing nothing more.
    pub abort_after: Option<u64>,
    /// Extra librdkafka settings (`key=value`), e.g. security.
    pub kafka: Vec<(String, String)>,
    /// Dead letters are also copied here (before the commit that stores them).
    pub dead_letter_topic: Option<String>,
    /// Serve `/metrics` and `/health` here.
    pub metrics_addr: Option<SocketAddr>,
}
