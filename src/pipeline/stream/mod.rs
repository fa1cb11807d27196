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

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use serde::Serialize;
use tracing::{info, warn};

use crate::curate::partition::{PartitionCurator, PartitionSettings};
use crate::events::{IntakeCounts, SourcePosition};
use crate::sources::kafka::DeadLetterTopic;
use crate::store::{Catalog, ObjectRoot};

use super::StageError;

mod context;
pub mod metrics;
mod partitions;

use context::RebalanceLog;
use metrics::{EventTally, StreamMetrics, serve};
use partitions::Ctx;

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub brokers: String,
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
    /// `PartitionCurator::end_of_input`) and committed.
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
    pub dead_letters: u64,
    pub partitions: Vec<i32>,
    /// Messages each of those partitions has taken in since the stream began.
    pub partition_lines: std::collections::BTreeMap<i32, u64>,
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

struct PartitionRun {
    partition: i32,
    curator: PartitionCurator,
    /// The catalog's next offset for the partition (`None`: never committed).
    committed: Option<i64>,
    /// Offset of the next message to fold in.
    next: i64,
    /// Messages before this offset are replays.
    replay_until: i64,
    first_pending: Option<Instant>,
    last_snapshot: Option<Instant>,
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
) -> Result<StreamReport, StageError> {
    let started = Instant::now();
    let out = ObjectRoot::open(&options.out)?;
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
    let log = RebalanceLog {
        events: Arc::default(),
        metrics: metrics.clone(),
    };
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("group.id", &options.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("statistics.interval.ms", "5000");
    for (key, value) in &options.kafka {
        config.set(key, value);
    }
    let consumer: StreamConsumer<RebalanceLog> = config
        .create_with_context(log.clone())
        .map_err(|e| failed(format!("kafka consumer: {e}")))?;
    consumer
        .subscribe(&[&options.topic])
        .map_err(|e| failed(format!("subscribe to {}: {e}", options.topic)))?;
    let mut runs: HashMap<i32, PartitionRun> = HashMap::new();
    let mut report = StreamReport {
        run_id: options.run_id.clone(),
        ..StreamReport::default()
    };
    let mut latencies: Vec<f64> = Vec::new();
    let mut last_message = Instant::now();
    let mut was_assigned = false;
    let mut first_message: Option<Instant> = None;
    let mut idle_wait = Duration::ZERO;
    let mut owned: HashSet<i32> = HashSet::new();
    let tick = options.batch_interval.min(Duration::from_millis(200));
    tokio::pin!(shutdown);
    let dead_letter_topic = match &options.dead_letter_topic {
        Some(topic) => Some(
            DeadLetterTopic::connect(&options.brokers, topic, &options.kafka)
                .map_err(|e| failed(format!("dead-letter topic {topic}: {e}")))?,
        ),
        None => None,
    };
    let ctx = Ctx {
        options,
        catalog,
        out: &out,
        consumer: &consumer,
        dead_letter_topic: dead_letter_topic.as_ref(),
        metrics: &metrics,
    };
    // One timer for the whole run: a fresh sleep per message would cost a timer-wheel entry
    // each time.
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut full: Option<i32> = None;
    let mut unreported = EventTally::default();
    loop {
        metrics.tick();
        let message = tokio::select! {
            message = consumer.recv() => Some(message),
            _ = ticker.tick() => None,
            _ = &mut shutdown => {
                info!("shutting down: committing what was consumed");
                break;
            }
        };
        let ticked = message.is_none();
        for (assigned, partitions) in log.take() {
            // Joining a group takes seconds: idleness counts from the last rebalance event.
            last_message = Instant::now();
            if assigned {
                was_assigned = true;
                // Opened now, not at their first message: a partition whose messages were all
                // consumed still has to be restored, to end its input when the run goes idle.
                for partition in partitions {
                    owned.insert(partition);
                    if let Entry::Vacant(slot) = runs.entry(partition) {
                        slot.insert(ctx.open_partition(partition).await?);
                    }
                }
                continue;
            }
            for partition in partitions {
                owned.remove(&partition);
                metrics.forget(partition);
                // Uncommitted work is abandoned: the next owner replays it from the catalog.
                if runs.remove(&partition).is_some() {
                    info!(partition, "partition revoked");
                }
            }
        }
        let message = match message {
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                return Err(failed(format!("kafka: fatal consumer error {code}")));
            }
            Some(Err(error)) => {
                // Broker errors reach the consumer as messages; librdkafka retries them itself
                // (a fetch timing out, a broker down): note them and go on.
                warn!(%error, "kafka consumer error; librdkafka retries");
                report.consumer_errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                None
            }
            Some(Ok(message)) => Some(message),
            None => None,
        };
        if let Some(message) = message {
            last_message = Instant::now();
            first_message.get_or_insert(last_message);
            let partition = message.partition();
            let offset = message.offset();
            if !owned.contains(&partition) {
                // Fetched before a revoke: the partition's new owner will read it.
                continue;
            }
            let run = match runs.get_mut(&partition) {
                Some(run) => run,
                None => {
                    let run = ctx.open_partition(partition).await?;
                    runs.entry(partition).or_insert(run)
                }
            };
            if offset != run.next {
                // Fetched before our seek took effect (or a gap): go where the catalog says.
                if offset > run.next {
                    ctx.seek(partition, run.next)?;
                }
                continue;
            }
            run.next = offset + 1;
            let record = offset >= run.replay_until;
            let topic = options.topic.as_str();
            let position = || SourcePosition::Kafka {
                topic: topic.to_owned(),
                partition,
                offset,
            };
            let payload = message.payload().unwrap_or_default();
            let kind = run.curator.observe(payload, position, record).await?;
            report.messages += 1;
            if let (true, Some(kind)) = (record, kind) {
                unreported.count(kind);
            }
            if run.curator.pending().messages >= options.batch_messages {
                full = Some(partition);
            }
            if record {
                run.first_pending.get_or_insert_with(Instant::now);
            } else {
                report.replayed += 1;
            }
            if options.abort_after.is_some_and(|n| report.messages >= n) {
                warn!(
                    messages = report.messages,
                    "aborting without a commit (crash test)"
                );
                report.aborted = true;
                return Ok(finish(
                    report,
                    &runs,
                    latencies,
                    started,
                    first_message,
                    idle_wait,
                ));
            }
        }
        // A full batch commits at once; the others are looked at when the ticker fires, which
        // keeps a scan of every partition off the per-message path.
        let mut due: Vec<i32> = full.take().into_iter().collect();
        if ticked {
            unreported.report_to(&metrics);
            for (&partition, run) in &runs {
                let waited = run
                    .first_pending
                    .is_some_and(|t| t.elapsed() >= options.batch_interval);
                if run.curator.pending().messages > 0 && waited && !due.contains(&partition) {
                    due.push(partition);
                }
            }
        }
        for partition in due {
            ctx.commit(&mut runs, partition, &mut report, &mut latencies)
                .await?;
        }
        // A consumer given no partition (more consumers than partitions) still ends, later.
        let idle_after = |idle: Duration| match was_assigned {
            true => idle,
            false => idle + Duration::from_secs(30),
        };
        if options
            .until_idle
            .is_some_and(|idle| last_message.elapsed() >= idle_after(idle))
        {
            info!("idle: ending the input of every partition");
            idle_wait = last_message.elapsed();
            let partitions: Vec<i32> = runs.keys().copied().collect();
            for partition in partitions {
                if let Some(run) = runs.get_mut(&partition) {
                    if run.next < run.replay_until {
                        warn!(
                            partition,
                            next = run.next,
                            committed = run.replay_until,
                            "idle before catching up with the catalog: input not ended"
                        );
                        continue;
                    }
                    run.curator.end_of_input().await?;
                    run.last_snapshot = None;
                }
                ctx.commit(&mut runs, partition, &mut report, &mut latencies)
                    .await?;
            }
            break;
        }
    }
    let partitions: Vec<i32> = runs.keys().copied().collect();
    for partition in partitions {
        ctx.commit(&mut runs, partition, &mut report, &mut latencies)
            .await?;
    }
    unreported.report_to(&metrics);
    consumer.unsubscribe();
    drop(server);
    Ok(finish(
        report,
        &runs,
        latencies,
        started,
        first_message,
        idle_wait,
    ))
}

/// The metrics server lives as long as the consumer loop, however that ends.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn finish(
    mut report: StreamReport,
    runs: &HashMap<i32, PartitionRun>,
    mut latencies: Vec<f64>,
    started: Instant,
    first_message: Option<Instant>,
    idle_wait: Duration,
) -> StreamReport {
    report.busy_seconds =
        first_message.map_or(0.0, |t| t.elapsed().saturating_sub(idle_wait).as_secs_f64());
    let mut partitions: Vec<i32> = runs.keys().copied().collect();
    partitions.sort_unstable();
    for (&partition, run) in runs {
        report.counts.add(run.curator.counts());
        let lines = run.curator.counts().lines;
        report.partition_lines.insert(partition, lines);
    }
    report.partitions = partitions;
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
