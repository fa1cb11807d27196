//! Commits run beside the consumer loop, on their own task: while one group of micro-batches
//! waits for the object store and the catalog, the loop goes on folding messages in. Whatever
//! is queued when the task gets to it goes into ONE catalog transaction (one disk flush for all
//! of them), each partition behind its own savepoint and its own offset compare-and-set.
//!
//! A partition's batches are queued in order and each names the offset the previous one moves
//! the catalog to, so a batch whose predecessor was fenced off is fenced off too. Failures are
//! retried with backoff; when the attempts run out the whole stream stops, and whatever was not
//! committed is replayed by the next owner.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::warn;

use crate::curate::PicturePaths;
use crate::curate::emit::write_parts;
use crate::curate::partition::PendingCommit;
use crate::events::Reason;
use crate::sinks::kafka::DeadLetterTopic;
use crate::store::{Catalog, CommitOutcome, ObjectRoot, PartitionCommit};

use super::error::StreamError;
use super::metrics::StreamMetrics;

/// Attempts of a commit that fails on the catalog or the object store before giving up.
const COMMIT_ATTEMPTS: u32 = 6;

/// Most batches in one transaction: bounds a transaction's size and the work a retry redoes.
const MAX_GROUP: usize = 256;

/// One partition's micro-batch, taken out of its curator.
pub(super) struct CommitJob {
    pub partition: i32,
    /// Which opening of the partition the batch belongs to (a fenced or revoked partition may
    /// be opened again while older batches are still in flight).
    pub epoch: u64,
    pub expected: Option<i64>,
    pub next: i64,
    pub pending: PendingCommit,
    pub snapshot: Option<Vec<u8>>,
    pub open_sessions: u64,
}

/// What became of a job.
pub(super) struct CommitDone {
    pub partition: i32,
    pub epoch: u64,
    pub next: i64,
    /// `false`: fenced off, nothing written.
    pub committed: bool,
    pub triplets: u64,
    pub files: u64,
    pub dead_letters: u64,
    /// The whole group's commit, retries included.
    pub seconds: f64,
}

/// Where and as whom the task commits.
pub(super) struct Destination {
    pub catalog: Catalog,
    pub out: ObjectRoot,
    pub pictures: PicturePaths,
    pub dead_letter_topic: Option<Arc<DeadLetterTopic>>,
    pub metrics: Arc<StreamMetrics>,
    pub run_id: String,
    pub group: String,
    pub topic: String,
}

type Answer = Result<(Vec<CommitDone>, u64), StreamError>;

pub(super) struct Committer {
    jobs: mpsc::UnboundedSender<CommitJob>,
    answers: mpsc::UnboundedReceiver<Answer>,
    /// Messages of each job in flight, oldest first (groups are answered in queue order).
    in_flight: std::collections::VecDeque<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Committer {
    fn drop(&mut self) {
        // A dropped transaction rolls back: stopping mid-commit leaves no partial state.
        self.task.abort();
    }
}

impl Committer {
    pub(super) fn start(destination: Destination) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let (reply, answers) = mpsc::unbounded_channel();
        let task = tokio::spawn(work(destination, queue, reply));
        Self {
            jobs,
            answers,
            in_flight: std::collections::VecDeque::new(),
            task,
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Messages whose commit has not been answered: what a crash now would make the next run
    /// read again.
    pub(super) fn in_flight_messages(&self) -> u64 {
        self.in_flight.iter().sum()
    }

    fn settled(&mut self, jobs: usize) {
        self.in_flight.drain(..jobs.min(self.in_flight.len()));
    }

    pub(super) fn queue(&mut self, job: CommitJob) -> Result<(), StreamError> {
        let messages = job.pending.messages;
        self.jobs
            .send(job)
            .map_err(|_| StreamError::CommitterStopped)?;
        self.in_flight.push_back(messages);
        Ok(())
    }

    /// An answer that has already come, if any.
    pub(super) fn try_next(&mut self) -> Option<Result<(Vec<CommitDone>, u64), StreamError>> {
        if self.in_flight.is_empty() {
            return None;
        }
        let answer = match self.answers.try_recv() {
            Ok(answer) => answer,
            Err(mpsc::error::TryRecvError::Empty) => return None,
            Err(mpsc::error::TryRecvError::Disconnected) => Err(StreamError::CommitterStopped),
        };
        if let Ok((done, _)) = &answer {
            self.settled(done.len());
        }
        Some(answer)
    }

    /// The next group's outcomes and retries; waits for it. `None` when nothing is in flight.
    pub(super) async fn next(&mut self) -> Option<Result<(Vec<CommitDone>, u64), StreamError>> {
        if self.in_flight.is_empty() {
            return None;
        }
        let answer = match self.answers.recv().await {
            Some(answer) => answer,
            None => Err(StreamError::CommitterStopped),
        };
        if let Ok((done, _)) = &answer {
            self.settled(done.len());
        }
        Some(answer)
    }
}

async fn work(
    destination: Destination,
    mut queue: mpsc::UnboundedReceiver<CommitJob>,
    reply: mpsc::UnboundedSender<Answer>,
) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let answer = commit_group(&destination, &group).await;
        let stop = answer.is_err();
        if reply.send(answer).is_err() || stop {
            break;
        }
    }
}

