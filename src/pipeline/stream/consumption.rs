//! The consumer loop's state, whatever the messages come from: the partitions it holds, each
//! with its curator and offsets, and the commits queued for them. Messages are folded in one at
//! a time; a partition whose batch is full, or old enough, has it taken out and queued on the
//! committer, which answers later.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::events::{Parsed, SourcePosition};
use crate::hashing::{FastMap, FastSet, fast_map, fast_set};
use crate::sources::Chunk;

use std::sync::Arc;

use crate::store::Catalog;

use super::committer::{CommitDone, CommitJob, Committer};
use super::error::StreamError;
use super::metrics::EventTally;
use super::metrics::StreamMetrics;
use super::options::StreamOptions;
use super::partitions::{Ctx, PartitionRun};
use super::report::StreamReport;

/// Batches in flight on the committer before the loop waits for answers: bounds the memory
/// held in batches taken out of their curators.
const MAX_IN_FLIGHT: usize = 512;
/// Micro-batches' worth of messages in flight before the loop waits: bounds what a crash makes
/// the next run read again, whatever the batch size.
const MAX_IN_FLIGHT_BATCHES: u64 = 32;

/// What to do after a message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Flow {
    Go,
    /// `--abort-after` reached: stop dead (crash tests).
    Abort,
}

pub(super) struct Consumption<'a> {
    pub(super) ctx: Ctx<'a>,
    /// Looked up for every message: hashed with xxh3, not SipHash.
    pub(super) runs: FastMap<i32, PartitionRun>,
    pub(super) owned: FastSet<i32>,
    pub(super) report: StreamReport,
    pub(super) latencies: Vec<f64>,
    pub(super) committer: Committer,
    pub(super) unreported: EventTally,
    pub(super) first_message: Option<Instant>,
    /// Partitions whose batch filled up since the last `commit_due`.
    full: Vec<i32>,
    epochs: u64,
}

impl<'a> Consumption<'a> {
    pub(super) fn new(ctx: Ctx<'a>, report: StreamReport, committer: Committer) -> Self {
        Self {
            ctx,
            runs: fast_map(),
            owned: fast_set(),
            report,
            latencies: Vec::new(),
            committer,
            unreported: EventTally::default(),
            first_message: None,
            full: Vec::new(),
            epochs: 0,
        }
    }

    async fn open(&mut self, partition: i32) -> Result<&mut PartitionRun, StreamError> {
        self.epochs += 1;
        let run = self.ctx.open_partition(partition, self.epochs).await?;
        Ok(self.runs.entry(partition).or_insert(run))
    }

    /// Partitions handed to this consumer: opened now, not at their first message, because a
    /// partition whose messages were all consumed still has to end its input when idle.
    pub(super) async fn assigned(&mut self, partitions: Vec<i32>) -> Result<(), StreamError> {
        for partition in partitions {
            self.owned.insert(partition);
            if !self.runs.contains_key(&partition) {
                self.open(partition).await?;
            }
        }
        Ok(())
    }

    /// Uncommitted work of revoked partitions is abandoned: the next owner replays it from the
    /// catalog. Batches already queued still commit, or are fenced off if the new owner was
    /// first.
    pub(super) fn revoked(&mut self, partitions: Vec<i32>) {
        for partition in partitions {
            self.owned.remove(&partition);
            self.ctx.metrics.forget(partition);
            if self.runs.remove(&partition).is_some() {
                info!(partition, "partition revoked");
            }
        }
    }

    /// A seek was asked for whose mark has not come yet.
    pub(super) fn awaiting_seek(&self) -> bool {
        self.runs.values().any(|run| run.seeking)
    }

    /// The poll thread made a seek asked for by opening `epoch` of the partition: its later
    /// messages come from there.
    pub(super) fn sought(
        &mut self,
        partition: i32,
        epoch: u64,
        result: Result<(), crate::sources::SourceError>,
    ) -> Result<(), StreamError> {
        let Some(run) = self.runs.get_mut(&partition) else {
            // Revoked since: whoever opens it next seeks again.
            return Ok(());
        };
        if run.epoch != epoch {
            return Ok(());
        }
        run.seeking = false;
        Ok(result?)
    }

