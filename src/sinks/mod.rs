//! Where events go: JSON-lines files, a Kafka topic (the producer), and the dead-letter topic.

pub mod jsonl;
pub mod kafka;

pub use jsonl::LineSink;

/// Where generated lines go. `key` is the creator id, the partitioning key on Kafka.
pub trait EventSink {
    type Error;
    fn deliver(&mut self, key: &str, line: &[u8]) -> Result<(), Self::Error>;
}
