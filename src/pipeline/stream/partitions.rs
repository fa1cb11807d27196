//! Opening a partition from the catalog: its state snapshot (or a fresh one at the partition's
//! first retained offset) and the offset replay runs up to. The consumer is moved there only if
//! its first message is elsewhere (see `Consumption::take`).

use std::time::Instant;

use tracing::info;

use crate::curate::partition::PartitionCurator;
use crate::store::Catalog;

use super::error::StreamError;
use super::metrics::StreamMetrics;
use super::options::StreamOptions;
use crate::sources::PartitionSource;

pub(super) struct Ctx<'a> {
    pub(super) options: &'a StreamOptions,
    pub(super) catalog: &'a Catalog,
    /// What the partitions are read from: files or a consumer group.
    pub(super) source: &'a dyn PartitionSource,
    pub(super) metrics: &'a StreamMetrics,
}

impl Ctx<'_> {
    /// A partition first seen (assigned, or reassigned): state from the catalog's snapshot, or
    /// from scratch at the partition's first retained offset.
    pub(super) async fn open_partition(
        &self,
        partition: i32,
        epoch: u64,
    ) -> Result<PartitionRun, StreamError> {
        let o = self.options;
        let stored = self
            .catalog
            .partition_state(&o.group, &o.topic, partition)
            .await?;
        let (curator, start) = match &stored.snapshot {
            Some((at, bytes)) => (PartitionCurator::restore(&o.settings, bytes)?, *at),
            None => (
                PartitionCurator::new(&o.settings)?,
                self.low_watermark(partition)?,
            ),
        };
        let replay_until = stored.next_offset.unwrap_or(start).max(start);
        info!(partition, start, replay_until, "partition opened");
        Ok(PartitionRun {
            epoch,
            curator,
            committed: stored.next_offset,
            next: start,
            replay_until,
            sought: None,
            seeking: false,
            first_pending: None,
            last_snapshot: None,
        })
    }

    fn low_watermark(&self, partition: i32) -> Result<i64, StreamError> {
        Ok(self.source.low_watermark(partition)?)
    }

    /// Asks for the partition to be read from `offset`: a `Polled::Sought` mark will say from
    /// which record on it is.
    pub(super) fn seek(&self, partition: i32, offset: i64, epoch: u64) {
        self.source.seek(partition, offset, epoch);
    }
}

pub(super) struct PartitionRun {
    /// Which opening of the partition this is; answers about earlier ones are stale.
    pub(super) epoch: u64,
    pub(super) curator: PartitionCurator,
    /// The catalog's next offset for the partition once the queued commits land (`None`: never
    /// committed).
    pub(super) committed: Option<i64>,
    /// Offset of the next message to fold in.
    pub(super) next: i64,
    /// Messages before this offset are replays.
    pub(super) replay_until: i64,
    /// The offset the consumer was last told to seek to (`None`: not told yet).
    pub(super) sought: Option<i64>,
    /// A seek was asked for and its mark has not come: the partition's messages until then
    /// were fetched before it.
    pub(super) seeking: bool,
    pub(super) first_pending: Option<Instant>,
    pub(super) last_snapshot: Option<Instant>,
}
