//! `bench ingest`: the streaming consumer (`social-reward ingest`, a child process, committing
//! every batch to the catalog) beside a bare rdkafka loop that does nothing with the messages, on
//! the same in-process broker (librdkafka's mock cluster) and the same topic; then the same over
//! a stream ten times longer, for the consumer's peak memory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;

use crate::sinks::kafka::KafkaTarget;
use crate::sources::kafka::consumer_config;

use super::{BenchError, peak_rss_mib_of, simulate_without_images_to};

#[derive(Debug, Serialize)]
pub struct IngestFigure {
    pub users: u64,
    pub days: f64,
    pub messages: u64,
    pub bare_per_second: f64,
    pub ingest_per_second: f64,
    /// Ingest over bare, measured in this run.
    pub ratio: f64,
    pub commits: u64,
    pub commit_p50_ms: f64,
    pub commit_p99_ms: f64,
    pub triplets: u64,
    /// The ingest process's peak resident memory.
    pub peak_rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct IngestBench {
    pub partitions: i32,
    pub catalog: String,
    /// The librdkafka settings both loops ran with, beyond the consumer's own.
    pub kafka_settings: Vec<String>,
    pub figures: Vec<IngestFigure>,
    /// Peak memory over the longer stream against the shorter one.
    pub rss_growth: Option<f64>,
}

/// What to measure, and on which catalog.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub users: u64,
    pub days: f64,
    /// The second stream is this many times longer.
    pub scale: u32,
    pub partitions: i32,
    pub catalog: String,
    /// librdkafka settings for both loops.
    pub kafka: Vec<(String, String)>,
}

pub async fn ingest(options: &IngestOptions) -> Result<IngestBench, BenchError> {
    let catalog = options.catalog.as_str();
    let scratch = ScratchCatalog::create(catalog).await?;
    let measured = measure(options, &scratch.url).await;
    scratch.drop_now().await;
    let mut bench = measured?;
    bench.catalog = catalog.split('@').next_back().unwrap_or(catalog).to_owned();
    Ok(bench)
}

/// On PostgreSQL, a database of the bench's own beside the one it was given, dropped at the
/// end: every run simulates the same stream, so in a shared catalog each run would update the
/// same image rows again (a dozen runs left 700k dead rows, and later runs were slower for it).
struct ScratchCatalog {
    url: String,
    /// The given URL and the scratch database's name, to drop it.
    made: Option<(String, String)>,
}

