//! Kafka against librdkafka's in-process mock cluster (real protocol over TCP): the simulator
//! produces every event, keyed by creator, and nothing is lost or reordered within a creator;
//! `bench ingest` measures the consumer against a bare loop on it.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use social_reward::sources::simulator::Scenario;

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
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_social-reward"))
        .args([
            "--quiet", "bench", "ingest", "--users", "60", "--days", "0.5",
        ])
        .args(["--scale", "2", "--partitions", "4", "--db", &url])
        .args(["--kafka-set", "fetch.max.bytes=1048576"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let scratch = format!("social_reward_bench_{}", child.id());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", output.status);
    let bench: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
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
