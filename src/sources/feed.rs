//! What every partitioned source hands the partition driver: records read on a thread of the
//! source's own, copied into chunks and parsed there (the half of intake that needs no memory of
//! other events), in order, together with the marks that say where a partition's records come
//! from (seeks, rebalances, ends). Kafka's poll thread and the files' reading thread both feed
//! it; the driver folds the chunks in and asks the source for seeks through [`PartitionSource`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rdkafka::error::KafkaError;
use self_cell::self_cell;
use tokio::sync::mpsc;
use tracing::warn;

use crate::events::{Parsed, SourcePosition, Validator, parse_record};

use super::SourceError;

/// A chunk is handed over at this many records or bytes, or as soon as the source has nothing
/// more at hand: big enough that the hand-over costs nothing per record, small enough that
/// little waits between the threads.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSize {
    pub records: usize,
    pub bytes: usize,
}

impl ChunkSize {
    /// A broker hands over what it has fetched, often less than a chunk: small chunks keep the
    /// two threads working together.
    pub const BROKER: Self = Self {
        records: 1024,
        bytes: 256 << 10,
    };
    /// A file always has more at hand: larger chunks make fewer hand-overs, and give the
    /// de-duplication's prefetch (`Intake::prefetch`) a longer run to overlap its misses over.
    pub const FILE: Self = Self {
        records: 8192,
        bytes: 1 << 20,
    };
}

/// Chunks (and marks) waiting for the driver before reading pauses: bounds the memory between
/// the two threads (8 chunks of 4,096 messages, with their buffers kept for reuse, were 30 MB
/// of peak memory more than a loop without a reading thread).
const QUEUE: usize = 4;

/// (assigned rather than revoked, the partitions).
pub type RebalanceEvent = (bool, Vec<i32>);

/// What a source's reading thread hands the driver, in order.
pub enum Polled {
    Records(Chunk),
    Rebalance(RebalanceEvent),
    /// Every later record of `partition` comes from the seek asked for by its opening `epoch`
    /// (`Err`: the seek failed, and nothing moved).
    Sought {
        partition: i32,
        epoch: u64,
        result: Result<(), SourceError>,
    },
    /// A broker error librdkafka reported and retries on its own.
    ConsumerError(KafkaError),
    /// `partition` was read to its end (a file).
    Ended(i32),
    /// Every partition was read to its end, and every seek asked for before was made (files).
    /// A seek asked for later is still made: its mark, its records and another `Drained`
    /// follow, so a driver that waits on a seek's mark goes on past this one.
    Drained,
    /// The source cannot go on.
    Failed(SourceError),
}

/// What the driver asks of the source it reads.
pub trait PartitionSource {
    /// Asks for `partition` to be read from `offset` on; a [`Polled::Sought`] mark for `epoch`
    /// follows, and the partition's records after it come from there.
    fn seek(&self, partition: i32, offset: i64, epoch: u64);
    /// The first offset `partition` still holds.
    fn low_watermark(&self, partition: i32) -> Result<i64, SourceError>;
    /// Hands a folded chunk's buffers back to the reading thread.
    fn recycle(&self, chunk: Chunk);
    /// Where a record was read, for its dead letter.
    fn position(&self, partition: i32, offset: i64) -> SourcePosition;
    /// The next offsets of partitions whose records up to there the catalog has committed.
    /// The catalog's offsets are what a restart goes by; a source may show these to its own
    /// tools (Kafka's consumer-group lag).
    fn acknowledge(&self, committed: &[(i32, i64)]);
}

/// Records as read, payloads back to back.
pub struct ChunkBytes {
    size: ChunkSize,
    bytes: Vec<u8>,
    /// Per record: partition, offset, where its payload ends in `bytes`, and its true length.
    records: Vec<(i32, i64, usize, u64)>,
}

