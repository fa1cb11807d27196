//! Kafka, producer side: the simulator's events as messages keyed by creator id, so that one
//! creator's generation sessions land in one partition (their windows then close in one
//! consumer). The producer is idempotent (`enable.idempotence`: acks from all in-sync replicas,
//! no duplicates or reordering on retry), and every delivery is confirmed before `finish`
//! returns: a message the broker did not take is an error, never a silent loss. A missing topic
//! is created before the first message (see `ensure_topic`). The streaming consumer's dead
//! letters are copied to a topic of their own (`dead_letters`).

mod dead_letters;

pub use dead_letters::DeadLetterTopic;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use tracing::info;

use super::EventSink;

/// Where and how to produce.
#[derive(Debug, Clone)]
pub struct KafkaTarget {
    pub brokers: String,
    pub topic: String,
    /// Produce at most this many messages a second (a live-looking stream for crash checks
    /// against a broker that hands a consumer everything it holds at once); `None`: no limit.
    pub per_second: Option<u64>,
    /// How the topic is made if the brokers do not have it; an existing topic is left as it is.
    pub create: TopicLayout,
}

/// Partitions and replication of a topic the producer creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLayout {
    pub partitions: i32,
    pub replication_factor: i32,
}

impl Default for TopicLayout {
    /// Eight partitions leave room for several consumers of a group; one replica is all a
    /// single test broker has.
    fn default() -> Self {
        Self {
            partitions: 8,
            replication_factor: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaSinkError {
    #[error("kafka producer: {0}")]
    Client(#[from] KafkaError),
    #[error("{failed} of {sent} messages were not delivered to {topic}; first error: {first}")]
    Undelivered {
        topic: String,
        sent: u64,
        failed: u64,
        first: String,
    },
    /// Boxed: every stage's error holds this one, and is returned on every path.
    #[error(transparent)]
    Topic(#[from] Box<TopicError>),
}

/// The topic to produce to could not be looked up, or was missing and could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("reading the metadata of topic {topic} from {brokers}: {source}")]
    Metadata {
        brokers: String,
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error(
        "topic {topic} does not exist on {brokers} and creating it ({partitions} partitions, \
         replication factor {replication_factor}) failed: {reason}; create it first, e.g. \
         `kafka-topics --bootstrap-server {brokers} --create --topic {topic} --partitions \
         {partitions} --replication-factor {replication_factor}` or `tansu topic create {topic} \
         --partitions {partitions} --broker tcp://{}`",
        first_broker(.brokers)
    )]
    NotCreated {
        brokers: String,
        topic: String,
        partitions: i32,
        replication_factor: i32,
        reason: String,
    },
}

/// tansu's `--broker` takes one address.
fn first_broker(brokers: &str) -> &str {
    brokers.split(',').next().unwrap_or(brokers).trim()
}

/// Counts confirmed and failed deliveries (librdkafka reports them on its own thread).
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

#[derive(Clone, Default)]
struct DeliveryCounter(Arc<Deliveries>);

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.0.first_error.lock() {
                    first.get_or_insert_with(|| {
                        format!(
                            "{error} (partition {}, key {:?})",
                            message.partition(),
                            message.key().map(String::from_utf8_lossy)
                        )
                    });
                }
            }
        }
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryCounter>,
    counter: DeliveryCounter,
    topic: String,
    sent: u64,
    per_second: Option<u64>,
    started: std::time::Instant,
}

/// How long `finish` waits for the last acknowledgements.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the topic's metadata, and its creation, may take each.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether `ensure_topic` found the topic or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicStatus {
    Existed,
    Created,
}

