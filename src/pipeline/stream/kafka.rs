//! The loop over a Kafka consumer group: messages, rebalances, commit answers, the batch timer
//! and shutdown, in one select. Messages already fetched are taken in runs without going back
//! to the select each time.
//!
//! With `until_idle` the run ends once it is quiet, holds a partition and has read each one it
//! holds up to the high watermark that partition had when the run started; quiet for a minute
//! (or `until_idle`, if longer) without getting there, it fails rather than leave a backlog
//! behind an exit status of 0.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tracing::{info, warn};

use crate::events::Validator;
use crate::sources::kafka::{Poller, RebalanceLog, consumer_config, high_watermarks};
use crate::sources::{PartitionSource, Polled, SourceError};

use super::consumption::{Consumption, Flow, Start, finish};
use super::error::StreamError;
use super::partitions::Ctx;
use super::report::{Behind, StreamReport};

/// Chunks taken from the poll thread per wake-up of the loop.
const RUN_OF_CHUNKS: usize = 8;
/// The least a run with `until_idle` stays quiet, holding no partition or short of the high
/// watermarks it started from, before it fails: a join after a member died waits out that
/// member's session (10 s here unless set otherwise) and a leader's failover takes seconds; a
/// coordinator or a fetch stalled for a minute is not about to come back.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// Why a run with `until_idle` gave up.
enum Stall {
    NoAssignment,
    Backlog(Vec<Behind>),
}

type Answer = Option<Result<(Vec<super::committer::CommitDone>, u64), StreamError>>;

enum Wake {
    Polled(Option<Polled>),
    Committed(Answer),
    Tick,
    Shutdown,
}

pub(super) async fn consume(
    start: Start<'_>,
    brokers: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<StreamReport, StreamError> {
    let options = start.options;
    let log = RebalanceLog {
        events: Default::default(),
        metrics: start.metrics.clone(),
    };
    let mut config = consumer_config(brokers, &options.group);
    config
        .set("enable.auto.offset.store", "false")
        .set("session.timeout.ms", "10000")
        .set("statistics.interval.ms", "5000");
    for (key, value) in &options.kafka {
        config.set(key, value);
    }
    let consumer: BaseConsumer<RebalanceLog> = config
        .create_with_context(log)
        .map_err(StreamError::kafka("consumer"))?;
    let topic = options.topic.as_str();
    // Before any message is read: what this run has to read before it may end when idle.
    let start_marks = match options.until_idle {
        Some(_) => high_watermarks(&consumer, topic, None).map_err(StreamError::kafka(format!(
            "the high watermarks of {topic}'s partitions on {brokers}"
        )))?,
        None => BTreeMap::new(),
    };
    consumer
        .subscribe(&[&options.topic])
        .map_err(StreamError::kafka(format!(
            "subscribe to {}",
            options.topic
        )))?;
    let settings = &options.settings;
    let validator =
        Validator::new(settings.limits.clone(), settings.now).map_err(StreamError::from)?;
    let consumer = Arc::new(consumer);
    let (poller, link, mut polled) = Poller::start(consumer.clone(), &options.topic, validator)?;
    let ctx = Ctx {
        options,
        catalog: start.catalog,
        source: &link,
        metrics: start.metrics,
    };
    let mut state = Consumption::new(ctx, start.report, start.committer);
    let mut last_message = Instant::now();
    let mut idle_wait = Duration::ZERO;
    let mut stall = None;
    // The quiet spell whose wait was logged (its start).
    let mut noted_wait = None;
    let tick = options.batch_interval.min(Duration::from_millis(200));
    // One timer for the whole run: a fresh sleep per wake-up would cost a timer-wheel entry.
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    'outer: loop {
        start.metrics.tick();
        let in_flight = state.committer.in_flight() > 0;
        let wake = tokio::select! {
            polled = polled.recv() => Wake::Polled(polled),
            answer = state.committer.next(), if in_flight => Wake::Committed(answer),
            _ = ticker.tick() => Wake::Tick,
            _ = &mut shutdown => Wake::Shutdown,
        };
        let ticked = matches!(wake, Wake::Tick);
        let mut next = match wake {
            Wake::Polled(Some(polled)) => Some(polled),
            Wake::Polled(None) => return Err(SourceError::ReaderStopped.into()),
            Wake::Committed(answer) => {
                if let Some(answer) = answer {
                    let (done, retries) = answer?;
                    state.answered(done, retries);
                }
                None
            }
            Wake::Tick => None,
            Wake::Shutdown => {
                info!("shutting down: committing what was consumed");
                break;
            }
        };
        let mut taken = 0;
        while let Some(item) = next.take() {
            match item {
                Polled::Records(chunk) => {
                    let flow = state.fold(&chunk).await?;
                    link.recycle(chunk);
                    if flow == Flow::Abort {
                        // A crash stand-in: nothing more is committed, queued commits included.
                        break 'outer;
                    }
                    last_message = Instant::now();
                }
                Polled::Rebalance((assigned, partitions)) => {
                    // Joining a group takes seconds: idleness counts from the last rebalance.
                    last_message = Instant::now();
                    if assigned {
                        state.assigned(partitions).await?;
                    } else {
                        state.revoked(partitions);
                    }
                }
                Polled::Sought {
                    partition,
                    epoch,
                    result,
                } => state.sought(partition, epoch, result)?,
                Polled::ConsumerError(error) => {
                    // Broker errors reach the consumer as messages; librdkafka retries them
                    // itself (a fetch timing out, a broker down): note them and go on.
                    warn!(%error, "kafka consumer error; librdkafka retries");
                    state.report.consumer_errors += 1;
                }
                Polled::Failed(error) => return Err(error.into()),
                // A consumer group's partitions have no end.
                Polled::Ended(_) | Polled::Drained => {}
            }
            taken += 1;
            if taken < RUN_OF_CHUNKS {
                // Only what is ready: an empty queue ends the run.
                next = polled.try_recv().ok();
            }
        }
        state.commit_due(ticked).await?;
        let Some(idle) = options.until_idle else {
            continue;
        };
        let quiet = last_message.elapsed();
        if quiet < idle {
            continue;
        }
        // Holding nothing is a rebalance under way, or other members holding every partition;
        // a held partition short of its mark at the start is a fetch that has not come yet.
        // Either may end a while later, or never.
        let behind = behind(&state, &start_marks);
        if !state.owned.is_empty() && behind.is_empty() {
            info!("idle: ending the input of every partition");
            idle_wait = quiet;
            state.end_inputs().await?;
            break;
        }
        let limit = idle.max(STALL_LIMIT);
        if quiet >= limit {
            idle_wait = quiet;
            stall = Some(match state.owned.is_empty() {
                true => Stall::NoAssignment,
                false => Stall::Backlog(behind),
            });
            break;
        }
        if noted_wait != Some(last_message) {
            noted_wait = Some(last_message);
            info!(
                held = state.owned.len(),
                behind = behind.len(),
                limit_secs = limit.as_secs(),
                "idle, but holding no partition or short of the start's high watermarks: waiting"
            );
        }
    }
    poller.stop(polled);
    let mut lag = BTreeMap::new();
    let mut busy_seconds = None;
    if !state.report.aborted {
        // A stalled run commits what it read, as on shutdown: ending the inputs would close
        // windows whose events are still unread.
        state.commit_everything().await?;
        // Throughput is measured up to here, without the watermark requests below.
        busy_seconds = Some(state.busy_seconds(idle_wait));
        state.unreported.report_to(start.metrics);
        lag = held_lag(&consumer, &state, topic, &start_marks);
        consumer.unsubscribe();
    }
    let held = state.owned.len();
    let mut report = finish(state, start.started, idle_wait);
    report.lag = lag;
    if let Some(busy_seconds) = busy_seconds {
        report.busy_seconds = busy_seconds;
    }
    let (brokers, topic, waited_secs) = (brokers.to_owned(), topic.to_owned(), idle_wait.as_secs());
    match stall {
        None => Ok(report),
        Some(Stall::NoAssignment) => Err(StreamError::NoAssignment {
            brokers,
            topic,
            group: options.group.clone(),
            partitions_at_start: start_marks.len(),
            waited_secs,
            report: Box::new(report),
        }),
        Some(Stall::Backlog(behind)) => {
            warn!(held, "stopping with a backlog");
            Err(StreamError::StoppedWithBacklog {
                brokers,
                topic,
                waited_secs,
                behind,
                report: Box::new(report),
            })
        }
    }
}

