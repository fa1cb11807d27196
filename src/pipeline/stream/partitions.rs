//! Opening a partition from the catalog: its state snapshot (or a fresh one at the partition's
//! first retained offset) and the offset replay runs up to. The consumer is moved there only if
//! its first message is elsewhere (see `Consumption::take`).

use std::time::Duration;

use rdkafka::consumer::Consumer;
use tracing::info;

use crate::curate::partition::PartitionCurator;
use crate::pipeline::StageError;
use crate::store::Catalog;

use super::consumption::PartitionRun;
use super::metrics::StreamMetrics;
use super::poller::ConsumerLink;
use super::{StreamOptions, failed};

pub(super) struct Ctx<'a> {
    pub(super) options: &'a StreamOptions,
    pub(super) catalog: &'a Catalog,
    /// `None` for files, which are read from wherever their partition's run says.
    pub(super) consumer: Option<&'a ConsumerLink>,
    pub(super) metrics: &'a StreamMetrics,
}

impl Ctx<'_> {
    /// A partition first seen (assigned, or reassigned): state from the catalog's snapshot, or
    /// from scratch at the partition's first retained offset.
    pub(super) async fn open_partition(
        &self,
        partition: i32,
        epoch: u64,
    ) -> Result<PartitionRun, StageError> {
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

    fn low_watermark(&self, partition: i32) -> Result<i64, StageError> {
        let Some(consumer) = self.consumer else {
            return Ok(0);
        };
        let (low, _) = consumer
            .consumer
            .fetch_watermarks(&self.options.topic, partition, Duration::from_secs(10))
            .map_err(|e| failed(format!("watermarks of partition {partition}: {e}")))?;
        Ok(low)
    }

    /// Asks for the partition to be read from `offset`. `true`: a `Polled::Sought` mark will
    /// say from which message on it is.
    pub(super) fn seek(&self, partition: i32, offset: i64, epoch: u64) -> bool {
        match self.consumer {
            Some(consumer) => {
                consumer.seek(partition, offset, epoch);
                true
            }
            None => false,
        }
    }
}
