//! What librdkafka tells the consumer loop on its own threads: rebalances, queued for the loop
//! to act on between messages, and statistics, whose consumer lag goes to the metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use super::metrics::StreamMetrics;

/// What librdkafka reports on its own: rebalances, for the loop to act on between messages,
/// and statistics, whose consumer lag goes straight to the metrics.
#[derive(Clone)]
pub(super) struct RebalanceLog {
    pub(super) events: Arc<RebalanceQueue>,
    pub(super) metrics: Arc<StreamMetrics>,
}

/// Rebalances not yet taken. The poll thread looks after every message; the flag spares it a
/// lock each time, since rebalances are rare.
#[derive(Default)]
pub(super) struct RebalanceQueue {
    noted: AtomicBool,
    events: Mutex<Vec<RebalanceEvent>>,
}

/// (assigned rather than revoked, the partitions).
pub(super) type RebalanceEvent = (bool, Vec<i32>);

impl ClientContext for RebalanceLog {
    fn stats(&self, statistics: Statistics) {
        for topic in statistics.topics.values() {
            for (&partition, stats) in &topic.partitions {
                // -1 is librdkafka's unassigned-messages partition; a lag of -1 is unknown.
                if partition >= 0 && stats.consumer_lag >= 0 {
                    self.metrics.lag(partition, stats.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for RebalanceLog {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.note(false, list);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.note(true, list);
        }
    }
}

impl RebalanceLog {
    fn note(&self, assigned: bool, list: &TopicPartitionList) {
        let partitions = list.elements().iter().map(|e| e.partition()).collect();
        if let Ok(mut log) = self.events.events.lock() {
            log.push((assigned, partitions));
        }
        self.events.noted.store(true, Ordering::Release);
    }

    pub(super) fn take(&self) -> Vec<RebalanceEvent> {
        if !self.events.noted.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        self.events
            .events
            .lock()
            .map(|mut log| std::mem::take(&mut *log))
            .unwrap_or_default()
    }
}
