//! The consumer's own thread: librdkafka is polled here, payloads are copied into chunks and
//! parsed (the half of intake that needs no memory of other events), and the chunks go to the
//! consumer loop together with rebalances and seeks, in the order they happened.
//!
//! With polling, parsing and folding on one task, the loop did all of it one message at a time
//! while librdkafka's threads waited on it; now parsing overlaps polling and folding. Seeks are
//! made here, between polls, so the loop knows exactly which messages come after one: those
//! behind its `Sought` mark.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use self_cell::self_cell;
use tokio::sync::mpsc;
use tracing::warn;

use crate::events::{Parsed, Validator, parse_record};

use super::context::{RebalanceEvent, RebalanceLog};
use super::mailbox::Mailbox;

/// A chunk is handed over at this many messages or bytes, or as soon as librdkafka has nothing
/// more fetched: big enough that the hand-over costs nothing per message, small enough that
/// little waits between the threads (librdkafka's own queue is the buffer that matters).
const CHUNK_MESSAGES: usize = 1024;
const CHUNK_BYTES: usize = 256 << 10;
/// Chunks (and marks) waiting for the loop before polling pauses: bounds the memory between
/// the two threads (8 chunks of 4,096 messages, with their buffers kept for reuse, were 30 MB
/// of peak memory more than the loop without a poll thread).
const QUEUE: usize = 4;
/// How long one poll waits when nothing is fetched: how soon a stop is noticed.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// What the poll thread hands the loop, in order.
pub(super) enum Polled {
    Messages(PolledChunk),
    Rebalance(RebalanceEvent),
    /// Every later message of `partition` comes from the seek asked for by its opening `epoch`
    /// (`Err`: the seek failed, and nothing moved).
    Sought {
        partition: i32,
        epoch: u64,
        result: Result<(), String>,
    },
    /// A broker error librdkafka reported and retries on its own.
    ConsumerError(KafkaError),
    Fatal(String),
}

/// Messages as polled, payloads back to back.
pub(super) struct ChunkBytes {
    bytes: Vec<u8>,
    /// Per message: partition, offset, where its payload ends in `bytes`, and its true length.
    messages: Vec<(i32, i64, usize, u64)>,
}

impl ChunkBytes {
    fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(CHUNK_BYTES + 4096),
            messages: Vec::with_capacity(CHUNK_MESSAGES),
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.messages.clear();
    }

    fn is_full(&self) -> bool {
        self.bytes.len() >= CHUNK_BYTES || self.messages.len() >= CHUNK_MESSAGES
    }
}

/// One message and what parsing made of it.
pub(super) struct PolledMessage<'a> {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) payload: &'a [u8],
    pub(super) raw_len: u64,
    pub(super) parsed: Parsed<'a>,
}

type PolledMessages<'a> = Vec<PolledMessage<'a>>;

self_cell!(
    /// A chunk of messages with their parses, which borrow its bytes.
    pub(super) struct PolledChunk {
        owner: ChunkBytes,
        #[covariant]
        dependent: PolledMessages,
    }
);

impl PolledChunk {
    pub(super) fn messages(&self) -> &[PolledMessage<'_>] {
        self.borrow_dependent()
    }
}

fn parse(chunk: ChunkBytes, validator: &Validator) -> PolledChunk {
    PolledChunk::new(chunk, |chunk| {
        let mut start = 0;
        chunk
            .messages
            .iter()
            .map(|&(partition, offset, end, raw_len)| {
                let payload = &chunk.bytes[start..end];
                start = end;
                PolledMessage {
                    partition,
                    offset,
                    payload,
                    raw_len,
                    parsed: parse_record(validator, payload, raw_len),
                }
            })
            .collect()
    })
}

/// Chunks the loop is done with, for the poll thread to fill again: a chunk's buffer is big
/// enough that the allocator would otherwise map and unmap it, or scatter its pages, every
/// time.
#[derive(Default)]
struct Spares(Mutex<Vec<ChunkBytes>>);

impl Spares {
    fn take(&self) -> ChunkBytes {
        let spare = self.0.lock().ok().and_then(|mut spares| spares.pop());
        spare.unwrap_or_else(ChunkBytes::new)
    }

    fn give(&self, mut chunk: ChunkBytes) {
        chunk.clear();
        if let Ok(mut spares) = self.0.lock()
            && spares.len() < QUEUE + 2
        {
            spares.push(chunk);
        }
    }
}

/// Seeks the loop asked for (partition, offset, epoch), made by the poll thread between two
/// polls.
type SeekRequests = Mailbox<(i32, i64, u64)>;

/// The loop's handle on the consumer the poll thread polls.
pub(super) struct ConsumerLink {
    pub(super) consumer: Arc<BaseConsumer<RebalanceLog>>,
    seeks: Arc<SeekRequests>,
    spares: Arc<Spares>,
}

