//! `validate`: run event files through intake and account for every line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::events::{DeadLetter, Intake, IntakeCounts, Outcome, SourcePosition, Validator};
use crate::sources::file::JsonlReader;

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
    let max_record = validator.limits().max_payload_bytes;
    let mut intake = Intake::new(validator, dedup_horizon_hours);
    let mut dead_out = match dead_letters_out {
        Some(path) => Some((
            BufWriter::new(File::create(path).map_err(|e| StageError::io(path, e))?),
            path,
        )),
        None => None,
    };
    for path in files {
        let mut reader = JsonlReader::open(path, max_record)?;
        let shown = path.display().to_string();
        while let Some(record) = reader.next_record()? {
            let line = record.line;
            let outcome = intake.accept(record.payload, record.raw_len, || SourcePosition::File {
                path: shown.clone(),
                line,
            });
            if let (Outcome::Dead(letter), Some((out, out_path))) = (outcome, dead_out.as_mut()) {
                write_dead_letter(out, &letter).map_err(|e| StageError::io(out_path, e))?;
            }
        }
    }
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

/// One dead letter as a JSON line; raw bytes are shown as lossy UTF-8, capped for readability.
pub fn write_dead_letter(out: &mut impl Write, letter: &DeadLetter) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Line<'a> {
        position: String,
        reason: &'a str,
        detail: &'a str,
        raw_len: u64,
        raw_preview: String,
    }
    let preview: String = String::from_utf8_lossy(&letter.raw)
        .chars()
        .take(300)
        .collect();
    serde_json::to_writer(
        &mut *out,
        &Line {
            position: letter.position.to_string(),
            reason: letter.reason.as_str(),
            detail: &letter.detail,
            raw_len: letter.raw_len,
            raw_preview: preview,
        },
    )?;
    out.write_all(b"\n")
}
