//! The consumer's own thread: librdkafka is polled here, payloads are copied into chunks and
//! parsed (the half of intake that needs no memory of other events), and the chunks go to the
//! consumer loop together with rebalances and seeks, in the order they happened.
//!
//! With polling, parsing and folding on one task, the loop did all of it one message at a time
//! while librdkafka's threads waited on it; now parsing overlaps polling and folding. Seeks are
//! made here, between polls, so the loop knows exactly which messages come after one: those
//! behind its `Sought` mark.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::warn;

use crate::events::{SourcePosition, Validator};
use crate::sources::SourceError;
use crate::sources::feed::{
    Chunk, ChunkSize, Handover, PartitionSource, Polled, ReadingThread, Spares,
};
use crate::sources::mailbox::Mailbox;

use super::context::RebalanceLog;

/// How long one poll waits when nothing is fetched: how soon a stop is noticed.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// Seeks the loop asked for (partition, offset, epoch), made by the poll thread between two
/// polls.
type SeekRequests = Mailbox<(i32, i64, u64)>;

/// The loop's handle on the consumer the poll thread polls.
pub struct ConsumerLink {
    consumer: Arc<BaseConsumer<RebalanceLog>>,
    topic: String,
    seeks: Arc<SeekRequests>,
    spares: Arc<Spares>,
}

impl PartitionSource for ConsumerLink {
    fn seek(&self, partition: i32, offset: i64, epoch: u64) {
        self.seeks.post((partition, offset, epoch));
    }

    fn low_watermark(&self, partition: i32) -> Result<i64, SourceError> {
        let topic = self.topic.as_str();
        let (low, _) = self
            .consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(|source| SourceError::Kafka {
                what: format!("the watermarks of {topic}/{partition}"),
                source,
            })?;
        Ok(low)
    }

    fn recycle(&self, chunk: Chunk) {
        self.spares.give(chunk);
    }

    fn acknowledge(&self, committed: &[(i32, i64)]) {
        let mut offsets = TopicPartitionList::new();
        for &(partition, next) in committed {
            let _ = offsets.add_partition_offset(&self.topic, partition, Offset::Offset(next));
        }
        if let Err(error) = self.consumer.commit(&offsets, CommitMode::Async) {
            // Only lag tools read these offsets; the catalog's are authoritative.
            warn!(%error, "kafka offset commit failed");
        }
    }

    fn position(&self, partition: i32, offset: i64) -> SourcePosition {
        SourcePosition::Kafka {
            topic: self.topic.clone(),
            partition,
            offset,
        }
    }
}

/// The consumer's poll thread.
pub struct Poller;

impl Poller {
    /// Starts polling `consumer` (subscribed already) on a thread of its own.
    pub fn start(
        consumer: Arc<BaseConsumer<RebalanceLog>>,
        topic: &str,
        validator: Validator,
    ) -> Result<(ReadingThread, ConsumerLink, mpsc::Receiver<Polled>), SourceError> {
        let seeks = Arc::new(SeekRequests::default());
        let poll = PollThread {
            consumer: consumer.clone(),
            topic: topic.to_owned(),
            seeks: seeks.clone(),
        };
        let (thread, spares, receiver) =
            ReadingThread::spawn("kafka-poll", ChunkSize::BROKER, validator, move |out| {
                poll.run(&out)
            })
            .map_err(|source| SourceError::Thread {
                what: "kafka poll",
                source,
            })?;
        let link = ConsumerLink {
            consumer,
            topic: topic.to_owned(),
            seeks,
            spares,
        };
        Ok((thread, link, receiver))
    }
}

struct PollThread {
    consumer: Arc<BaseConsumer<RebalanceLog>>,
    topic: String,
    seeks: Arc<SeekRequests>,
}

impl PollThread {
    fn run(self, out: &Handover) {
        let mut chunk = out.chunk();
        let max_payload = out.max_record();
        let mut wait = Duration::ZERO;
        while !out.stopping() {
            let seeks = self.seeks.take();
            if !seeks.is_empty() && !out.flush(&mut chunk) {
                return;
            }
            for (partition, offset, epoch) in seeks {
                let result = self
                    .consumer
                    .seek(
                        &self.topic,
                        partition,
                        Offset::Offset(offset),
                        Duration::from_secs(10),
                    )
                    .map_err(|source| SourceError::Kafka {
                        what: format!("the seek of {}/{partition} to {offset}", self.topic),
                        source,
                    });
                let sought = Polled::Sought {
                    partition,
                    epoch,
                    result,
                };
                if !out.send(sought) {
                    return;
                }
            }
            // Without waiting first: an empty queue hands over what the chunk holds.
            let message = self.consumer.poll(wait);
            let rebalances = self.consumer.context().take();
            if !rebalances.is_empty() {
                // What was polled before the rebalance goes first.
                if !out.flush(&mut chunk) {
                    return;
                }
                for event in rebalances {
                    if !out.send(Polled::Rebalance(event)) {
                        return;
                    }
                }
            }
            wait = Duration::ZERO;
            match message {
                None => {
                    if !out.flush(&mut chunk) {
                        return;
                    }
                    wait = POLL_WAIT;
                }
                Some(Ok(message)) => {
                    let payload = message.payload().unwrap_or_default();
                    // Past the limit a record is a dead letter whatever it holds: keep a prefix.
                    let kept = &payload[..payload.len().min(max_payload)];
                    chunk.push(
                        message.partition(),
                        message.offset(),
                        kept,
                        payload.len() as u64,
                    );
                    if chunk.is_full() && !out.flush(&mut chunk) {
                        return;
                    }
                }
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    out.flush(&mut chunk);
                    out.send(Polled::Failed(SourceError::KafkaFatal(code.to_string())));
                    return;
                }
                Some(Err(error)) => {
                    if !out.flush(&mut chunk) || !out.send(Polled::ConsumerError(error)) {
                        return;
                    }
                    // librdkafka retries on its own; no need to spin on the error meanwhile.
                    std::thread::sleep(POLL_WAIT);
                }
            }
        }
    }
}
