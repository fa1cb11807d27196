//! The streaming `ingest`: a Kafka consumer group whose partitions are curated exactly as the
//! batch `curate` would curate the same events, with an exactly-once effect on the catalog and
//! on the triplet files.
//!
//! Per partition, messages are folded into a `PartitionCurator` and committed in micro-batches:
//! triplet files of the days that became final are written first (content-addressed, so a
//! rewrite is harmless), then ONE transaction stores the publishes, counter deltas, dead letters,
//! manifest rows, emitted marks, the partition's next offset (compare-and-set) and, now and then,
//! a snapshot of the curation state. The catalog's offsets are the source of truth: a partition
//! (re)gained after a restart or a rebalance restarts from its snapshot, replays up to the
//! committed offset into memory only, and goes on. The same offsets are then committed to Kafka
//! (async), so lag tools see the group's progress. Uncommitted work is abandoned on a revoke or a
//! crash and redone by whoever owns the partition next; a consumer that lost a partition without
//! noticing is fenced off by the compare-and-set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::info;

use crate::curate::partition::PartitionSettings;
use crate::events::IntakeCounts;
use crate::sources::kafka::DeadLetterTopic;
use crate::store::{Catalog, ObjectRoot};

use super::StageError;

mod committer;
mod consumption;
mod context;
mod files;
mod kafka;
mod mailbox;
pub mod metrics;
mod partitions;
mod poller;

use committer::{Committer, Destination};
use consumption::Consumption;
use metrics::{StreamMetrics, serve};

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
    pub partition_lines: std::collections::BTreeMap<i32, u64>,
    /// From Kafka: for each partition this consumer held at the end, its high watermark then
    /// less the offset committed for it (0: nothing left to read). Files are always read to
    /// their end and have none.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub lag: std::collections::BTreeMap<i32, i64>,
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

/// What to check when nothing was assigned: a topic without partitions is most likely one that
/// was never made (a consumer started before the producer).
fn no_assignment_hint(partitions_at_start: usize, topic: &str, brokers: &str) -> String {
    if partitions_at_start == 0 {
        format!(
            "does topic {topic} exist on {brokers}? (`social-reward simulate --to-kafka \
             {brokers} --topic {topic}` creates it)"
        )
    } else {
        format!(
            "is the group coordinator on {brokers} reachable? do other members of the group \
             hold all the partitions?"
        )
    }
}

/// How a run ended without reaching its end: the report says what it did before.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Stage(#[from] StageError),
    /// `until_idle`: nothing to read, because nothing was handed to this consumer.
    #[error(
        "no partition of {topic} ({partitions_at_start} at the start) was assigned to \
         this member of group {group} in {waited_secs} s; {}",
        no_assignment_hint(*.partitions_at_start, .topic, .brokers)
    )]
    NoAssignment {
        brokers: String,
        topic: String,
        group: String,
        partitions_at_start: usize,
        waited_secs: u64,
        report: Box<StreamReport>,
    },
    /// `until_idle`: messages stopped coming while partitions this consumer holds were short of
    /// where they were when it started.
    #[error(
        "stopped with a backlog on {topic}: no message for {waited_secs} s while {} (are the \
         partitions' leaders on {brokers} reachable?)",
        behind_text(.behind)
    )]
    StoppedWithBacklog {
        brokers: String,
        topic: String,
        waited_secs: u64,
        behind: Vec<Behind>,
        report: Box<StreamReport>,
    },
}

impl StreamError {
    /// What the run did before it stopped (with its lag), for the errors that end a run.
    pub fn report(&self) -> Option<&StreamReport> {
        match self {
            Self::Stage(_) => None,
            Self::NoAssignment { report, .. } | Self::StoppedWithBacklog { report, .. } => {
                Some(report.as_ref())
            }
        }
    }
}

/// The pipeline runner's stages only read files, which never end these ways.
impl From<StreamError> for StageError {
    fn from(error: StreamError) -> Self {
        match error {
            StreamError::Stage(error) => error,
            other => failed(other),
        }
    }
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

fn behind_text(behind: &[Behind]) -> String {
    let parts: Vec<String> = behind
        .iter()
        .map(|b| match b.next {
            Some(next) => format!(
                "partition {} was read to offset {next} of {} ({} behind)",
                b.partition,
                b.high_at_start,
                b.high_at_start - next
            ),
            None => format!(
                "partition {} was not open (high watermark {} at the start)",
                b.partition, b.high_at_start
            ),
        })
        .collect();
    parts.join(", ")
}

fn failed(message: impl std::fmt::Display) -> StageError {
    StageError::Failed {
        stage: "ingest".into(),
        message: message.to_string(),
    }
}

pub async fn run_stream(
    options: &StreamOptions,
    catalog: &Catalog,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<StreamReport, StreamError> {
    let started = Instant::now();
    let out = ObjectRoot::open(&options.out).map_err(StageError::from)?;
    let metrics = Arc::new(StreamMetrics::default());
    let server = match options.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| failed(format!("metrics address {addr}: {e}")))?;
            info!(address = %addr, "serving /metrics and /health");
            Some(AbortOnDrop(tokio::spawn(serve(listener, metrics.clone()))))
        }
        None => None,
    };
    let dead_letter_topic = match (&options.dead_letter_topic, &options.input) {
        (Some(topic), StreamInput::Kafka { brokers }) => Some(Arc::new(
            DeadLetterTopic::connect(brokers, topic, &options.kafka)
                .map_err(|e| failed(format!("dead-letter topic {topic}: {e}")))?,
        )),
        _ => None,
    };
    let committer = Committer::start(Destination {
        catalog: catalog.clone(),
        out,
        dead_letter_topic,
        metrics: metrics.clone(),
        run_id: options.run_id.clone(),
        group: options.group.clone(),
        topic: options.topic.clone(),
    });
    let report = StreamReport {
        run_id: options.run_id.clone(),
        ..StreamReport::default()
    };
    let start = Start {
        options,
        catalog,
        metrics: &metrics,
        report,
        committer,
        started,
    };
    let report = match &options.input {
        StreamInput::Kafka { brokers } => kafka::consume(start, brokers, shutdown).await?,
        StreamInput::Files(paths) => files::consume(start, paths, shutdown).await?,
    };
    drop(server);
    Ok(report)
}

/// What either input's loop starts from.
struct Start<'a> {
    options: &'a StreamOptions,
    catalog: &'a Catalog,
    metrics: &'a Arc<StreamMetrics>,
    report: StreamReport,
    committer: Committer,
    started: Instant,
}

/// The metrics server lives as long as the consumer loop, however that ends.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn finish(state: Consumption<'_>, started: Instant, idle_wait: Duration) -> StreamReport {
    let busy_seconds = state.busy_seconds(idle_wait);
    let mut report = state.report;
    report.busy_seconds = busy_seconds;
    let mut partitions: Vec<i32> = state.runs.keys().copied().collect();
    partitions.sort_unstable();
    for (&partition, run) in &state.runs {
        report.counts.add(run.curator.counts());
        let lines = run.curator.counts().lines;
        report.partition_lines.insert(partition, lines);
    }
    report.partitions = partitions;
    let mut latencies = state.latencies;
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round().max(0.0) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    report.commit_latency_ms_p50 = quantile(0.5);
    report.commit_latency_ms_p99 = quantile(0.99);
    report.seconds = started.elapsed().as_secs_f64();
    report
}
