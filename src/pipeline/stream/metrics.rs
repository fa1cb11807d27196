//! What the streaming consumer reports over HTTP: `/metrics` in Prometheus' text format and
//! `/health`. Counters are this process's (events by kind, dead letters by reason, commits,
//! triplets); gauges are per partition it holds (consumer lag from librdkafka's statistics, open
//! generation sessions); commit latency is a histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::events::{EventKind, Reason};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    partition: i32,
}

/// The loop ticks at least every 200 ms; this long without a tick is unhealthy.
const STALL: Duration = Duration::from_secs(30);

pub struct StreamMetrics {
    registry: Registry,
    events: Family<KindLabel, Counter>,
    dead_letters: Family<ReasonLabel, Counter>,
    commit_seconds: Histogram,
    commits: Counter,
    triplets: Counter,
    lag: Family<PartitionLabel, Gauge>,
    open_sessions: Family<PartitionLabel, Gauge>,
    last_tick_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Default for StreamMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("social_reward");
        let events = Family::<KindLabel, Counter>::default();
        let dead_letters = Family::<ReasonLabel, Counter>::default();
        // 1 ms to ~33 s.
        let commit_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let (commits, triplets) = (Counter::default(), Counter::default());
        let lag = Family::<PartitionLabel, Gauge>::default();
        let open_sessions = Family::<PartitionLabel, Gauge>::default();
        registry.register(
            "events",
            "Valid events consumed, by kind (one the windows refuse later is also a dead letter)",
            events.clone(),
        );
        registry.register(
            "dead_letters",
            "Dead letters committed, by reason",
            dead_letters.clone(),
        );
        registry.register(
            "batch_commit_seconds",
            "Time to write a batch's files and commit it to the catalog",
            commit_seconds.clone(),
        );
        registry.register("batch_commits", "Batches committed", commits.clone());
        registry.register("triplets_emitted", "Triplet rows written", triplets.clone());
        registry.register(
            "consumer_lag",
            "Messages behind the partition's end (librdkafka statistics)",
            lag.clone(),
        );
        registry.register(
            "open_sessions",
            "Generation sessions whose windows are open",
            open_sessions.clone(),
        );
        Self {
            registry,
            events,
            dead_letters,
            commit_seconds,
            commits,
            triplets,
            lag,
            open_sessions,
            last_tick_ms: AtomicU64::new(now_ms()),
        }
    }
}

impl StreamMetrics {
    pub fn events(&self, kind: EventKind, count: u64) {
        self.events
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc_by(count);
    }

    pub fn dead_letter(&self, reason: Reason) {
        self.dead_letters
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    pub fn committed(&self, seconds: f64, triplets: u64) {
        self.commit_seconds.observe(seconds);
        self.commits.inc();
        self.triplets.inc_by(triplets);
    }

    pub fn partition(&self, partition: i32, open_sessions: u64) {
        self.open_sessions
            .get_or_create(&PartitionLabel { partition })
            .set(i64::try_from(open_sessions).unwrap_or(i64::MAX));
    }

    pub fn lag(&self, partition: i32, lag: i64) {
        self.lag
            .get_or_create(&PartitionLabel { partition })
            .set(lag);
    }

    /// A partition this consumer no longer holds leaves the gauges.
    pub fn forget(&self, partition: i32) {
        self.lag.remove(&PartitionLabel { partition });
        self.open_sessions.remove(&PartitionLabel { partition });
    }

    pub fn tick(&self) {
        self.last_tick_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn healthy(&self) -> bool {
        let last = self.last_tick_ms.load(Ordering::Relaxed);
        now_ms().saturating_sub(last) < STALL.as_millis() as u64
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Events counted on the consume loop and handed to the metrics now and then: a labelled
/// counter per message (a lock and a hash) was a measurable share of the loop.
#[derive(Default)]
pub struct EventTally([u64; 3]);

impl EventTally {
    const KINDS: [EventKind; 3] = [EventKind::Publish, EventKind::View, EventKind::Remix];

    pub fn count(&mut self, kind: EventKind) {
        let slot = match kind {
            EventKind::Publish => 0,
            EventKind::View => 1,
            EventKind::Remix => 2,
        };
        self.0[slot] += 1;
    }

    pub fn report_to(&mut self, metrics: &StreamMetrics) {
        for (kind, count) in Self::KINDS.into_iter().zip(&mut self.0) {
            if *count > 0 {
                metrics.events(kind, std::mem::take(count));
            }
        }
    }
}

/// Serves `/metrics` and `/health` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<StreamMetrics>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/health", get(health))
        .with_state(metrics);
    axum::serve(listener, app).await
}

async fn render(State(metrics): State<Arc<StreamMetrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}

async fn health(State(metrics): State<Arc<StreamMetrics>>) -> impl IntoResponse {
    match metrics.healthy() {
        true => (StatusCode::OK, "ok\n"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "stalled\n"),
    }
}

impl crate::sources::kafka::LagGauge for StreamMetrics {
    fn lag(&self, partition: i32, lag: i64) {
        StreamMetrics::lag(self, partition, lag);
    }
}
