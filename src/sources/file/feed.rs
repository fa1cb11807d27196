//! JSON-lines files as a partitioned log, the embedded default: file `i` is partition `i`, its
//! 0-based line numbers are the offsets. A thread of its own reads the files in order into
//! parsed chunks, as Kafka's poll thread does; a seek reopens the file it is reading and skips
//! to the offset asked for.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::info;

use super::JsonlReader;
use crate::events::{SourcePosition, Validator};
use crate::sources::SourceError;
use crate::sources::feed::{
    Chunk, ChunkBytes, ChunkSize, Handover, PartitionSource, Polled, ReadingThread, Spares,
};
use crate::sources::mailbox::Mailbox;

/// Records read between two looks at the seeks asked for.
const RUN_OF_RECORDS: usize = 256;
/// How often the thread looks for seeks once every file is read (until it is stopped).
const LATE_SEEK_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// Seeks the driver asked for (partition, offset, epoch), made between two runs of records.
type SeekRequests = Mailbox<(i32, i64, u64)>;

/// The driver's handle on the files being read.
pub struct FileLink {
    seeks: Arc<SeekRequests>,
    spares: Arc<Spares>,
    /// The files as dead letters name them, by partition.
    shown: Vec<String>,
}

impl PartitionSource for FileLink {
    fn seek(&self, partition: i32, offset: i64, epoch: u64) {
        self.seeks.post((partition, offset, epoch));
    }

    /// A file holds every line it ever had.
    fn low_watermark(&self, _partition: i32) -> Result<i64, SourceError> {
        Ok(0)
    }

    fn recycle(&self, chunk: Chunk) {
        self.spares.give(chunk);
    }

    /// Files have no reader of their own offsets: the catalog's are all there is.
    fn acknowledge(&self, _committed: &[(i32, i64)]) {}

    fn position(&self, partition: i32, offset: i64) -> SourcePosition {
        let path = usize::try_from(partition)
            .ok()
            .and_then(|index| self.shown.get(index))
            .cloned()
            .unwrap_or_default();
        SourcePosition::File {
            path,
            line: offset as u64 + 1,
        }
    }
}

/// The files' reading thread.
pub struct FileFeed;

impl FileFeed {
    /// Starts reading `paths` in order, partition `i` being `paths[i]`.
    pub fn start(
        paths: Vec<PathBuf>,
        validator: Validator,
    ) -> Result<(ReadingThread, FileLink, mpsc::Receiver<Polled>), SourceError> {
        if i32::try_from(paths.len()).is_err() {
            return Err(SourceError::TooManyFiles(paths.len()));
        }
        let shown = paths.iter().map(|p| p.display().to_string()).collect();
        let seeks = Arc::new(SeekRequests::default());
        let reading = ReadThread {
            paths,
            seeks: seeks.clone(),
        };
        let (thread, spares, receiver) =
            ReadingThread::spawn("file-feed", ChunkSize::FILE, validator, move |out| {
                reading.run(&out)
            })
            .map_err(|source| SourceError::Thread {
                what: "file reading",
                source,
            })?;
        let link = FileLink {
            seeks,
            spares,
            shown,
        };
        Ok((thread, link, receiver))
    }
}

struct ReadThread {
    paths: Vec<PathBuf>,
    seeks: Arc<SeekRequests>,
}

/// Why reading stopped before the end.
enum Stop {
    /// The driver is gone, or asked to stop.
    Gone,
    Failed(SourceError),
}

impl ReadThread {
    fn run(self, out: &Handover) {
        let mut chunk = out.chunk();
        let reader = Reader { thread: &self, out };
        let read = reader
            .read_all(&mut chunk)
            .and_then(|()| reader.serve_late_seeks(&mut chunk));
        match read {
            Ok(()) | Err(Stop::Gone) => {}
            Err(Stop::Failed(error)) => {
                // What was read before the error goes first, as from a broker.
                if out.flush(&mut chunk) {
                    out.send(Polled::Failed(error));
                }
            }
        }
    }
}

/// The reading thread at work: its files and where it hands them over.
struct Reader<'a> {
    thread: &'a ReadThread,
    out: &'a Handover,
}

