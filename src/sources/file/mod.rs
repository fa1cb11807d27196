//! JSON-lines files, plain or gzip, read one record at a time with a hard cap on how much of a
//! single line is ever held in memory (a file with no newline at all must not exhaust memory).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::SourceError;

mod feed;

pub use feed::{FileFeed, FileLink};

pub struct Record<'a> {
    /// The line without its newline, or its first `max_record_bytes + 1` bytes when longer.
    pub payload: &'a [u8],
    /// The line's true length in bytes.
    pub raw_len: u64,
    /// 1-based line number.
    pub line: u64,
}

pub struct JsonlReader {
    reader: Box<dyn BufRead + Send>,
    path: String,
    line: u64,
    buf: Vec<u8>,
    keep_bytes: usize,
    /// Bytes of the reader's buffer handed out as the last record, consumed on the next call.
    lent: usize,
}

impl JsonlReader {
    /// Opens `path`, detecting gzip by its magic bytes rather than by file name.
    pub fn open(path: &Path, max_record_bytes: usize) -> Result<Self, SourceError> {
        let io_err = |source| SourceError::Io {
            path: PathBuf::from(path),
            source,
        };
        let mut file = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
        let is_gzip = file.fill_buf().map_err(io_err)?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn BufRead + Send> = if is_gzip {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(file),
            ))
        } else {
            Box::new(file)
        };
        Ok(Self::from_reader(
            reader,
            path.display().to_string(),
            max_record_bytes,
        ))
    }

    pub fn from_reader(
        reader: Box<dyn BufRead + Send>,
        path: String,
        max_record_bytes: usize,
    ) -> Self {
        Self {
            reader,
            path,
            line: 0,
            buf: Vec::with_capacity(4096),
            keep_bytes: max_record_bytes.saturating_add(1),
            lent: 0,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The line ending at `newline` in the reader's buffer, consumed on the next call.
    fn lend(&mut self, newline: usize) -> Result<Option<Record<'_>>, SourceError> {
        let bytes = self.reader.fill_buf().map_err(|source| SourceError::Io {
            path: PathBuf::from(&self.path),
            source,
        })?;
        let mut end = newline;
        if end > 0 && bytes[end - 1] == b'\r' {
            end -= 1;
        }
        self.lent = newline + 1;
        self.line += 1;
        Ok(Some(Record {
            payload: &bytes[..end],
            raw_len: end as u64,
            line: self.line,
        }))
    }

    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, SourceError> {
        self.reader.consume(std::mem::take(&mut self.lent));
        // Most lines sit whole in the reader's buffer: lend them out instead of copying (the
        // copy was a tenth of curation's time). Lines across a buffer boundary, or longer
        // than kept, take the copying path below.
        let whole_line = loop {
            match self.reader.fill_buf() {
                Ok(bytes) => break memchr::memchr(b'\n', bytes).filter(|&i| i <= self.keep_bytes),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break None,
            }
        };
        if let Some(newline) = whole_line {
            return self.lend(newline);
        }
        self.buf.clear();
        let mut raw_len: u64 = 0;
        let mut saw_any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(SourceError::Io {
                        path: PathBuf::from(&self.path),
                        source,
                    });
                }
            };
            if available.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (chunk, consumed, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            raw_len += chunk.len() as u64;
            let room = self.keep_bytes.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.reader.consume(consumed);
            if done {
                break;
            }
        }
        if self.buf.last() == Some(&b'\r') && raw_len as usize == self.buf.len() {
            self.buf.pop();
            raw_len -= 1;
        }
        self.line += 1;
        Ok(Some(Record {
            payload: &self.buf,
            raw_len,
            line: self.line,
        }))
    }
}

/// Reads whole files from a reader that is already open (tests, stdin).
pub fn reader_from<R: Read + Send + 'static>(read: R) -> Box<dyn BufRead + Send> {
    Box::new(BufReader::new(read))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(input: &'static [u8], max: usize) -> Vec<(Vec<u8>, u64, u64)> {
        let mut reader = JsonlReader::from_reader(reader_from(input), "mem".into(), max);
        let mut out = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            out.push((r.payload.to_vec(), r.raw_len, r.line));
        }
        out
    }

    #[test]
    fn splits_lines_and_keeps_blank_and_final_unterminated_ones() {
        let got = records(b"a\r\n\nbc", 100);
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), 1, 1),
                (vec![], 0, 2),
                (b"bc".to_vec(), 2, 3)
            ]
        );
        assert!(records(b"", 100).is_empty());
        assert_eq!(records(b"x\n", 100).len(), 1);
    }

    #[test]
    fn caps_what_it_keeps_of_a_huge_line_but_reports_its_length() {
        let got = records(b"0123456789\nok", 4);
        assert_eq!(got[0], (b"01234".to_vec(), 10, 1));
        assert_eq!(got[1], (b"ok".to_vec(), 2, 2));
    }
}