impl ScratchCatalog {
    async fn create(catalog: &str) -> Result<Self, BenchError> {
        use sqlx::Connection;
        let postgres = catalog.starts_with("postgres://") || catalog.starts_with("postgresql://");
        let (location, query) = catalog.split_once('?').unwrap_or((catalog, ""));
        let Some((server, _)) = location.rsplit_once('/').filter(|_| postgres) else {
            return Ok(Self {
                url: catalog.to_owned(),
                made: None,
            });
        };
        let name = format!("social_reward_bench_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(catalog)
            .await
            .map_err(BenchError::ScratchDatabase)?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .map_err(BenchError::ScratchDatabase)?;
        let url = match query {
            "" => format!("{server}/{name}"),
            query => format!("{server}/{name}?{query}"),
        };
        Ok(Self {
            url,
            made: Some((catalog.to_owned(), name)),
        })
    }

    async fn drop_now(self) {
        use sqlx::Connection;
        let Some((catalog, name)) = self.made else {
            return;
        };
        let dropped = match sqlx::PgConnection::connect(&catalog).await {
            Ok(mut admin) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(error) = dropped {
            tracing::warn!(%error, database = %name, "could not drop the bench's scratch database");
        }
    }
}

async fn measure(options: &IngestOptions, catalog: &str) -> Result<IngestBench, BenchError> {
    let IngestOptions {
        users,
        days,
        scale,
        partitions,
        ..
    } = *options;
    let mock = MockCluster::new(1)?;
    let brokers = mock.bootstrap_servers();
    let scratch =
        std::env::temp_dir().join(format!("social-reward-bench-ingest-{}", std::process::id()));
    let mut figures = Vec::new();
    let steps = [(1, days), (scale.max(1), days * f64::from(scale.max(1)))];
    for (index, (step, days)) in steps.into_iter().enumerate() {
        let topic = format!("events-{index}-x{step}");
        mock.create_topic(&topic, partitions, 1)?;
        let dir = scratch.join(&topic);
        let target = KafkaTarget {
            brokers: brokers.clone(),
            topic: topic.clone(),
            per_second: None,
            create: crate::sinks::kafka::TopicLayout::default(),
        };
        let simulated = simulate_without_images_to(&dir, users, days, Some(target))?;
        let messages = simulated.kafka_messages.unwrap_or(0);
        check_retained(&brokers, &topic, partitions)?;
        let bare_seconds = bare_loop(&brokers, &topic, partitions, messages, &options.kafka)?;
        let report = ingest_child(&brokers, &topic, catalog, &dir.join("out"), &options.kafka)?;
        let number = |key: &str| report.0[key].as_f64().unwrap_or(0.0);
        if number("messages") as u64 != messages {
            return Err(BenchError::ShortRead {
                reader: "ingest",
                read: number("messages") as u64,
                expected: messages,
            });
        }
        let bare_per_second = messages as f64 / bare_seconds.max(1e-9);
        let ingest_per_second = messages as f64 / number("busy_seconds").max(1e-9);
        figures.push(IngestFigure {
            users,
            days,
            messages,
            bare_per_second,
            ingest_per_second,
            ratio: ingest_per_second / bare_per_second,
            commits: number("commits") as u64,
            commit_p50_ms: number("commit_latency_ms_p50"),
            commit_p99_ms: number("commit_latency_ms_p99"),
            triplets: number("triplets") as u64,
            peak_rss_mib: report.1,
        });
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let rss = |f: Option<&IngestFigure>| f.and_then(|f| f.peak_rss_mib);
    let rss_growth = match (rss(figures.first()), rss(figures.last())) {
        (Some(short), Some(long)) => Some(long / short),
        _ => None,
    };
    Ok(IngestBench {
        partitions,
        catalog: catalog.split('@').next_back().unwrap_or(catalog).to_owned(),
        kafka_settings: options
            .kafka
            .iter()
            .map(|(key, value)| crate::store::redact::setting(key, value))
            .collect(),
        figures,
        rss_growth,
    })
}

/// librdkafka's mock broker keeps only the last 5 MiB (or 100,000 message sets) of each
/// partition and drops older ones silently: a stream too large for the partitions would be
/// measured short.
fn check_retained(brokers: &str, topic: &str, partitions: i32) -> Result<(), BenchError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    for partition in 0..partitions {
        let (low, _) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        if low > 0 {
            return Err(BenchError::BrokerDropped {
                topic: topic.to_owned(),
                partition,
                low,
            });
        }
    }
    Ok(())
}

/// Seconds from the first message to the last of `expected`, doing nothing with them.
fn bare_loop(
    brokers: &str,
    topic: &str,
    partitions: i32,
    expected: u64,
    settings: &[(String, String)],
) -> Result<f64, BenchError> {
    let mut config = consumer_config(brokers, &format!("bare-{topic}"));
    for (key, value) in settings {
        config.set(key, value);
    }
    let consumer: BaseConsumer = config.create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut seen, mut first) = (0u64, None);
    while seen < expected && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message?;
            first.get_or_insert_with(Instant::now);
            seen += 1;
        }
    }
    if seen < expected {
        return Err(BenchError::ShortRead {
            reader: "the bare loop",
            read: seen,
            expected,
        });
    }
    Ok(first.map_or(0.0, |t| t.elapsed().as_secs_f64()))
}

/// Runs `social-reward ingest` until idle; returns its report and its peak memory (sampled).
fn ingest_child(
    brokers: &str,
    topic: &str,
    catalog: &str,
    out: &Path,
    settings: &[(String, String)],
) -> Result<(serde_json::Value, Option<f64>), BenchError> {
    let exe = std::env::current_exe().map_err(BenchError::Child)?;
    let group = format!("bench-{topic}-{}", std::process::id());
    let mut child = Command::new(exe)
        .args(["--quiet", "ingest", "--brokers", brokers, "--topic", topic])
        .args(["--group", &group, "--db", catalog, "--out"])
        .arg(out)
        .args(["--no-image-dedup", "--no-metrics", "--until-idle", "2"])
        .args(
            settings
                .iter()
                .flat_map(|(key, value)| ["--kafka-set".to_owned(), format!("{key}={value}")]),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(BenchError::Child)?;
    let pid = child.id().to_string();
    let mut peak = None;
    while child.try_wait().map_err(BenchError::Child)?.is_none() {
        peak = peak_rss_mib_of(&pid).or(peak);
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().map_err(BenchError::Child)?;
    if !output.status.success() {
        return Err(BenchError::ChildFailed(output.status));
    }
    let report = serde_json::from_slice(&output.stdout).map_err(BenchError::Report)?;
    Ok((report, peak))
}