/// The partitions this consumer holds that are short of their high watermark at the start, in
/// what it read or what the catalog had committed for them (a partition made since had
/// nothing then).
fn behind(state: &Consumption<'_>, start_marks: &BTreeMap<i32, i64>) -> Vec<Behind> {
    held(state)
        .into_iter()
        .filter_map(|partition| {
            let high_at_start = start_marks.get(&partition).copied().unwrap_or(0);
            let run = state.runs.get(&partition);
            // Offsets the catalog committed count as read: a partition reopened from an older
            // snapshot replays only when a message comes, and none may come after them.
            let read = run.is_some_and(|run| run.next.max(run.replay_until) >= high_at_start);
            (!read).then_some(Behind {
                partition,
                next: run.map(|run| run.next),
                high_at_start,
            })
        })
        .collect()
}

/// The partitions this consumer holds, in order.
fn held(state: &Consumption<'_>) -> Vec<i32> {
    let mut held: Vec<i32> = state.owned.iter().copied().collect();
    held.sort_unstable();
    held
}

/// Per partition held at the end: its high watermark now less the offset committed for it
/// (against the start's watermark when the broker does not answer; none when neither is
/// known, or the partition was fenced off and not reopened).
fn held_lag(
    consumer: &BaseConsumer<RebalanceLog>,
    state: &Consumption<'_>,
    topic: &str,
    start_marks: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, i64> {
    let held = held(state);
    let now = high_watermarks(consumer, topic, Some(&held)).unwrap_or_else(|error| {
        warn!(%error, "high watermarks at the end unknown: lag against those at the start");
        BTreeMap::new()
    });
    held.into_iter()
        .filter_map(|partition| {
            let high = now.get(&partition).or(start_marks.get(&partition))?;
            let run = state.runs.get(&partition)?;
            let committed = run.committed.unwrap_or(run.next);
            Some((partition, (high - committed).max(0)))
        })
        .collect()
}