impl ConsumerLink {
    /// Hands a folded chunk's buffers back to the poll thread.
    pub(super) fn recycle(&self, chunk: PolledChunk) {
        self.spares.give(chunk.into_owner());
    }

    /// Asks for `partition` to be read from `offset`; a `Polled::Sought` mark follows.
    pub(super) fn seek(&self, partition: i32, offset: i64, epoch: u64) {
        self.seeks.post((partition, offset, epoch));
    }
}

pub(super) struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    /// Starts polling `consumer` (subscribed already) on a thread of its own.
    pub(super) fn start(
        consumer: Arc<BaseConsumer<RebalanceLog>>,
        topic: &str,
        validator: Validator,
    ) -> std::io::Result<(Self, ConsumerLink, mpsc::Receiver<Polled>)> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let seeks = Arc::new(SeekRequests::default());
        let spares = Arc::new(Spares::default());
        let poll = PollThread {
            spares: spares.clone(),
            consumer: consumer.clone(),
            topic: topic.to_owned(),
            max_payload: validator.limits().max_payload_bytes,
            validator,
            seeks: seeks.clone(),
            stop: stop.clone(),
            out: sender,
        };
        let thread = std::thread::Builder::new()
            .name("kafka-poll".into())
            .spawn(move || poll.run())?;
        let poller = Self {
            stop,
            thread: Some(thread),
        };
        let link = ConsumerLink {
            consumer,
            seeks,
            spares,
        };
        Ok((poller, link, receiver))
    }

    /// Stops polling and waits for the thread (at most one poll's wait). Chunks not taken yet
    /// are dropped: their messages were not folded in, so nothing of them is committed.
    pub(super) fn stop(mut self, receiver: mpsc::Receiver<Polled>) {
        self.stop.store(true, Ordering::Release);
        drop(receiver);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

struct PollThread {
    consumer: Arc<BaseConsumer<RebalanceLog>>,
    topic: String,
    validator: Validator,
    max_payload: usize,
    seeks: Arc<SeekRequests>,
    spares: Arc<Spares>,
    stop: Arc<AtomicBool>,
    out: mpsc::Sender<Polled>,
}

impl PollThread {
    fn run(self) {
        let mut chunk = self.spares.take();
        let mut wait = Duration::ZERO;
        while !self.stop.load(Ordering::Acquire) {
            let seeks = self.seeks.take();
            if !seeks.is_empty() && !self.flush(&mut chunk) {
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
                    .map_err(|e| format!("seek partition {partition} to {offset}: {e}"));
                let sought = Polled::Sought {
                    partition,
                    epoch,
                    result,
                };
                if !self.send(sought) {
                    return;
                }
            }
            // Without waiting first: an empty queue hands over what the chunk holds.
            let message = self.consumer.poll(wait);
            let rebalances = self.consumer.context().take();
            if !rebalances.is_empty() {
                // What was polled before the rebalance goes first.
                if !self.flush(&mut chunk) {
                    return;
                }
                for event in rebalances {
                    if !self.send(Polled::Rebalance(event)) {
                        return;
                    }
                }
            }
            wait = Duration::ZERO;
            match message {
                None => {
                    if !self.flush(&mut chunk) {
                        return;
                    }
                    wait = POLL_WAIT;
                }
                Some(Ok(message)) => {
                    let payload = message.payload().unwrap_or_default();
                    // Past the limit a record is a dead letter whatever it holds: keep a prefix.
                    let kept = &payload[..payload.len().min(self.max_payload)];
                    chunk.bytes.extend_from_slice(kept);
                    chunk.messages.push((
                        message.partition(),
                        message.offset(),
                        chunk.bytes.len(),
                        payload.len() as u64,
                    ));
                    if chunk.is_full() && !self.flush(&mut chunk) {
                        return;
                    }
                }
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    self.flush(&mut chunk);
                    self.send(Polled::Fatal(format!("kafka: fatal consumer error {code}")));
                    return;
                }
                Some(Err(error)) => {
                    if !self.flush(&mut chunk) || !self.send(Polled::ConsumerError(error)) {
                        return;
                    }
                    // librdkafka retries on its own; no need to spin on the error meanwhile.
                    std::thread::sleep(POLL_WAIT);
                }
            }
        }
    }

    /// Parses and hands over what the chunk holds; `false` once the loop is gone.
    fn flush(&self, chunk: &mut ChunkBytes) -> bool {
        if chunk.messages.is_empty() {
            return true;
        }
        let full = std::mem::replace(chunk, self.spares.take());
        self.send(Polled::Messages(parse(full, &self.validator)))
    }

    fn send(&self, polled: Polled) -> bool {
        match self.out.blocking_send(polled) {
            Ok(()) => true,
            Err(_) => {
                if !self.stop.load(Ordering::Acquire) {
                    warn!("the consumer loop is gone; polling stops");
                }
                false
            }
        }
    }
}
