//! How a streaming run ends without reaching its end.

use std::net::SocketAddr;

use rdkafka::error::KafkaError;

use crate::curate::CurateError;
use crate::events::validate::LimitsError;
use crate::sinks::kafka::KafkaSinkError;
use crate::sources::SourceError;
use crate::store::{CatalogError, ObjectError};

use super::report::{Behind, StreamReport};

impl StreamError {
    pub(super) fn kafka(what: impl Into<String>) -> impl FnOnce(KafkaError) -> Self {
        let what = what.into();
        move |source| Self::Kafka { what, source }
    }
}

/// What to check when nothing was assigned: a topic without partitions is most likely one that
/// was never made (a consumer started before the producer).
fn no_assignment_hint(partitions_at_start: usize, topic: &str, brokers: &str) -> String {
    if partitions_at_start == 0 {
        format!(
            "does topic {topic} exist on {brokers}? (`social-reward simulate --to-kafka \
             {brokers} --topic {topic}` creates it)"
        )
    } else {
        format!(
            "is the group coordinator on {brokers} reachable? do other members of the group \
             hold all the partitions?"
        )
    }
}

/// How a run ended without reaching its end: for the `until_idle` stalls, the report says what
/// it did before.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// Reading the event files.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Curating a partition, its state snapshots included.
    #[error(transparent)]
    Curate(#[from] CurateError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Writing triplet files.
    #[error(transparent)]
    Objects(#[from] ObjectError),
    /// The consumer: creating it, subscribing, reading watermarks.
    #[error("kafka {what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: KafkaError,
    },
    #[error("the commit task stopped")]
    CommitterStopped,
    #[error("dead-letter topic {topic}: {source}")]
    DeadLetterTopic {
        topic: String,
        #[source]
        source: KafkaSinkError,
    },
    #[error("metrics address {addr}: {source}")]
    MetricsAddress {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `until_idle`: nothing to read, because nothing was handed to this consumer.
    #[error(
        "no partition of {topic} ({partitions_at_start} at the start) was assigned to \
         this member of group {group} in {waited_secs} s; {}",
        no_assignment_hint(*.partitions_at_start, .topic, .brokers)
    )]
    NoAssignment {
        brokers: String,
        topic: String,
        group: String,
        partitions_at_start: usize,
        waited_secs: u64,
        report: Box<StreamReport>,
    },
    /// `until_idle`: messages stopped coming while partitions this consumer holds were short of
    /// where they were when it started.
    #[error(
        "stopped with a backlog on {topic}: no message for {waited_secs} s while {} (are the \
         partitions' leaders on {brokers} reachable?)",
        behind_text(.behind)
    )]
    StoppedWithBacklog {
        brokers: String,
        topic: String,
        waited_secs: u64,
        behind: Vec<Behind>,
        report: Box<StreamReport>,
    },
}

impl StreamError {
    /// What the run did before it stopped (with its lag), for the errors that end a run.
    pub fn report(&self) -> Option<&StreamReport> {
        match self {
            Self::NoAssignment { report, .. } | Self::StoppedWithBacklog { report, .. } => {
                Some(report.as_ref())
            }
            _ => None,
        }
    }
}

fn behind_text(behind: &[Behind]) -> String {
    let parts: Vec<String> = behind
        .iter()
        .map(|b| match b.next {
            Some(next) => format!(
                "partition {} was read to offset {next} of {} ({} behind)",
                b.partition,
                b.high_at_start,
                b.high_at_start - next
            ),
            None => format!(
                "partition {} was not open (high watermark {} at the start)",
                b.partition, b.high_at_start
            ),
        })
        .collect();
    parts.join(", ")
}
