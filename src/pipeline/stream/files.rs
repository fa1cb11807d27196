//! The loop over JSON-lines files, the embedded default: each file is a partition, its 0-based
//! line numbers are the offsets, and the catalog's offsets say where a rerun resumes. Same
//! curation, same commits as a consumer group; what a broker would do (fetching, seeking) is a
//! reader positioned at the partition's next offset.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::info;

use crate::events::{SourcePosition, Validator, parse_record};
use crate::pipeline::StageError;
use crate::sources::file::JsonlReader;

use super::consumption::{Consumption, Flow};
use super::partitions::Ctx;
use super::{Start, StreamReport, failed, finish};

/// Lines taken between looks at the committer, the timer and shutdown.
const RUN_OF_LINES: usize = 4096;

pub(super) async fn consume(
    start: Start<'_>,
    paths: &[PathBuf],
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<StreamReport, StageError> {
    let options = start.options;
    let ctx = Ctx {
        options,
        catalog: start.catalog,
        consumer: None,
        metrics: start.metrics,
    };
    let mut state = Consumption::new(ctx, start.report, start.committer);
    let count = i32::try_from(paths.len()).map_err(|_| failed("too many event files"))?;
    state.assigned((0..count).collect()).await?;
    let max_record = options.settings.limits.max_payload_bytes;
    let validator = Validator::new(options.settings.limits.clone(), options.settings.now)?;
    let tick = options.batch_interval.min(Duration::from_millis(200));
    let mut last_scan = Instant::now();
    tokio::pin!(shutdown);
    let mut stopped = false;
    'files: for (partition, path) in (0..count).zip(paths) {
        let shown = path.display().to_string();
        let mut reader = Cursor::open(path, max_record)?;
        loop {
            start.metrics.tick();
            // A partition reopened from the catalog (fenced off by another process reading the
            // same files) may want lines the reader has passed.
            if let Some(run) = state.runs.get(&partition)
                && run.next < reader.next
            {
                reader = Cursor::open(path, max_record)?;
            }
            let mut taken = 0;
            while taken < RUN_OF_LINES {
                let Some(record) = reader.next_record()? else {
                    info!(partition, file = %shown, "file read to its end");
                    continue 'files;
                };
                let (offset, line) = (record.line as i64 - 1, record.line);
                let position = || SourcePosition::File {
                    path: shown.clone(),
                    line,
                };
                let parsed = parse_record(&validator, record.payload, record.raw_len);
                let message = (record.payload, record.raw_len, parsed);
                let flow = state.take(partition, offset, message, position).await?;
                if flow == Flow::Abort {
                    return Ok(finish(state, start.started, Duration::ZERO));
                }
                state.commit_full().await?;
                taken += 1;
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
            if (&mut shutdown).now_or_never().is_some() {
                info!("shutting down: committing what was read");
                stopped = true;
                break 'files;
            }
        }
    }
    if !stopped {
        state.end_inputs().await?;
    }
    state.commit_everything().await?;
    state.unreported.report_to(start.metrics);
    Ok(finish(state, start.started, Duration::ZERO))
}

/// A file reader that knows the offset of the line it reads next.
struct Cursor {
    reader: JsonlReader,
    next: i64,
}

impl Cursor {
    fn open(path: &Path, max_record: usize) -> Result<Self, StageError> {
        Ok(Self {
            reader: JsonlReader::open(path, max_record)?,
            next: 0,
        })
    }

    fn next_record(&mut self) -> Result<Option<crate::sources::file::Record<'_>>, StageError> {
        let record = self.reader.next_record()?;
        if record.is_some() {
            self.next += 1;
        }
        Ok(record)
    }
}
