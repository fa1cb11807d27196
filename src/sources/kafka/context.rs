//! What librdkafka tells the consumer loop on its own threads: rebalances, queued for the loop
//! to act on between messages, and statistics, whose consumer lag goes to the metrics.

use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::sources::feed::RebalanceEvent;
use crate::sources::mailbox::Mailbox;

/// Where the consumer lag librdkafka's statistics report goes (the stream's metrics).
pub trait LagGauge: Send + Sync {
    fn lag(&self, partition: i32, lag: i64);
}

/// What librdkafka reports on its own: rebalances, for the loop to act on between messages,
/// and statistics, whose consumer lag goes straight to the metrics.
#[derive(Clone)]
pub struct RebalanceLog {
    pub events: Arc<Mailbox<RebalanceEvent>>,
    pub metrics: Arc<dyn LagGauge>,
}

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
        self.events.post((assigned, partitions));
    }

    pub fn take(&self) -> Vec<RebalanceEvent> {
        self.events.take()
    }
}
