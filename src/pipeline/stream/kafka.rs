//! The loop over a Kafka consumer group: messages, rebalances, commit answers, the batch timer
//! and shutdown, in one select. Messages already fetched are taken in runs without going back
//! to the select each time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tracing::{info, warn};

use crate::events::{SourcePosition, Validator};
use crate::pipeline::StageError;
use crate::sources::kafka::consumer_config;

use super::consumption::{Consumption, Flow};
use super::context::RebalanceLog;
use super::partitions::Ctx;
use super::poller::{Polled, PolledChunk, Poller};
use super::{Start, StreamReport, failed, finish};

/// Chunks taken from the poll thread per wake-up of the loop.
const RUN_OF_CHUNKS: usize = 8;

type Answer = Option<Result<(Vec<super::committer::CommitDone>, u64), StageError>>;

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
) -> Result<StreamReport, StageError> {
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
        .map_err(|e| failed(format!("kafka consumer: {e}")))?;
    consumer
        .subscribe(&[&options.topic])
        .map_err(|e| failed(format!("subscribe to {}: {e}", options.topic)))?;
    let settings = &options.settings;
    let validator = Validator::new(settings.limits.clone(), settings.now)?;
    let consumer = Arc::new(consumer);
    let (poller, link, mut polled) = Poller::start(consumer.clone(), &options.topic, validator)
        .map_err(|e| failed(format!("poll thread: {e}")))?;
    let ctx = Ctx {
        options,
        catalog: start.catalog,
        consumer: Some(&link),
        metrics: start.metrics,
    };
    let mut state = Consumption::new(ctx, start.report, start.committer);
    let mut last_message = Instant::now();
    let mut idle_wait = Duration::ZERO;
    let tick = options.batch_interval.min(Duration::from_millis(200));
    // One timer for the whole run: a fresh sleep per wake-up would cost a timer-wheel entry.
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    let topic = options.topic.as_str();
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
            Wake::Polled(None) => return Err(failed("the kafka poll thread stopped")),
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
                Polled::Messages(chunk) => {
                    let flow = fold_chunk(&mut state, &chunk, topic).await?;
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
                Polled::Fatal(message) => return Err(failed(message)),
            }
            taken += 1;
            if taken < RUN_OF_CHUNKS {
                // Only what is ready: an empty queue ends the run.
                next = polled.try_recv().ok();
            }
        }
        state.commit_due(ticked).await?;
        // Holding nothing is a rebalance under way (or more consumers than partitions): ending
        // now would leave the partitions about to come unfinished, so wait longer — a consumer
        // that is never given one still ends.
        let holds_partitions = !state.owned.is_empty();
        let idle_after = |idle: Duration| match holds_partitions {
            true => idle,
            false => idle + Duration::from_secs(30),
        };
        if options
            .until_idle
            .is_some_and(|idle| last_message.elapsed() >= idle_after(idle))
        {
            info!("idle: ending the input of every partition");
            idle_wait = last_message.elapsed();
            state.end_inputs().await?;
            break;
        }
    }
    poller.stop(polled);
    if !state.report.aborted {
        state.commit_everything().await?;
        state.unreported.report_to(start.metrics);
        consumer.unsubscribe();
    }
    Ok(finish(state, start.started, idle_wait))
}

/// Folds a chunk's messages in, in order.
async fn fold_chunk(
    state: &mut Consumption<'_>,
    chunk: &PolledChunk,
    topic: &str,
) -> Result<Flow, StageError> {
    for message in chunk.messages() {
        let (partition, offset) = (message.partition, message.offset);
        let position = || SourcePosition::Kafka {
            topic: topic.to_owned(),
            partition,
            offset,
        };
        // Borrowed text makes the copy a few words; only a rejection's message is copied.
        let taken = (message.payload, message.raw_len, message.parsed.clone());
        if state.take(partition, offset, taken, position).await? == Flow::Abort {
            return Ok(Flow::Abort);
        }
        state.commit_full().await?;
    }
    Ok(Flow::Go)
}