async fn commit_group(d: &Destination, group: &[CommitJob]) -> Answer {
    let started = Instant::now();
    let mut attempt = 0;
    let outcomes = loop {
        attempt += 1;
        match try_commit(d, group).await {
            Ok(outcomes) => break outcomes,
            Err(error) if attempt < COMMIT_ATTEMPTS => {
                let wait = Duration::from_millis(100 << attempt.min(6));
                warn!(attempt, %error, ?wait, batches = group.len(), "commit failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(error) => return Err(error),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut done = Vec::with_capacity(group.len());
    for (job, outcome) in group.iter().zip(outcomes) {
        let pending = &job.pending;
        let committed = matches!(outcome, CommitOutcome::Committed(_));
        let triplets = pending.flushed.triplets() as u64;
        let mut dead_letters = 0;
        if let CommitOutcome::Committed(applied) = &outcome {
            d.metrics.committed(seconds, triplets);
            count_letters(&d.metrics, pending.letters.iter().map(|l| l.reason));
            d.metrics.partition(job.partition, job.open_sessions);
            dead_letters = applied.dead_letters_stored;
        } else {
            warn!(
                partition = job.partition,
                "fenced: another consumer committed this partition"
            );
        }
        done.push(CommitDone {
            partition: job.partition,
            epoch: job.epoch,
            next: job.next,
            committed,
            triplets,
            files: pending.flushed.parts.len() as u64,
            dead_letters,
            seconds,
        });
    }
    Ok((done, u64::from(attempt - 1)))
}

fn count_letters(metrics: &StreamMetrics, reasons: impl Iterator<Item = Reason>) {
    for reason in reasons {
        metrics.dead_letter(reason);
    }
}

/// Files first (content-addressed: a rewrite after a failure is harmless), then dead letters to
/// their topic, then the one transaction.
async fn try_commit(
    d: &Destination,
    group: &[CommitJob],
) -> Result<Vec<CommitOutcome>, StreamError> {
    let mut files = Vec::with_capacity(group.len());
    for job in group {
        files.push(write_parts(&d.out, &d.pictures, &job.pending.flushed).await?);
        if let Some(topic) = &d.dead_letter_topic
            && !job.pending.letters.is_empty()
        {
            topic.send(&job.pending.letters).await.map_err(|source| {
                StreamError::DeadLetterTopic {
                    topic: topic.topic().to_owned(),
                    source,
                }
            })?;
        }
    }
    let images: Vec<_> = group
        .iter()
        .map(|job| job.pending.flushed.catalog_images())
        .collect();
    let deltas: Vec<_> = group.iter().map(|job| job.pending.deltas()).collect();
    let commits: Vec<PartitionCommit<'_>> = group
        .iter()
        .enumerate()
        .map(|(i, job)| PartitionCommit {
            run_id: &d.run_id,
            location: d.out.location(),
            group: &d.group,
            topic: &d.topic,
            partition: job.partition,
            expected_offset: job.expected,
            next_offset: job.next,
            publishes: &job.pending.publishes,
            deltas: &deltas[i],
            letters: &job.pending.letters,
            files: &files[i],
            images: &images[i],
            snapshot: job.snapshot.as_deref(),
        })
        .collect();
    Ok(d.catalog.commit_partitions(&commits).await?)
}
