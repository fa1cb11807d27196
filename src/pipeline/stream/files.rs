//! The loop over JSON-lines files, the embedded default: each file is a partition, its 0-based
//! line numbers are the offsets, and the catalog's offsets say where a rerun resumes. The files
//! are read on a thread of their own (`sources::file::FileFeed`), which hands over the same
//! parsed chunks and seek marks as Kafka's poll thread: same folding, same commits as a
//! consumer group. The run ends when every file has been read to its end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::info;

use crate::events::Validator;
use crate::sources::file::FileFeed;
use crate::sources::{PartitionSource, Polled, SourceError};

use super::consumption::{Consumption, Flow, Start, finish};
use super::error::StreamError;
use super::partitions::Ctx;
use super::report::StreamReport;

pub(super) async fn consume(
    start: Start<'_>,
    paths: &[PathBuf],
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<StreamReport, StreamError> {
    let options = start.options;
    let validator = Validator::new(options.settings.limits.clone(), options.settings.now)?;
    let (feed, link, mut polled) = FileFeed::start(paths.to_vec(), validator)?;
    let ctx = Ctx {
        options,
        catalog: start.catalog,
        source: &link,
        metrics: start.metrics,
    };
    let mut state = Consumption::new(ctx, start.report, start.committer);
    // FileFeed::start refused more files than partition numbers.
    state.assigned((0..).take(paths.len()).collect()).await?;
    let tick = options.batch_interval.min(Duration::from_millis(200));
    let mut last_scan = Instant::now();
    tokio::pin!(shutdown);
    let mut drained = false;
    loop {
        start.metrics.tick();
        match polled.recv().await {
            None => return Err(SourceError::ReaderStopped.into()),
            Some(Polled::Records(chunk)) => {
                let flow = state.fold(&chunk).await?;
                link.recycle(chunk);
                if flow == Flow::Abort {
                    // A crash stand-in: nothing more is committed, queued commits included.
                    feed.stop(polled);
                    return Ok(finish(state, start.started, Duration::ZERO));
                }
            }
            Some(Polled::Sought {
                partition,
                epoch,
                result,
            }) => state.sought(partition, epoch, result)?,
            // A seek of ours not made yet is made after this mark, and drains again.
            Some(Polled::Drained) => drained = !state.awaiting_seek(),
            Some(Polled::Failed(error)) => return Err(error.into()),
            // Files end one by one, and have no group to rebalance nor broker to fail.
            Some(Polled::Ended(_) | Polled::Rebalance(_) | Polled::ConsumerError(_)) => {}
        }
        while let Some(answer) = state.committer.try_next() {
            let (done, retries) = answer?;
            state.answered(done, retries);
        }
        let scan = last_scan.elapsed() >= tick;
        if scan {
            last_scan = Instant::now();
        }
        state.commit_due(scan).await?;
        if drained {
            break;
        }
        if (&mut shutdown).now_or_never().is_some() {
            info!("shutting down: committing what was read");
            break;
        }
    }
    feed.stop(polled);
    if drained {
        state.end_inputs().await?;
    }
    state.commit_everything().await?;
    state.unreported.report_to(start.metrics);
    Ok(finish(state, start.started, Duration::ZERO))
}
