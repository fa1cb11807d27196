//! The streaming `ingest`: a Kafka consumer group whose partitions are curated exactly as the
//! batch `curate` would curate the same events, with an exactly-once effect on the catalog and
//! on the triplet files.
//!
//! Per partition, messages are folded into a `PartitionCurator` and committed in micro-batches:
//! triplet files of the days that became final are written first (content-addressed, so a
//! rewrite is harmless), then ONE transaction stores the publishes, counter deltas, dead letters,
//! manifest rows, emitted marks, the partition's next offset (compare-and-set) and, now and then,
//! a snapshot of the curation state. The catalog's offsets are the source of truth: a partition
//! (re)gained after a restart or a rebalance restarts from its snapshot, replays up to the
//! committed offset into memory only, and goes on. The same offsets are then committed to Kafka
//! (async), so lag tools see the group's progress. Uncommitted work is abandoned on a revoke or a
//! crash and redone by whoever owns the partition next; a consumer that lost a partition without
//! noticing is fenced off by the compare-and-set.

use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::sinks::kafka::DeadLetterTopic;
use crate::store::{Catalog, ObjectRoot};

mod committer;
mod consumption;
mod error;
mod files;
mod kafka;
pub mod metrics;
mod options;
mod partitions;
mod report;

pub use error::StreamError;
pub use options::{StreamInput, StreamOptions};
pub use report::{Behind, StreamReport};

use committer::{Committer, Destination};
use consumption::Start;
use metrics::{StreamMetrics, serve};

pub async fn run_stream(
    options: &StreamOptions,
    catalog: &Catalog,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<StreamReport, StreamError> {
    let started = Instant::now();
    let out = ObjectRoot::open(&options.out).map_err(StreamError::from)?;
    let metrics = Arc::new(StreamMetrics::default());
    let server = match options.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StreamError::MetricsAddress { addr, source })?;
            info!(address = %addr, "serving /metrics and /health");
            Some(AbortOnDrop(tokio::spawn(serve(listener, metrics.clone()))))
        }
        None => None,
    };
    let dead_letter_topic = match (&options.dead_letter_topic, &options.input) {
        (Some(topic), StreamInput::Kafka { brokers }) => Some(Arc::new(
            DeadLetterTopic::connect(brokers, topic, &options.kafka).map_err(|source| {
                StreamError::DeadLetterTopic {
                    topic: topic.clone(),
                    source,
                }
            })?,
        )),
        _ => None,
    };
    let committer = Committer::start(Destination {
        catalog: catalog.clone(),
        out,
        pictures: options.settings.pictures.clone(),
        dead_letter_topic,
        metrics: metrics.clone(),
        run_id: options.run_id.clone(),
        group: options.group.clone(),
        topic: options.topic.clone(),
    });
    let report = StreamReport {
        run_id: options.run_id.clone(),
        ..StreamReport::default()
    };
    let start = Start {
        options,
        catalog,
        metrics: &metrics,
        report,
        committer,
        started,
    };
    let report = match &options.input {
        StreamInput::Kafka { brokers } => kafka::consume(start, brokers, shutdown).await?,
        StreamInput::Files(paths) => files::consume(start, paths, shutdown).await?,
    };
    drop(server);
    Ok(report)
}

/// SIGINT or SIGTERM: finish the message in hand, commit, leave the group.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The metrics server lives as long as the consumer loop, however that ends.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
