//! The consumer loop's work on one partition: opening it from the catalog (snapshot, seek,
//! replay bound), and committing its pending batch (files, then one catalog transaction, then
//! Kafka's offsets), with retries.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::curate::emit::write_parts;
use crate::curate::partition::PartitionCurator;
use crate::pipeline::StageError;
use crate::sources::kafka::DeadLetterTopic;
use crate::store::{Catalog, CommitOutcome, ObjectRoot, PartitionCommit};

use super::context::RebalanceLog;
use super::metrics::StreamMetrics;
use super::{PartitionRun, StreamOptions, StreamReport, failed};

pub(super) struct Ctx<'a> {
    pub(super) options: &'a StreamOptions,
    pub(super) catalog: &'a Catalog,
    pub(super) out: &'a ObjectRoot,
    pub(super) consumer: &'a StreamConsumer<RebalanceLog>,
    pub(super) dead_letter_topic: Option<&'a DeadLetterTopic>,
    pub(super) metrics: &'a StreamMetrics,
}

/// Attempts of a commit that fails on the catalog or the object store before giving up.
const COMMIT_ATTEMPTS: u32 = 6;

impl Ctx<'_> {
    /// A partition first seen (assigned, or reassigned): state from the catalog's snapshot, or
    /// from scratch at the partition's first retained offset, and a seek to it.
    pub(super) async fn open_partition(&self, partition: i32) -> Result<PartitionRun, StageError> {
        let o = self.options;
        let stored = self
            .catalog
            .partition_state(&o.group, &o.topic, partition)
            .await?;
        let (curator, start) = match &stored.snapshot {
            Some((at, bytes)) => (PartitionCurator::restore(&o.settings, bytes)?, *at),
            None => {
                let (low, _) = self
                    .consumer
                    .fetch_watermarks(&o.topic, partition, Duration::from_secs(10))
                    .map_err(|e| failed(format!("watermarks of partition {partition}: {e}")))?;
                (PartitionCurator::new(&o.settings)?, low)
            }
        };
        let replay_until = stored.next_offset.unwrap_or(start).max(start);
        info!(partition, start, replay_until, "partition opened");
        self.seek(partition, start)?;
        Ok(PartitionRun {
            partition,
            curator,
            committed: stored.next_offset,
            next: start,
            replay_until,
            first_pending: None,
            last_snapshot: None,
        })
    }

    pub(super) fn seek(&self, partition: i32, offset: i64) -> Result<(), StageError> {
        self.consumer
            .seek(
                &self.options.topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            )
            .map_err(|e| failed(format!("seek partition {partition} to {offset}: {e}")))
    }

    /// Writes the partition's finished files and commits its pending batch; a fenced commit
    /// drops the partition (another consumer owns it now).
    pub(super) async fn commit(
        &self,
        runs: &mut HashMap<i32, PartitionRun>,
        partition: i32,
        report: &mut StreamReport,
        latencies: &mut Vec<f64>,
    ) -> Result<(), StageError> {
        let o = self.options;
        let Some(run) = runs.get_mut(&partition) else {
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
            .is_none_or(|t| t.elapsed() >= o.snapshot_interval);
        let snapshot = snapshot_due.then(|| run.curator.snapshot()).transpose()?;
        let started = Instant::now();
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            match self.try_commit(run, snapshot.as_deref()).await {
                Ok(outcome) => break outcome,
                Err(error) if attempt < COMMIT_ATTEMPTS => {
                    report.retries += 1;
                    let wait = Duration::from_millis(100 << attempt.min(6));
                    warn!(partition, attempt, %error, ?wait, "commit failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(error) => return Err(error),
            }
        };
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        match outcome {
            CommitOutcome::Committed(applied) => {
                let done = run.curator.take_pending();
                self.metrics.committed(
                    started.elapsed().as_secs_f64(),
                    done.flushed.triplets() as u64,
                );
                for letter in &done.letters {
                    self.metrics.dead_letter(letter.reason);
                }
                self.metrics
                    .partition(partition, run.curator.open_sessions());
                report.commits += 1;
                report.triplets += done.flushed.triplets() as u64;
                report.files += done.flushed.parts.len() as u64;
                report.dead_letters += applied.dead_letters_stored;
                run.committed = Some(run.next);
                run.first_pending = None;
                if snapshot.is_some() {
                    run.last_snapshot = Some(Instant::now());
                }
                let mut offsets = TopicPartitionList::new();
                if offsets
                    .add_partition_offset(&o.topic, partition, Offset::Offset(run.next))
                    .is_ok()
                    && let Err(e) = self.consumer.commit(&offsets, CommitMode::Async)
                {
                    // Only lag tools read these offsets; the catalog's are authoritative.
                    warn!(partition, error = %e, "kafka offset commit failed");
                }
            }
            CommitOutcome::Fenced => {
                warn!(
                    partition,
                    "fenced: another consumer committed this partition"
                );
                report.fenced += 1;
                runs.remove(&partition);
            }
        }
        Ok(())
    }

    async fn try_commit(
        &self,
        run: &PartitionRun,
        snapshot: Option<&[u8]>,
    ) -> Result<CommitOutcome, StageError> {
        let o = self.options;
        let pending = run.curator.pending();
        let files = write_parts(self.out, &pending.flushed).await?;
        if let Some(topic) = self.dead_letter_topic
            && !pending.letters.is_empty()
        {
            topic
                .send(&pending.letters)
                .await
                .map_err(|e| failed(format!("dead-letter topic {}: {e}", topic.topic())))?;
        }
        let images = pending.flushed.catalog_images();
        let deltas = pending.deltas();
        Ok(self
            .catalog
            .commit_partition(&PartitionCommit {
                run_id: &o.run_id,
                group: &o.group,
                topic: &o.topic,
                partition: run.partition,
                expected_offset: run.committed,
                next_offset: run.next,
                publishes: &pending.publishes,
                deltas: &deltas,
                letters: &pending.letters,
                files: &files,
                images: &images,
                snapshot,
            })
            .await?)
    }
}
