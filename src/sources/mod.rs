//! Where events come from: the built-in community simulator, JSON-lines files, and Kafka. Files
//! and Kafka are both partitioned logs that feed the partition driver the same way (`feed`).

pub mod feed;
pub mod file;
pub mod kafka;
mod mailbox;
pub mod simulator;

use std::path::PathBuf;

pub use feed::{Chunk, PartitionSource, Polled};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A thread to read the source on could not start.
    #[error("starting the {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} event files: more than a partition number holds")]
    TooManyFiles(usize),
    #[error("partition {0} was asked for, but no such file was given")]
    NoSuchPartition(i32),
    /// The reading thread went away without saying why (it panicked).
    #[error("the thread reading the events stopped before their end")]
    ReaderStopped,
    #[error("kafka, {what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// librdkafka gave up on the consumer (`MessageConsumptionFatal`).
    #[error("kafka: fatal consumer error {0}")]
    KafkaFatal(String),
}
