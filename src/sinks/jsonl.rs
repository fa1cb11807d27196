//! JSON lines: one event per line, the embedded default's event log; one dead letter per line,
//! what `validate --dead-letters` writes for a person to read.

use std::fs::File;
use std::io::{BufWriter, Write};

use serde::Serialize;

use super::EventSink;
use crate::events::DeadLetter;

/// One JSON object per line, optionally gzip-compressed.
pub struct LineSink {
    writer: Box<dyn Write + Send>,
}

impl LineSink {
    pub fn new(file: File, gzip: bool) -> Self {
        let buffered = BufWriter::with_capacity(1 << 20, file);
        let writer: Box<dyn Write + Send> = if gzip {
            Box::new(flate2::write::GzEncoder::new(
                buffered,
                flate2::Compression::fast(),
            ))
        } else {
            Box::new(buffered)
        };
        Self { writer }
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

impl EventSink for LineSink {
    type Error = std::io::Error;
    fn deliver(&mut self, _key: &str, line: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(line)?;
        self.writer.write_all(b"\n")
    }
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
