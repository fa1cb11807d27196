//! The loop over a Kafka consumer group: messages, rebalances, commit answers, the batch timer
//! and shutdown, in one select. Messages already fetched are taken in runs without going back
//! to the select each time.

use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::StreamExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use tracing::{info, warn};

use crate::events::SourcePosition;
use crate::pipeline::StageError;

use super::consumption::{Consumption, Flow};
use super::context::RebalanceLog;
use super::partitions::Ctx;
use super::{Start, StreamReport, failed, finish};

/// Messages taken from librdkafka's queue per wake-up of the loop.
const RUN_OF_MESSAGES: usize = 2048;

type Answer = Option<Result<(Vec<super::committer::CommitDone>, u64), StageError>>;

enum Wake<'m> {
    Message(Result<BorrowedMessage<'m>, KafkaError>),
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
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", &options.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("statistics.interval.ms", "5000")
        .set("fetch.queue.backoff.ms", "50");
    for (key, value) in &options.kafka {
        config.set(key, value);
    }
    let consumer: StreamConsumer<RebalanceLog> = config
        .create_with_context(log.clone())
        .map_err(|e| failed(format!("kafka consumer: {e}")))?;
    consumer
        .subscribe(&[&options.topic])
        .map_err(|e| failed(format!("subscribe to {}: {e}", options.topic)))?;
    let ctx = Ctx {
        options,
        catalog: start.catalog,
        consumer: Some(&consumer),
        metrics: start.metrics,
    };
    let mut state = Consumption::new(ctx, start.report, start.committer);
    let mut last_message = Instant::now();
    let mut idle_wait = Duration::ZERO;
    let tick = options.batch_interval.min(Duration::from_millis(200));
    // One timer for the whole run: a fresh sleep per wake-up would cost a timer-wheel entry.
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // One stream for the whole run: `recv()` registers and drops a waker slot every call.
    let mut messages = consumer.stream();
    tokio::pin!(shutdown);
    let topic = options.topic.as_str();
    'outer: loop {
        start.metrics.tick();
        let in_flight = state.committer.in_flight() > 0;
        let wake = tokio::select! {
            message = messages.next() => match message {
                Some(message) => Wake::Message(message),
                None => Wake::Tick,
            },
            answer = state.committer.next(), if in_flight => Wake::Committed(answer),
            _ = ticker.tick() => Wake::Tick,
            _ = &mut shutdown => Wake::Shutdown,
        };
        for (assigned, partitions) in log.take() {
            // Joining a group takes seconds: idleness counts from the last rebalance event.
            last_message = Instant::now();
            if assigned {
                state.assigned(partitions).await?;
            } else {
                state.revoked(partitions);
            }
        }
        let ticked = matches!(wake, Wake::Tick);
        let mut next = match wake {
            Wake::Message(message) => Some(message),
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
        while let Some(message) = next.take() {
            match message {
                Err(KafkaError::MessageConsumptionFatal(code)) => {
                    return Err(failed(format!("kafka: fatal consumer error {code}")));
                }
                Err(error) => {
                    // Broker errors reach the consumer as messages; librdkafka retries them
                    // itself (a fetch timing out, a broker down): note them and go on.
                    warn!(%error, "kafka consumer error; librdkafka retries");
                    state.report.consumer_errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                Ok(message) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    let payload = message.payload().unwrap_or_default();
                    let position = || SourcePosition::Kafka {
                        topic: topic.to_owned(),
                        partition,
                        offset,
                    };
                    let len = payload.len() as u64;
                    let flow = state
                        .take(partition, offset, payload, len, position)
                        .await?;
                    if flow == Flow::Abort {
                        // A crash stand-in: nothing more is committed, queued commits included.
                        break 'outer;
                    }
                }
            }
            taken += 1;
            if taken < RUN_OF_MESSAGES {
                // Only what is already fetched; a rebalance or an empty queue ends the run.
                next = messages.next().now_or_never().flatten();
            }
        }
        if taken > 0 {
            last_message = Instant::now();
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
    drop(messages);
    if !state.report.aborted {
        state.commit_everything().await?;
        state.unreported.report_to(start.metrics);
        consumer.unsubscribe();
    }
    Ok(finish(state, start.started, idle_wait))
}