/// Creates the target's topic if the brokers do not have it. Without this, a broker that does
/// not create topics on produce (tansu) fails every message, and only once all were tried; one
/// that does gives the topic its own default layout.
pub fn ensure_topic(target: &KafkaTarget) -> Result<TopicStatus, KafkaSinkError> {
    let (brokers, topic) = (&target.brokers, &target.topic);
    let metadata_error = |source| {
        KafkaSinkError::from(Box::new(TopicError::Metadata {
            brokers: brokers.clone(),
            topic: topic.clone(),
            source,
        }))
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // A producer's metadata request creates a missing topic on brokers that allow it, with
        // their defaults: the probe must see it missing.
        .set("allow.auto.create.topics", "false")
        .create()?;
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
        .map_err(metadata_error)?;
    let listed = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic.as_str())
        .map(|t| t.error());
    match listed {
        Some(None) => return Ok(TopicStatus::Existed),
        None | Some(Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)) => {}
        Some(Some(other)) => return Err(metadata_error(KafkaError::MetadataFetch(other.into()))),
    }
    let layout = target.create;
    info!(
        topic = %topic,
        brokers = %brokers,
        partitions = layout.partitions,
        replication_factor = layout.replication_factor,
        "the topic does not exist: creating it"
    );
    let new_topic = NewTopic::new(
        topic,
        layout.partitions,
        TopicReplication::Fixed(layout.replication_factor),
    );
    let options = AdminOptions::new()
        .operation_timeout(Some(ADMIN_TIMEOUT))
        .request_timeout(Some(ADMIN_TIMEOUT));
    // The admin client answers on its own thread: no async runtime is needed to wait.
    let answer = futures::executor::block_on(admin.create_topics([&new_topic], &options));
    let refused = |reason: String| {
        KafkaSinkError::from(Box::new(TopicError::NotCreated {
            brokers: brokers.clone(),
            topic: topic.clone(),
            partitions: layout.partitions,
            replication_factor: layout.replication_factor,
            reason,
        }))
    };
    for result in answer.map_err(|e| refused(e.to_string()))? {
        match result {
            Ok(_) => {}
            // Another producer made it meanwhile: it exists, as asked.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => return Ok(TopicStatus::Existed),
            Err((_, code)) => return Err(refused(code.to_string())),
        }
    }
    Ok(TopicStatus::Created)
}

impl KafkaSink {
    /// Makes the topic if it is missing (`ensure_topic`), then a producer for it.
    pub fn connect(target: &KafkaTarget) -> Result<Self, KafkaSinkError> {
        ensure_topic(target)?;
        let counter = DeliveryCounter::default();
        let producer: ThreadedProducer<DeliveryCounter> = ClientConfig::new()
            .set("bootstrap.servers", &target.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "500000")
            .set("queue.buffering.max.kbytes", "262144")
            .set("compression.type", "lz4")
            // Keys decide partitions with the Java client's murmur2, so other producers and
            // tools agree with this one on where a creator's events live.
            .set("partitioner", "murmur2_random")
            .create_with_context(counter.clone())?;
        Ok(Self {
            producer,
            counter,
            topic: target.topic.clone(),
            sent: 0,
            per_second: target.per_second.filter(|&n| n > 0),
            started: std::time::Instant::now(),
        })
    }

    /// Sends one message, waiting while librdkafka's queue is full.
    pub fn send(&mut self, key: &str, payload: &[u8]) -> Result<(), KafkaSinkError> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        self.sent += 1;
        if let Some(rate) = self.per_second {
            let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        Ok(())
    }

    /// Waits for every acknowledgement; errors if any message was not delivered.
    pub fn finish(self) -> Result<u64, KafkaSinkError> {
        self.producer.flush(FLUSH_TIMEOUT)?;
        let deliveries = &self.counter.0;
        let failed = deliveries.failed.load(Ordering::Relaxed);
        let delivered = deliveries.delivered.load(Ordering::Relaxed);
        if failed > 0 || delivered != self.sent {
            let first = deliveries
                .first_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| format!("{delivered} acknowledged"));
            return Err(KafkaSinkError::Undelivered {
                topic: self.topic.clone(),
                sent: self.sent,
                failed: self.sent - delivered,
                first,
            });
        }
        Ok(self.sent)
    }
}

impl EventSink for KafkaSink {
    type Error = KafkaSinkError;
    fn deliver(&mut self, key: &str, line: &[u8]) -> Result<(), KafkaSinkError> {
        // One event per message: the line without its newline.
        let payload = line.strip_suffix(b"\n").unwrap_or(line);
        self.send(key, payload)
    }
}
