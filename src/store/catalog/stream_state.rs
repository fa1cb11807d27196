//! The streaming consumer's commits: everything one partition's micro-batch changed, with the
//! partition's next offset, in ONE transaction (several partitions may share it), and the state
//! snapshots it restarts from.
//!
//! The offset is compare-and-set: a commit names the offset it started from, and if another
//! consumer moved the partition on meanwhile (a rebalance handed it over while this one was
//! still working), nothing is written and the caller learns it was fenced off.

use chrono::Utc;

use super::*;

/// One partition's micro-batch, ready to commit.
pub struct PartitionCommit<'a> {
    pub run_id: &'a str,
    /// Where the files went (`ObjectRoot::location`).
    pub location: &'a str,
    pub group: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    /// The next offset the catalog holds for the partition now (`None`: never committed).
    pub expected_offset: Option<i64>,
    pub next_offset: i64,
    pub publishes: &'a [Publish<'a>],
    pub deltas: &'a [CounterDelta],
    pub letters: &'a [DeadLetter],
    pub files: &'a [ManifestEntry],
    pub images: &'a [CuratedImage<'a>],
    /// The curation state at `next_offset`, when this commit also snapshots it.
    pub snapshot: Option<&'a [u8]>,
}

#[derive(Debug, Clone)]
pub enum CommitOutcome {
    Committed(AppliedBatch),
    /// Another consumer committed this partition since `expected_offset`: nothing was written.
    Fenced,
}

/// Where a partition stands in the catalog.
#[derive(Debug, Clone, Default)]
pub struct PartitionState {
    pub next_offset: Option<i64>,
    /// (offset the state was taken at, the state).
    pub snapshot: Option<(i64, Vec<u8>)>,
}

impl Catalog {
    pub async fn commit_partition(
        &self,
        commit: &PartitionCommit<'_>,
    ) -> Result<CommitOutcome, CatalogError> {
        let mut outcomes = self.commit_partitions(std::slice::from_ref(commit)).await?;
        Ok(outcomes.pop().unwrap_or(CommitOutcome::Fenced))
    }

    /// Several partitions' micro-batches in ONE transaction (one disk flush for all of them),
    /// each behind its own savepoint: a partition that is fenced off writes nothing while the
    /// others commit. An error rolls everything back.
    pub async fn commit_partitions(
        &self,
        commits: &[PartitionCommit<'_>],
    ) -> Result<Vec<CommitOutcome>, CatalogError> {
        const MOVE_SQL: &str = "UPDATE consumer_offsets SET next_offset = $1, updated_at = $2 \
            WHERE consumer_group = $3 AND topic = $4 AND partition_id = $5 AND next_offset = $6";
        const FIRST_SQL: &str = "INSERT INTO consumer_offsets (consumer_group, topic, \
            partition_id, next_offset, updated_at) VALUES ($1, $2, $3, $4, $5) \
            ON CONFLICT (consumer_group, topic, partition_id) DO NOTHING";
        const SNAPSHOT_SQL: &str = "INSERT INTO stream_snapshots (consumer_group, topic, \
            partition_id, next_offset, state, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
            ON CONFLICT (consumer_group, topic, partition_id) DO UPDATE \
            SET next_offset = excluded.next_offset, state = excluded.state, \
            updated_at = excluded.updated_at";
        let now = Utc::now();
        let mut outcomes = Vec::with_capacity(commits.len());
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for c in commits {
                let mut sp = sqlx::Connection::begin(&mut *tx).await?;
                let moved = match c.expected_offset {
                    Some(expected) => sqlx::query(MOVE_SQL)
                        .bind(c.next_offset)
                        .bind(now)
                        .bind(c.group)
                        .bind(c.topic)
                        .bind(c.partition)
                        .bind(expected)
                        .execute(&mut *sp)
                        .await?
                        .rows_affected(),
                    None => sqlx::query(FIRST_SQL)
                        .bind(c.group)
                        .bind(c.topic)
                        .bind(c.partition)
                        .bind(c.next_offset)
                        .bind(now)
                        .execute(&mut *sp)
                        .await?
                        .rows_affected(),
                };
                if moved != 1 {
                    sp.rollback().await?;
                    outcomes.push(CommitOutcome::Fenced);
                    continue;
                }
                let images_inserted = sp.insert_images(c.publishes).await?;
                let unmatched = sp.add_counters(c.deltas).await?;
                let dead_letters_stored = insert_dead_letter_rows!(sp, c.run_id, c.letters);
                sp.upsert_emitted(c.run_id, c.location, now, c.images).await?;
                insert_file_rows!(sp, c.run_id, now, c.files);
                if let Some(state) = c.snapshot {
                    sqlx::query(SNAPSHOT_SQL)
                        .bind(c.group)
                        .bind(c.topic)
                        .bind(c.partition)
                        .bind(c.next_offset)
                        .bind(state)
                        .bind(now)
                        .execute(&mut *sp)
                        .await?;
                }
                sp.commit().await?;
                outcomes.push(CommitOutcome::Committed(AppliedBatch {
                    images_inserted,
                    unmatched,
                    dead_letters_stored,
                }));
            }
            tx.commit().await?;
        });
        Ok(outcomes)
    }

    pub async fn partition_state(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionState, CatalogError> {
        const OFFSET_SQL: &str = "SELECT next_offset FROM consumer_offsets \
            WHERE consumer_group = $1 AND topic = $2 AND partition_id = $3";
        const SNAPSHOT_SQL: &str = "SELECT next_offset, state FROM stream_snapshots \
            WHERE consumer_group = $1 AND topic = $2 AND partition_id = $3";
        on_pool!(self, pool => {
            let next_offset = sqlx::query_scalar::<_, i64>(OFFSET_SQL)
                .bind(group)
                .bind(topic)
                .bind(partition)
                .fetch_optional(pool)
                .await?;
            let snapshot = sqlx::query_as::<_, (i64, Vec<u8>)>(SNAPSHOT_SQL)
                .bind(group)
                .bind(topic)
                .bind(partition)
                .fetch_optional(pool)
                .await?;
            Ok(PartitionState { next_offset, snapshot })
        })
    }
}
