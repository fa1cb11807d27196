//! What stops a benchmark: the stages it drives, or a measurement that cannot be trusted.

use std::path::PathBuf;
use std::process::ExitStatus;

use rdkafka::error::KafkaError;

use crate::curate::CurateError;
use crate::events::validate::LimitsError;
use crate::sources::simulator::SimulatorError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Simulator(#[from] SimulatorError),
    #[error(transparent)]
    Limits(#[from] LimitsError),
    #[error(transparent)]
    Curate(#[from] CurateError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Both parsers must read every record to the same events, or the fast path is wrong.
    #[error("the fast path and serde_json disagree on this input")]
    FastPathDisagrees,
    #[error("a scratch database beside the catalog: {0}")]
    ScratchDatabase(#[source] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(
        "the mock broker dropped the first {low} messages of {topic}/{partition} (it keeps \
         5 MiB a partition): use more --partitions or a shorter stream"
    )]
    BrokerDropped {
        topic: String,
        partition: i32,
        low: i64,
    },
    /// A loop that read fewer messages than were produced measured something else.
    #[error("{reader} read {read} of {expected} messages")]
    ShortRead {
        reader: &'static str,
        read: u64,
        expected: u64,
    },
    #[error("running `social-reward ingest`: {0}")]
    Child(#[source] std::io::Error),
    #[error("`social-reward ingest` exited with {0}")]
    ChildFailed(ExitStatus),
    #[error("`social-reward ingest` printed no report: {0}")]
    Report(#[source] serde_json::Error),
}
