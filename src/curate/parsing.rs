//! Batch curation's first thread: lines are read, copied into chunks, and parsed, validated and
//! de-duplicated by the intake; each chunk then goes to the windowing thread with its outcomes.
//!
//! Windowing alone kept one core busy while the other idled: parsing and the event-id memory
//! are about half of the per-event work, so they run here. A chunk owns its bytes and its
//! outcomes borrow them (`self_cell`), so nothing is parsed twice and nothing is copied per
//! field.

use std::path::PathBuf;
use std::sync::Arc;

use self_cell::self_cell;
use tokio::sync::mpsc;

use crate::events::{Intake, Outcome, SourcePosition};
use crate::pipeline::StageError;
use crate::sources::file::JsonlReader;

/// Lines of one file, back to back.
pub struct ChunkLines {
    path: Arc<str>,
    bytes: Vec<u8>,
    /// Per line: its number, where its payload ends in `bytes`, and its true length.
    lines: Vec<(u64, usize, u64)>,
}

impl ChunkLines {
    fn new(path: Arc<str>) -> Self {
        Self {
            path,
            bytes: Vec::with_capacity(CHUNK_BYTES + 4096),
            lines: Vec::with_capacity(CHUNK_LINES),
        }
    }
}

/// One line and what the intake made of it.
pub struct Admitted<'a> {
    pub line: u64,
    pub payload: &'a [u8],
    pub raw_len: u64,
    pub outcome: Outcome<'a>,
}

type AdmittedLines<'a> = Vec<Admitted<'a>>;

self_cell!(
    /// A chunk of lines with their intake outcomes, which borrow its bytes.
    pub struct ParsedChunk {
        owner: ChunkLines,
        #[covariant]
        dependent: AdmittedLines,
    }
);

impl ParsedChunk {
    /// The file the lines come from, as dead letters name it.
    pub fn path(&self) -> &str {
        &self.borrow_owner().path
    }

    pub fn lines(&self) -> &[Admitted<'_>] {
        self.borrow_dependent()
    }
}

/// A chunk is handed over at about this size: big enough that the hand-over costs nothing per
/// line, small enough that the two threads start together and little is held between them.
const CHUNK_BYTES: usize = 1 << 20;
const CHUNK_LINES: usize = 8192;

/// Reads every file in order through `intake` and sends the chunks; returns the intake with its
/// counts. Stops early, without error, when the receiver is gone (it stopped on its own error).
pub fn parse_files(
    paths: Vec<PathBuf>,
    mut intake: Intake,
    max_record: usize,
    chunks: mpsc::Sender<ParsedChunk>,
) -> Result<Intake, StageError> {
    for path in &paths {
        let mut reader = JsonlReader::open(path, max_record)?;
        let shown: Arc<str> = Arc::from(path.display().to_string());
        let mut chunk = ChunkLines::new(shown.clone());
        while let Some(record) = reader.next_record()? {
            chunk.bytes.extend_from_slice(record.payload);
            chunk
                .lines
                .push((record.line, chunk.bytes.len(), record.raw_len));
            if chunk.bytes.len() >= CHUNK_BYTES || chunk.lines.len() >= CHUNK_LINES {
                let full = std::mem::replace(&mut chunk, ChunkLines::new(shown.clone()));
                if chunks.blocking_send(parse(full, &mut intake)).is_err() {
                    return Ok(intake);
                }
            }
        }
        if !chunk.lines.is_empty() && chunks.blocking_send(parse(chunk, &mut intake)).is_err() {
            return Ok(intake);
        }
    }
    Ok(intake)
}

fn parse(lines: ChunkLines, intake: &mut Intake) -> ParsedChunk {
    ParsedChunk::new(lines, |lines| {
        let mut start = 0;
        let records: Vec<(&[u8], u64)> = lines
            .lines
            .iter()
            .map(|&(_, end, raw_len)| {
                let payload = &lines.bytes[start..end];
                start = end;
                (payload, raw_len)
            })
            .collect();
        let position = |i: usize| SourcePosition::File {
            path: lines.path.to_string(),
            line: lines.lines[i].0,
        };
        let outcomes = intake.accept_run(&records, position);
        records
            .into_iter()
            .zip(outcomes)
            .zip(&lines.lines)
            .map(|(((payload, raw_len), outcome), &(line, _, _))| Admitted {
                line,
                payload,
                raw_len,
                outcome,
            })
            .collect()
    })
}
