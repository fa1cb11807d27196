//! `validate`: run event files through intake and account for every line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::events::{Intake, IntakeCounts, Outcome, Validator};
use crate::sinks::jsonl::write_dead_letter;
use crate::sources::file::FileFeed;
use crate::sources::{PartitionSource, Polled, SourceError};

use super::StageError;

#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub files: Vec<PathBuf>,
    #[serde(flatten)]
    pub counts: IntakeCounts,
    pub balanced: bool,
    pub seconds: f64,
    pub lines_per_second: f64,
}

/// Validates `files` in order (de-duplication spans files). Dead letters are appended to
/// `dead_letters_out` as JSON lines when given.
pub fn validate_files(
    files: &[PathBuf],
    validator: Validator,
    dedup_horizon_hours: f64,
    dead_letters_out: Option<&Path>,
) -> Result<ValidationReport, StageError> {
    let started = Instant::now();
    let mut intake = Intake::new(validator.clone(), dedup_horizon_hours);
    let mut dead_out = match dead_letters_out {
        Some(path) => Some((
            BufWriter::new(File::create(path).map_err(|e| StageError::io(path, e))?),
            path,
        )),
        None => None,
    };
    let (feed, link, mut polled) = FileFeed::start(files.to_vec(), validator.clone())?;
    loop {
        let chunk = match polled.blocking_recv() {
            Some(Polled::Records(chunk)) => chunk,
            Some(Polled::Drained) => break,
            None => return Err(SourceError::ReaderStopped.into()),
            Some(Polled::Failed(error)) => return Err(error.into()),
            // The files' ends one by one; nothing here asks for seeks.
            Some(_) => continue,
        };
        for record in chunk.records() {
            let position = || link.position(record.partition, record.offset);
            let parsed = record.parsed.clone();
            let outcome = intake.accept_parsed(parsed, record.payload, record.raw_len, position);
            if let (Outcome::Dead(letter), Some((out, out_path))) = (outcome, dead_out.as_mut()) {
                write_dead_letter(out, &letter).map_err(|e| StageError::io(out_path, e))?;
            }
        }
        link.recycle(chunk);
    }
    feed.stop(polled);
    if let Some((mut out, path)) = dead_out {
        out.flush().map_err(|e| StageError::io(path, e))?;
    }
    let counts = intake.into_counts();
    let seconds = started.elapsed().as_secs_f64();
    Ok(ValidationReport {
        files: files.to_vec(),
        balanced: counts.is_balanced(),
        lines_per_second: counts.lines as f64 / seconds.max(1e-9),
        counts,
        seconds,
    })
}