impl ChunkBytes {
    fn new(size: ChunkSize) -> Self {
        Self {
            size,
            bytes: Vec::with_capacity(size.bytes + 4096),
            records: Vec::with_capacity(size.records),
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }

    /// Adds a record: `payload` may be a prefix of a longer one, whose true length is `raw_len`.
    pub fn push(&mut self, partition: i32, offset: i64, payload: &[u8], raw_len: u64) {
        self.bytes.extend_from_slice(payload);
        self.records
            .push((partition, offset, self.bytes.len(), raw_len));
    }

    pub fn is_full(&self) -> bool {
        self.bytes.len() >= self.size.bytes || self.records.len() >= self.size.records
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// One record and what parsing made of it.
pub struct FedRecord<'a> {
    pub partition: i32,
    pub offset: i64,
    pub payload: &'a [u8],
    pub raw_len: u64,
    pub parsed: Parsed<'a>,
}

type FedRecords<'a> = Vec<FedRecord<'a>>;

self_cell!(
    /// A chunk of records with their parses, which borrow its bytes.
    pub struct Chunk {
        owner: ChunkBytes,
        #[covariant]
        dependent: FedRecords,
    }
);

impl Chunk {
    pub fn records(&self) -> &[FedRecord<'_>] {
        self.borrow_dependent()
    }

    /// Parses every record of `bytes`.
    pub fn parse(bytes: ChunkBytes, validator: &Validator) -> Self {
        Self::new(bytes, |bytes| {
            let mut start = 0;
            bytes
                .records
                .iter()
                .map(|&(partition, offset, end, raw_len)| {
                    let payload = &bytes.bytes[start..end];
                    start = end;
                    FedRecord {
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
}

/// Chunks the driver is done with, for the reading thread to fill again: a chunk's buffer is
/// big enough that the allocator would otherwise map and unmap it, or scatter its pages, every
/// time.
pub struct Spares {
    size: ChunkSize,
    kept: Mutex<Vec<ChunkBytes>>,
}

impl Spares {
    fn new(size: ChunkSize) -> Self {
        Self {
            size,
            kept: Mutex::new(Vec::new()),
        }
    }

    pub fn take(&self) -> ChunkBytes {
        let spare = self.kept.lock().ok().and_then(|mut spares| spares.pop());
        spare.unwrap_or_else(|| ChunkBytes::new(self.size))
    }

    pub fn give(&self, chunk: Chunk) {
        let mut bytes = chunk.into_owner();
        bytes.clear();
        if let Ok(mut spares) = self.kept.lock()
            && spares.len() < QUEUE + 2
        {
            spares.push(bytes);
        }
    }
}

/// The driver's end of a source's reading thread: stops the thread when dropped.
pub struct ReadingThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReadingThread {
    /// Runs `read` on a thread named `name`, handing over to the receiver returned; the spares
    /// are where the driver gives folded chunks back (`PartitionSource::recycle`).
    pub fn spawn(
        name: &str,
        size: ChunkSize,
        validator: Validator,
        read: impl FnOnce(Handover) + Send + 'static,
    ) -> std::io::Result<(Self, Arc<Spares>, mpsc::Receiver<Polled>)> {
        let (out, receiver) = mpsc::channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let spares = Arc::new(Spares::new(size));
        let handover = Handover {
            out,
            stop: stop.clone(),
            spares: spares.clone(),
            validator,
        };
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || read(handover))?;
        let reading = Self {
            stop,
            thread: Some(thread),
        };
        Ok((reading, spares, receiver))
    }

    /// Stops reading and waits for the thread (at most one read's wait). Chunks not taken yet
    /// are dropped: their records were not folded in, so nothing of them is committed.
    pub fn stop(mut self, receiver: mpsc::Receiver<Polled>) {
        self.stop.store(true, Ordering::Release);
        drop(receiver);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ReadingThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The reading thread's end: parses what it read and hands it over, in order.
pub struct Handover {
    out: mpsc::Sender<Polled>,
    stop: Arc<AtomicBool>,
    spares: Arc<Spares>,
    validator: Validator,
}

impl Handover {
    /// The driver asked the thread to stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// A record longer than this is a dead letter whatever it holds: keep only a prefix.
    pub fn max_record(&self) -> usize {
        self.validator.limits().max_payload_bytes
    }

    /// An empty chunk to read into.
    pub fn chunk(&self) -> ChunkBytes {
        self.spares.take()
    }

    /// Parses and hands over what the chunk holds; `false` once the driver is gone.
    pub fn flush(&self, chunk: &mut ChunkBytes) -> bool {
        if chunk.is_empty() {
            return true;
        }
        let full = std::mem::replace(chunk, self.spares.take());
        self.send(Polled::Records(Chunk::parse(full, &self.validator)))
    }

    /// The driver dropped its receiver: nothing sent would be read.
    pub fn driver_gone(&self) -> bool {
        self.out.is_closed()
    }

    /// `false` once the driver is gone.
    pub fn send(&self, polled: Polled) -> bool {
        match self.out.blocking_send(polled) {
            Ok(()) => true,
            Err(_) => {
                if !self.stopping() {
                    warn!("the driver is gone; reading stops");
                }
                false
            }
        }
    }
}