    /// Folds a chunk's records in, in order, queueing the batches they fill.
    pub(super) async fn fold(&mut self, chunk: &Chunk) -> Result<Flow, StreamError> {
        let source = self.ctx.source;
        for record in chunk.records() {
            let (partition, offset) = (record.partition, record.offset);
            let position = || source.position(partition, offset);
            // Borrowed text makes the copy a few words; only a rejection's message is copied.
            let taken = (record.payload, record.raw_len, record.parsed.clone());
            if self.take(partition, offset, taken, position).await? == Flow::Abort {
                return Ok(Flow::Abort);
            }
            self.commit_full().await?;
        }
        Ok(Flow::Go)
    }

    /// Folds one message in, parsed already.
    async fn take(
        &mut self,
        partition: i32,
        offset: i64,
        message: (&[u8], u64, Parsed<'_>),
        position: impl Fn() -> SourcePosition,
    ) -> Result<Flow, StreamError> {
        let (payload, raw_len, parsed) = message;
        self.first_message.get_or_insert_with(Instant::now);
        if !self.owned.contains(&partition) {
            // Fetched before a revoke: the partition's new owner will read it.
            return Ok(Flow::Go);
        }
        if !self.runs.contains_key(&partition) {
            self.open(partition).await?;
        }
        let Some(run) = self.runs.get_mut(&partition) else {
            return Ok(Flow::Go);
        };
        if run.seeking {
            return Ok(Flow::Go);
        }
        if offset != run.next {
            if run.sought != Some(run.next) {
                // Seeking is lazy: where the consumer already starts at the catalog's offset
                // (Kafka's committed offsets follow the catalog's), a seek would only throw
                // away what librdkafka has fetched.
                self.ctx.seek(partition, run.next, run.epoch);
                run.seeking = true;
                run.sought = Some(run.next);
                return Ok(Flow::Go);
            }
            if offset < run.next {
                // Fetched before the seek took effect.
                return Ok(Flow::Go);
            }
            // Sought there already, and the log goes on past it: offsets the log does not hold
            // (compaction, transaction markers). Nothing was skipped.
        }
        run.next = offset + 1;
        let record = offset >= run.replay_until;
        let kind = run
            .curator
            .observe(parsed, payload, raw_len, position, record)
            .await?;
        self.report.messages += 1;
        if record {
            if let Some(kind) = kind {
                self.unreported.count(kind);
            }
            run.first_pending.get_or_insert_with(Instant::now);
            if run.curator.pending().messages >= self.ctx.options.batch_messages {
                self.full.push(partition);
            }
        } else {
            self.report.replayed += 1;
        }
        if self
            .ctx
            .options
            .abort_after
            .is_some_and(|n| self.report.messages >= n)
        {
            warn!(
                messages = self.report.messages,
                "aborting without a commit (crash test)"
            );
            self.report.aborted = true;
            return Ok(Flow::Abort);
        }
        Ok(Flow::Go)
    }

    /// Queues the batches that just filled up, if any: called after every message, so a batch
    /// never outgrows its size however many messages arrive at once.
    pub(super) async fn commit_full(&mut self) -> Result<(), StreamError> {
        match self.full.is_empty() {
            true => Ok(()),
            false => self.commit_due(false).await,
        }
    }

    /// Queues the full batches and, when `scan`, every batch older than the batch interval.
    pub(super) async fn commit_due(&mut self, scan: bool) -> Result<(), StreamError> {
        let mut due = std::mem::take(&mut self.full);
        if scan {
            self.unreported.report_to(self.ctx.metrics);
            let interval = self.ctx.options.batch_interval;
            for (&partition, run) in &self.runs {
                let waited = run.first_pending.is_some_and(|t| t.elapsed() >= interval);
                if waited && !due.contains(&partition) {
                    due.push(partition);
                }
            }
        }
        for partition in due {
            self.queue_commit(partition)?;
        }
        let message_bound = MAX_IN_FLIGHT_BATCHES * self.ctx.options.batch_messages.max(1);
        while self.committer.in_flight() > MAX_IN_FLIGHT
            || self.committer.in_flight_messages() > message_bound
        {
            self.wait_for_commits().await?;
        }
        Ok(())
    }

    /// Takes the partition's pending batch out of its curator and queues it.
    pub(super) fn queue_commit(&mut self, partition: i32) -> Result<(), StreamError> {
        let Some(run) = self.runs.get_mut(&partition) else {
            return Ok(());
        };
        if run.next < run.replay_until {
            // Still replaying what the catalog holds: committing would move its offset back.
            return Ok(());
        }
        let moved = run.committed != Some(run.next);
        if run.curator.pending().is_empty() && !moved {
            return Ok(());
        }
        let snapshot_due = run
            .last_snapshot
            .is_none_or(|t| t.elapsed() >= self.ctx.options.snapshot_interval);
        let snapshot = snapshot_due.then(|| run.curator.snapshot()).transpose()?;
        if snapshot.is_some() {
            run.last_snapshot = Some(Instant::now());
        }
        let job = CommitJob {
            partition,
            epoch: run.epoch,
            expected: run.committed,
            next: run.next,
            pending: run.curator.take_pending(),
            snapshot,
            open_sessions: run.curator.open_sessions(),
        };
        run.committed = Some(run.next);
        run.first_pending = None;
        self.committer.queue(job)
    }

    /// Waits for the committer's next answer and takes it in.
    pub(super) async fn wait_for_commits(&mut self) -> Result<(), StreamError> {
        if let Some(answer) = self.committer.next().await {
            let (done, retries) = answer?;
            self.answered(done, retries);
        }
        Ok(())
    }

    /// Every queued batch committed (or fenced off).
    pub(super) async fn drain(&mut self) -> Result<(), StreamError> {
        while self.committer.in_flight() > 0 {
            self.wait_for_commits().await?;
        }
        Ok(())
    }

    pub(super) fn answered(&mut self, done: Vec<CommitDone>, retries: u64) {
        self.report.retries += retries;
        let mut offsets = Vec::new();
        for done in done {
            self.latencies.push(done.seconds * 1000.0);
            let current = self
                .runs
                .get(&done.partition)
                .is_some_and(|run| run.epoch == done.epoch);
            if !done.committed {
                self.report.fenced += 1;
                if current {
                    // Another consumer owns the partition's offsets now; if the partition is
                    // still ours, its next message reopens it from the catalog.
                    self.runs.remove(&done.partition);
                }
                continue;
            }
            self.report.commits += 1;
            self.report.triplets += done.triplets;
            self.report.files += done.files;
            self.report.dead_letters_stored += done.dead_letters;
            offsets.push((done.partition, done.next));
        }
        if !offsets.is_empty() {
            self.ctx.source.acknowledge(&offsets);
        }
    }

    /// The end of the input (idle, or the files read to their end): buffered events become
    /// dead letters and every closed window is written, its day final or not.
    pub(super) async fn end_inputs(&mut self) -> Result<(), StreamError> {
        let mut partitions: Vec<i32> = self.runs.keys().copied().collect();
        partitions.sort_unstable();
        for partition in partitions {
            if let Some(run) = self.runs.get_mut(&partition) {
                if run.next < run.replay_until {
                    warn!(
                        partition,
                        next = run.next,
                        committed = run.replay_until,
                        "idle before catching up with the catalog: input not ended"
                    );
                    continue;
                }
                run.curator.end_of_input().await?;
                run.last_snapshot = None;
            }
            self.queue_commit(partition)?;
        }
        Ok(())
    }

    /// Queues what every partition has pending, then waits for all of it.
    pub(super) async fn commit_everything(&mut self) -> Result<(), StreamError> {
        let partitions: Vec<i32> = self.runs.keys().copied().collect();
        for partition in partitions {
            self.queue_commit(partition)?;
        }
        self.drain().await
    }

    /// Seconds since the first message, less `idle`.
    pub(super) fn busy_seconds(&self, idle: Duration) -> f64 {
        self.first_message
            .map_or(0.0, |t| t.elapsed().saturating_sub(idle).as_secs_f64())
    }
}

/// What either input's loop starts from.
pub(super) struct Start<'a> {
    pub(super) options: &'a StreamOptions,
    pub(super) catalog: &'a Catalog,
    pub(super) metrics: &'a Arc<StreamMetrics>,
    pub(super) report: StreamReport,
    pub(super) committer: Committer,
    pub(super) started: Instant,
}

pub(super) fn finish(
    state: Consumption<'_>,
    started: Instant,
    idle_wait: Duration,
) -> StreamReport {
    let busy_seconds = state.busy_seconds(idle_wait);
    let mut report = state.report;
    report.busy_seconds = busy_seconds;
    let mut partitions: Vec<i32> = state.runs.keys().copied().collect();
    partitions.sort_unstable();
    for (&partition, run) in &state.runs {
        report.counts.add(run.curator.counts());
        let lines = run.curator.counts().lines;
        report.partition_lines.insert(partition, lines);
    }
    report.partitions = partitions;
    let mut latencies = state.latencies;
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round().max(0.0) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    report.commit_latency_ms_p50 = quantile(0.5);
    report.commit_latency_ms_p99 = quantile(0.99);
    report.seconds = started.elapsed().as_secs_f64();
    report
}