impl Reader<'_> {
    fn read_all(&self, chunk: &mut ChunkBytes) -> Result<(), Stop> {
        // Where files not opened yet start, when a seek came first.
        let mut start_at: HashMap<i32, i64> = HashMap::new();
        for partition in (0..).take(self.thread.paths.len()) {
            let offset = start_at.remove(&partition).unwrap_or(0);
            let mut reader = self.open(partition, offset)?;
            loop {
                if self.out.stopping() {
                    return Err(Stop::Gone);
                }
                let seeks = self.thread.seeks.take();
                self.make_seeks(seeks, Some((partition, &mut reader)), &mut start_at, chunk)?;
                if !self.read_some(partition, &mut reader, chunk)? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Every file is read: `Drained`, then the seeks that still come until the driver stops
    /// the thread. A seek the driver asked for just as the last file ended would otherwise be
    /// lost, and with it what a restarted stream reads past its committed offsets; each is
    /// made (an earlier file read again from there) and followed by another `Drained`, so the
    /// driver ends on a `Drained` with no seek of its own left unanswered.
    fn serve_late_seeks(&self, chunk: &mut ChunkBytes) -> Result<(), Stop> {
        let mut start_at = HashMap::new();
        loop {
            if !self.out.flush(chunk) || !self.out.send(Polled::Drained) {
                return Err(Stop::Gone);
            }
            let seeks = loop {
                if self.out.stopping() || self.out.driver_gone() {
                    return Err(Stop::Gone);
                }
                let seeks = self.thread.seeks.take();
                if !seeks.is_empty() {
                    break seeks;
                }
                std::thread::sleep(LATE_SEEK_POLL);
            };
            self.make_seeks(seeks, None, &mut start_at, chunk)?;
            if let Some(&partition) = start_at.keys().next() {
                // Past the last file: a partition no file stands for.
                return Err(Stop::Failed(SourceError::NoSuchPartition(partition)));
            }
        }
    }

    /// Reads a few records of `partition` into chunks; `false` at the end of its file.
    fn read_some(
        &self,
        partition: i32,
        reader: &mut JsonlReader,
        chunk: &mut ChunkBytes,
    ) -> Result<bool, Stop> {
        for _ in 0..RUN_OF_RECORDS {
            let record = reader.next_record().map_err(Stop::Failed)?;
            let Some(record) = record else {
                info!(partition, file = %reader.path(), "file read to its end");
                if !self.out.flush(chunk) || !self.out.send(Polled::Ended(partition)) {
                    return Err(Stop::Gone);
                }
                return Ok(false);
            };
            chunk.push(
                partition,
                record.line as i64 - 1,
                record.payload,
                record.raw_len,
            );
            if chunk.is_full() && !self.out.flush(chunk) {
                return Err(Stop::Gone);
            }
        }
        Ok(true)
    }

    /// Makes `seeks`, each after its `Sought` mark: the file at hand (`current`) is reopened
    /// there, a later one will start there, and an earlier one is read again from there to its
    /// end.
    fn make_seeks(
        &self,
        seeks: Vec<(i32, i64, u64)>,
        mut current: Option<(i32, &mut JsonlReader)>,
        start_at: &mut HashMap<i32, i64>,
        chunk: &mut ChunkBytes,
    ) -> Result<(), Stop> {
        if seeks.is_empty() {
            return Ok(());
        }
        // Records read before a seek go before its mark.
        if !self.out.flush(chunk) {
            return Err(Stop::Gone);
        }
        // With no file at hand, every file was read: all are earlier ones.
        let at = current
            .as_ref()
            .map_or(self.thread.paths.len() as i32, |(partition, _)| *partition);
        for (partition, offset, epoch) in seeks {
            let mark = Polled::Sought {
                partition,
                epoch,
                result: Ok(()),
            };
            if !self.out.send(mark) {
                return Err(Stop::Gone);
            }
            match (partition.cmp(&at), current.as_mut()) {
                (std::cmp::Ordering::Equal, Some((_, reader))) => {
                    **reader = self.open(partition, offset)?;
                }
                (std::cmp::Ordering::Less, _) => {
                    let mut earlier = self.open(partition, offset)?;
                    while self.read_some(partition, &mut earlier, chunk)? {}
                }
                _ => {
                    start_at.insert(partition, offset);
                }
            }
        }
        Ok(())
    }

    /// File `partition` with its first `offset` lines read past.
    fn open(&self, partition: i32, offset: i64) -> Result<JsonlReader, Stop> {
        let path = usize::try_from(partition)
            .ok()
            .and_then(|index| self.thread.paths.get(index))
            .ok_or(Stop::Failed(SourceError::NoSuchPartition(partition)))?;
        let mut reader = JsonlReader::open(path, self.out.max_record()).map_err(Stop::Failed)?;
        for _ in 0..offset {
            if reader.next_record().map_err(Stop::Failed)?.is_none() {
                break;
            }
        }
        Ok(reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Limits, Timestamp};

    /// Partition and offset of every record the feed hands over, and the marks between them.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Record(i32, i64),
        Sought(i32, u64),
        Ended(i32),
        Drained,
    }

    fn files(dir: &std::path::Path, lines: &[usize]) -> Vec<PathBuf> {
        lines
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let path = dir.join(format!("events-{i}.jsonl"));
                let text: String = (0..n)
                    .map(|line| format!("{{\"f\":{i},\"l\":{line}}}\n"))
                    .collect();
                std::fs::write(&path, text).unwrap();
                path
            })
            .collect()
    }

    fn start(paths: Vec<PathBuf>) -> (ReadingThread, FileLink, mpsc::Receiver<Polled>) {
        let validator = Validator::new(Limits::default(), Timestamp::now()).unwrap();
        FileFeed::start(paths, validator).unwrap()
    }

    /// Everything until a `Drained` with no seek left unanswered: `asked` seeks were asked for
    /// before, and `on_first`, called once the first chunk is in, says how many it asks for.
    fn drain(
        link: &FileLink,
        receiver: &mut mpsc::Receiver<Polled>,
        mut asked: usize,
        mut on_first: impl FnMut(&FileLink) -> usize,
    ) -> Vec<Seen> {
        let mut seen = Vec::new();
        let mut first = true;
        while let Some(polled) = receiver.blocking_recv() {
            match polled {
                Polled::Records(chunk) => {
                    for record in chunk.records() {
                        seen.push(Seen::Record(record.partition, record.offset));
                    }
                    link.recycle(chunk);
                    if std::mem::take(&mut first) {
                        asked += on_first(link);
                    }
                }
                Polled::Sought {
                    partition, epoch, ..
                } => {
                    asked -= 1;
                    seen.push(Seen::Sought(partition, epoch));
                }
                Polled::Ended(partition) => seen.push(Seen::Ended(partition)),
                Polled::Drained => {
                    seen.push(Seen::Drained);
                    if asked == 0 {
                        break;
                    }
                }
                Polled::Failed(error) => panic!("{error}"),
                Polled::Rebalance(_) | Polled::ConsumerError(_) => panic!("not from files"),
            }
        }
        seen
    }

    /// The offsets of `partition` after its `Sought` mark for `epoch` (all of them without).
    fn after_mark(seen: &[Seen], partition: i32, epoch: Option<u64>) -> Vec<i64> {
        let start = match epoch {
            Some(epoch) => seen
                .iter()
                .position(|s| *s == Seen::Sought(partition, epoch))
                .expect("the seek's mark"),
            None => 0,
        };
        seen[start..]
            .iter()
            .filter_map(|s| match s {
                Seen::Record(p, offset) if *p == partition => Some(*offset),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn files_are_partitions_read_in_order_with_line_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path(), &[3, 0, 2]);
        let (feed, link, mut receiver) = start(paths.clone());
        let seen = drain(&link, &mut receiver, 0, |_| 0);
        use Seen::*;
        assert_eq!(
            seen,
            [
                Record(0, 0),
                Record(0, 1),
                Record(0, 2),
                Ended(0),
                Ended(1),
                Record(2, 0),
                Record(2, 1),
                Ended(2),
                Drained
            ]
        );
        assert_eq!(
            link.position(2, 1),
            crate::events::SourcePosition::File {
                path: paths[2].display().to_string(),
                line: 2
            }
        );
        feed.stop(receiver);
    }

    #[test]
    fn a_seek_moves_the_file_at_hand_an_earlier_one_or_a_later_one() {
        let dir = tempfile::tempdir().unwrap();
        // The first file is much longer than the queue holds: the thread is still on it when
        // the seek of the second comes.
        let paths = files(dir.path(), &[100_000, 3_000]);
        let (feed, link, mut receiver) = start(paths.clone());
        link.seek(1, 5, 1);
        let seen = drain(&link, &mut receiver, 1, |_| 0);
        assert_eq!(
            after_mark(&seen, 1, Some(1)),
            (5..3_000).collect::<Vec<_>>()
        );
        assert_eq!(after_mark(&seen, 0, None), (0..100_000).collect::<Vec<_>>());
        feed.stop(receiver);

        // Partition 0 sought back to 10 once its first chunk is in: whether the thread is still
        // reading it or has gone on to the next file, what follows the mark is 10 to its end,
        // and the other file is read once.
        let (feed, link, mut receiver) = start(files(dir.path(), &[3_000, 3_000]));
        let seen = drain(&link, &mut receiver, 0, |link| {
            link.seek(0, 10, 7);
            1
        });
        assert_eq!(
            after_mark(&seen, 0, Some(7)),
            (10..3_000).collect::<Vec<_>>()
        );
        assert_eq!(after_mark(&seen, 1, None), (0..3_000).collect::<Vec<_>>());
        feed.stop(receiver);
    }

    #[test]
    fn a_seek_after_the_last_file_is_still_made_and_drains_again() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, link, mut receiver) = start(files(dir.path(), &[4, 2]));
        let first = drain(&link, &mut receiver, 0, |_| 0);
        assert_eq!(first.last(), Some(&Seen::Drained));
        // The thread has sent `Drained` and waits: a restarted stream's seek past what it
        // had committed comes just then.
        link.seek(0, 1, 3);
        let again = drain(&link, &mut receiver, 1, |_| 0);
        use Seen::*;
        assert_eq!(
            again,
            [
                Sought(0, 3),
                Record(0, 1),
                Record(0, 2),
                Record(0, 3),
                Ended(0),
                Drained
            ]
        );
        feed.stop(receiver);
    }
}
