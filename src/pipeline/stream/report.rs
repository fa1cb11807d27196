//! What a streaming run did: counts, commits, latencies and, from Kafka, the lag it left.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::events::IntakeCounts;

#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    pub run_id: String,
    pub messages: u64,
    /// Messages read again after a restart or rebalance whose effects the catalog had.
    pub replayed: u64,
    pub commits: u64,
    pub fenced: u64,
    pub retries: u64,
    /// Errors librdkafka reported while consuming (and retried on its own).
    pub consumer_errors: u64,
    pub triplets: u64,
    pub files: u64,
    /// Dead letters this run committed to the catalog: intake's and the windows' (late,
    /// unknown image). Intake's own count is `dead_letters` among the counts.
    pub dead_letters_stored: u64,
    pub partitions: Vec<i32>,
    /// Messages each of those partitions has taken in since the stream began.
    pub partition_lines: BTreeMap<i32, u64>,
    /// From Kafka: for each partition this consumer held at the end, its high watermark then
    /// less the offset committed for it (0: nothing left to read). Files are always read to
    /// their end and have none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub lag: BTreeMap<i32, i64>,
    /// Intake counts of every partition this consumer held at the end (since the stream began).
    #[serde(flatten)]
    pub counts: IntakeCounts,
    pub commit_latency_ms_p50: f64,
    pub commit_latency_ms_p99: f64,
    pub aborted: bool,
    /// From the first message to the end of the last commit: what throughput is measured over
    /// (group joins and the idle wait excluded).
    pub busy_seconds: f64,
    pub seconds: f64,
}

/// A partition held at the end that had not been read to its high watermark at the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Behind {
    pub partition: i32,
    /// The offset of the next message to read (`None`: the partition was never opened, e.g.
    /// fenced off just before a rebalance).
    pub next: Option<i64>,
    pub high_at_start: i64,
}
