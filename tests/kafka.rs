//! Kafka against librdkafka's in-process mock cluster (real protocol over TCP): the simulator
//! produces every event, keyed by creator, and nothing is lost or reordered within a creator;
//! `bench ingest` measures the consumer against a bare loop on it. The simulator makes a
//! missing topic first: checked on tansu (as in tests/chaos.rs), since the mock cannot create
//! topics through the admin API; on the mock, the failure to create one.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::cli::Cli;
use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use social_reward::sinks::kafka::{KafkaSinkError, KafkaTarget, TopicError, TopicLayout};
use social_reward::sources::simulator::{
    Scenario, SimulateOptions, SimulationSummary, SimulatorError, simulate,
};

const PARTITIONS: i32 = 4;

#[test]
fn simulate_to_kafka_delivers_every_event_keyed_by_creator() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("events", PARTITIONS, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario {
        users: 150,
        days: 0.5,
        seed: 3,
        ..Scenario::default()
    };
    let summary =
        common::simulate_to_kafka(dir.path(), &mock.bootstrap_servers(), "events", scenario);
    let file = std::fs::read(dir.path().join("events.jsonl")).unwrap();
    let lines: Vec<&[u8]> = file
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(summary.kafka_messages, Some(lines.len() as u64));
    assert!(lines.len() > 1000, "{}", lines.len());
    assert_eq!(
        partition_count(&mock.bootstrap_servers(), "events"),
        PARTITIONS,
        "an existing topic is left as it is"
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset("events", partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut received: Vec<(i32, Vec<u8>, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.len() < lines.len() && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            received.push((
                message.partition(),
                message.key().unwrap_or_default().to_vec(),
                message.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    assert_eq!(received.len(), lines.len(), "every event arrives once");

    // Each creator lives in one partition, and there its events keep the file's order.
    let mut partition_of: HashMap<Vec<u8>, i32> = HashMap::new();
    let mut per_key: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for (partition, key, payload) in &received {
        assert_eq!(
            *partition_of.entry(key.clone()).or_insert(*partition),
            *partition
        );
        per_key
            .entry(key.clone())
            .or_default()
            .push(payload.clone());
    }
    assert!(
        partition_of
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
    );
    let mut from_file: Vec<&[u8]> = lines.clone();
    let mut from_kafka: Vec<&[u8]> = received.iter().map(|r| r.2.as_slice()).collect();
    from_file.sort();
    from_kafka.sort();
    assert_eq!(from_file, from_kafka, "the same events, byte for byte");
    // Each creator's messages are a subsequence of the file: produced in order, kept in order.
    for payloads in per_key.values() {
        let mut cursor = 0;
        for payload in payloads {
            let found = lines[cursor..].iter().position(|l| l == payload);
            assert!(
                found.is_some(),
                "out of order: {}",
                String::from_utf8_lossy(payload)
            );
            cursor += found.unwrap_or(0) + 1;
        }
    }
}

/// The instrument behind the throughput figures: both streams read whole by both loops, the
/// consumer's report taken in, and its scratch database gone afterwards.
#[tokio::test]
async fn bench_ingest_reads_both_streams_and_drops_its_database() {
    let url = common::postgres_url();
    let running = Cli::new()
        .args([
            "--quiet", "bench", "ingest", "--users", "60", "--days", "0.5",
        ])
        .args(["--scale", "2", "--partitions", "4", "--db", &url])
        .args(["--kafka-set", "fetch.max.bytes=1048576"])
        .spawn();
    let scratch = format!("social_reward_bench_{}", running.id());
    let bench = running.wait().success().json();
    let figures = bench["figures"].as_array().unwrap();
    assert_eq!(figures.len(), 2);
    let messages: Vec<u64> = figures
        .iter()
        .map(|f| f["messages"].as_u64().unwrap())
        .collect();
    assert!(
        messages[0] > 100 && messages[1] > messages[0],
        "{messages:?}"
    );
    for figure in figures {
        for key in [
            "bare_per_second",
            "ingest_per_second",
            "ratio",
            "peak_rss_mib",
        ] {
            assert!(figure[key].as_f64().unwrap() > 0.0, "{key}: {figure}");
        }
        assert!(figure["commits"].as_u64().unwrap() > 0, "{figure}");
    }
    // The given catalog is named (without credentials), not the scratch one.
    let server_and_name = url.split('@').next_back().unwrap();
    assert_eq!(bench["catalog"], server_and_name, "{bench}");
    assert_eq!(
        bench["kafka_settings"],
        serde_json::json!(["fetch.max.bytes=1048576"])
    );

    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&scratch)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "{scratch} was not dropped");
}

/// Partitions of `topic` as the brokers list them, without creating it (0: no such topic).
fn partition_count(brokers: &str, topic: &str) -> i32 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .sum()
}

/// Simulates a small community into `dir` and to `topic`, made with `partitions` if missing.
fn simulate_into(
    dir: &std::path::Path,
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Result<SimulationSummary, SimulatorError> {
    simulate(&SimulateOptions {
        out: dir.to_path_buf(),
        scenario: Scenario {
            users: 60,
            days: 0.3,
            seed: 9,
            ..Scenario::default()
        },
        images: false,
        image_size: 64,
        gzip: false,
        progress: false,
        kafka: Some(KafkaTarget {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            per_second: None,
            create: TopicLayout {
                partitions,
                replication_factor: 1,
            },
        }),
    })
}

/// A missing topic that cannot be created: simulate fails before producing anything, naming the
/// brokers, the topic and the commands that make it, instead of failing every message once all
/// were tried. The mock cluster names no controller (and has no CreateTopics), so the request
/// times out after 15 s; a broker that refuses (authorisation, policy) answers at once.
#[test]
fn a_missing_topic_that_cannot_be_made_fails_at_once_with_the_way_to_make_it() {
    let mock = MockCluster::new(1).unwrap();
    let brokers = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let error = simulate_into(dir.path(), &brokers, "fresh", 3).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30), "{error}");
    assert!(
        matches!(
            &error,
            SimulatorError::Kafka(KafkaSinkError::Topic(topic))
                if matches!(**topic, TopicError::NotCreated { .. })
        ),
        "{error:?}"
    );
    let text = error.to_string();
    let first = brokers.split(',').next().unwrap();
    for words in [
        format!("topic fresh does not exist on {brokers}"),
        format!("kafka-topics --bootstrap-server {brokers} --create --topic fresh --partitions 3"),
        "--replication-factor 1".to_owned(),
        format!("tansu topic create fresh --partitions 3 --broker tcp://{first}"),
    ] {
        assert!(text.contains(&words), "{words:?} not in {text}");
    }
    // Nothing was generated, and the probe did not make the topic with the broker's defaults.
    let events = std::fs::read(dir.path().join("events.jsonl")).unwrap_or_default();
    assert!(events.is_empty(), "{} bytes of events", events.len());
    assert_eq!(partition_count(&brokers, "fresh"), 0);
}

/// On a broker that creates topics (tansu in a process of its own, as in tests/chaos.rs): the
/// missing topic is made with the partitions asked for, and every event arrives in them.
#[test]
fn a_missing_topic_is_made_with_the_partitions_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::tansu::TansuBroker::start(dir.path());
    let out = dir.path().join("simulated");
    let summary = simulate_into(&out, &broker.brokers, "fresh", 3).unwrap();
    let lines = std::fs::read_to_string(&summary.events)
        .unwrap()
        .lines()
        .count();
    assert_eq!(summary.kafka_messages, Some(lines as u64));
    assert_eq!(partition_count(&broker.brokers, "fresh"), 3);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .set("group.id", "check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..3 {
        assignment
            .add_partition_offset("fresh", partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut per_partition: HashMap<i32, usize> = HashMap::new();
    // tansu's fetches can come back empty for seconds: a generous deadline.
    let deadline = Instant::now() + Duration::from_secs(120);
    while per_partition.values().sum::<usize>() < lines && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            *per_partition
                .entry(message.unwrap().partition())
                .or_default() += 1;
        }
    }
    assert_eq!(
        per_partition.values().sum::<usize>(),
        lines,
        "{per_partition:?}"
    );
    assert!(
        per_partition.len() > 1,
        "keys spread over the partitions: {per_partition:?}"
    );
}
