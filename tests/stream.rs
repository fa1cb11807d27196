//! The streaming consumer against librdkafka's mock cluster (real protocol over TCP) and the
//! real PostgreSQL: it writes exactly the triplet files batch `curate` writes for the same
//! events, and crashes (the consumer stopping dead mid-batch, then restarting) change nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::streaming::{Simulated, batch_curate, config, mock_cluster, scenario, triplet_files};
use common::{ScratchDatabase, wait_until};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use social_reward::curate::ImageDedup;
use social_reward::curate::partition::PartitionSettings;
use social_reward::events::{Limits, Reason, Timestamp};
use social_reward::pipeline::stream::{
    Behind, StreamError, StreamInput, StreamOptions, StreamReport, run_stream,
};
use social_reward::store::Catalog;

fn settings() -> PartitionSettings {
    PartitionSettings {
        config: config(),
        limits: Limits::default(),
        now: Timestamp::now(),
        dedup_horizon_hours: 6.0,
        image_dedup: ImageDedup::Off,
        images: None,
        pictures: Default::default(),
        supplied: Default::default(),
    }
}

fn free_local_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The whole HTTP/1.1 response to a GET, or `None` when nothing answers.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

/// How many partitions a consumer serving its metrics at `addr` has an `open_sessions` gauge
/// for: set at each commit, removed when the partition is revoked (0 while nothing answers).
async fn open_session_gauges(addr: std::net::SocketAddr) -> usize {
    let Some(response) = http_get(addr, "/metrics").await else {
        return 0;
    };
    response
        .lines()
        .filter(|l| l.starts_with("social_reward_open_sessions{partition="))
        .count()
}

/// The `reason` header of up to `want` messages of a topic, read from its beginning.
fn read_reasons(brokers: &str, topic: &str, want: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "dlq-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut reasons = Vec::new();
    while reasons.len() < want && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let headers = message.headers().unwrap();
            let reason = headers.iter().find(|h| h.key == "reason").unwrap();
            reasons.push(String::from_utf8(reason.value.unwrap().to_vec()).unwrap());
        }
    }
    // Nothing beyond what the catalog holds.
    assert!(consumer.poll(Duration::from_millis(500)).is_none());
    reasons
}

/// Copies a share of each partition of `from` (offsets from `start` to `end` times its length)
/// into the same partition of `to`, keys and payloads as they are.
fn copy_share(brokers: &str, from: &str, to: &str, partitions: i32, (start, end): (f64, f64)) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "copier")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for partition in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(from, partition, Duration::from_secs(10))
            .unwrap();
        let (lo, hi) = ((high as f64 * start) as i64, (high as f64 * end) as i64);
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(from, partition, Offset::Offset(lo))
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let mut next = lo;
        while next < hi {
            let Some(message) = consumer.poll(Duration::from_secs(10)) else {
                panic!("{from}/{partition}: nothing at offset {next}");
            };
            let message = message.unwrap();
            assert_eq!(message.offset(), next);
            let mut record = BaseRecord::to(to)
                .partition(partition)
                .payload(message.payload().unwrap_or_default());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            while let Err((e, back)) = producer.send(record) {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "{e}"
                );
                producer.poll(Duration::from_millis(50));
                record = back;
            }
            producer.poll(Duration::ZERO);
            next += 1;
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn options(brokers: &str, group: &str, out: &Path) -> StreamOptions {
    StreamOptions {
        input: StreamInput::Kafka {
            brokers: brokers.to_owned(),
        },
        topic: "events".into(),
        group: group.into(),
        out: out.display().to_string(),
        run_id: format!("stream-{group}"),
        settings: settings(),
        batch_messages: 500,
        batch_interval: Duration::from_millis(300),
        snapshot_interval: Duration::from_secs(3600),
        until_idle: Some(Duration::from_secs(2)),
        abort_after: None,
        kafka: Vec::new(),
        dead_letter_topic: None,
        metrics_addr: None,
    }
}

async fn stream(options: &StreamOptions, catalog: &Catalog) -> StreamReport {
    run_stream(options, catalog, std::future::pending())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_equals_batch_and_survives_crashes() {
    let mock = mock_cluster(1, 1);
    let brokers = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let Simulated { events, lines } =
        Simulated::on_kafka(dir.path(), &brokers, scenario(300, 1.5, 11));

    let (batch, expected) = batch_curate(&events, &dir.path().join("batch")).await;
    assert!(batch.triplets > 20, "{batch:?}");
    assert!(expected.len() >= 3, "{:?}", expected.keys());

    // A clean streaming run.
    let db = ScratchDatabase::create("stream_clean").await;
    let catalog = db.catalog().await;
    let clean_out = dir.path().join("clean");
    mock.create_topic("events-dlq", 1, 1).unwrap();
    let mut clean_options = options(&brokers, "clean", &clean_out);
    clean_options.dead_letter_topic = Some("events-dlq".into());
    let metrics_addr = free_local_addr();
    clean_options.metrics_addr = Some(metrics_addr);
    // Scrape while the consumer runs; the last answers are those after its last message. The
    // sleep is the sampling interval (the server stays up the 2 s `until_idle` after the last
    // message), not a wait for something: the loop ends when the server stops answering.
    let scraper = tokio::spawn(async move {
        let mut last = None;
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let (Some(metrics), Some(health)) = (
                http_get(metrics_addr, "/metrics").await,
                http_get(metrics_addr, "/health").await,
            ) {
                last = Some((metrics, health));
            } else if last.is_some() {
                break;
            }
        }
        last
    });
    let clean = stream(&clean_options, &catalog).await;
    let (metrics, health) = scraper.await.unwrap().expect("metrics were served");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // Valid views as consumed: those still valid at the end, and at most the views the windows
    // refused afterwards (late, or never claimed by a publish).
    let views = clean.counts.by_kind[&social_reward::events::EventKind::View];
    let refused: u64 = [Reason::Late, Reason::UnknownImage]
        .iter()
        .filter_map(|r| clean.counts.by_reason.get(r))
        .sum();
    let served: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("social_reward_events_total{kind=\"view\"} "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a view counter");
    assert!(
        (views..=views + refused).contains(&served),
        "{served} views served, {views} valid"
    );
    for name in [
        "social_reward_batch_commit_seconds_bucket",
        "social_reward_dead_letters_total{reason=",
        "social_reward_open_sessions{partition=\"0\"}",
        "social_reward_triplets_emitted_total",
    ] {
        assert!(metrics.contains(name), "{name} not in\n{metrics}");
    }
    assert_eq!(clean.messages, lines, "{clean:?}");
    assert_eq!(clean.lag, BTreeMap::from([(0, 0)]), "{clean:?}");
    assert_eq!(clean.triplets, batch.triplets);
    assert!(clean.counts.is_balanced(), "{clean:?}");
    assert_eq!(
        triplet_files(&clean_out),
        expected,
        "stream and batch differ"
    );
    let manifest = catalog.manifest().await.unwrap();
    assert_eq!(manifest.len(), expected.len());
    // The dead-letter topic holds what the catalog's table holds, reason by reason.
    let stored = catalog.dead_letters_by_reason().await.unwrap();
    let stored_total: i64 = stored.iter().map(|(_, n)| n).sum();
    assert!(stored_total > 0 && stored_total as u64 == clean.dead_letters_stored);
    let mut on_topic: BTreeMap<String, i64> = BTreeMap::new();
    for reason in read_reasons(&brokers, "events-dlq", stored_total as usize) {
        *on_topic.entry(reason).or_default() += 1;
    }
    assert_eq!(on_topic, stored.into_iter().collect::<BTreeMap<_, _>>());
    catalog.close().await;
    drop(db);

    // Crashes: stop dead mid-batch several times, restarting from the catalog each time; once
    // with a snapshot at every commit, once replaying from the first snapshot.
    let variants = [
        ("crash_snap", Duration::ZERO),
        ("crash_replay", Duration::from_secs(3600)),
    ];
    for (tag, snapshot_every) in variants {
        let db = ScratchDatabase::create(tag).await;
        let catalog = db.catalog().await;
        let out = dir.path().join(tag);
        // Each run stops dead after reading this many messages, replays included, at moments
        // that fall anywhere within a micro-batch.
        let mut replayed = 0;
        for crash in 0..6 {
            let mut o = options(&brokers, tag, &out);
            o.snapshot_interval = snapshot_every;
            o.abort_after = Some(lines / 8 + 211 * crash);
            let report = stream(&o, &catalog).await;
            assert!(report.aborted, "{report:?}");
            replayed += report.replayed;
        }
        let mut o = options(&brokers, tag, &out);
        o.snapshot_interval = snapshot_every;
        let last = stream(&o, &catalog).await;
        assert!(!last.aborted);
        if snapshot_every > Duration::ZERO {
            assert!(replayed + last.replayed > 0, "{last:?}");
        }
        assert!(last.counts.is_balanced(), "{last:?}");
        assert_eq!(
            last.counts.lines, lines,
            "every message counted once: {last:?}"
        );
        assert_eq!(
            triplet_files(&out),
            expected,
            "{tag}: files differ after crashes"
        );
        let manifest = catalog.manifest().await.unwrap();
        assert_eq!(
            manifest.len(),
            expected.len(),
            "{tag}: no manifest row twice"
        );
        catalog.close().await;
    }
}

/// Two consumers of one group over three partitions, the second joining mid-stream: the
/// rebalance moves partitions between them, and the files are those one consumer writes alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_mid_stream_changes_nothing() {
    let mock = mock_cluster(1, 3);
    let brokers = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let lines = Simulated::on_kafka(dir.path(), &brokers, scenario(300, 1.5, 5)).lines;

    let db = ScratchDatabase::create("stream_alone").await;
    let catalog = db.catalog().await;
    let alone_out = dir.path().join("alone");
    let alone = stream(&options(&brokers, "alone", &alone_out), &catalog).await;
    assert_eq!(alone.partitions, vec![0, 1, 2]);
    assert_eq!(alone.lag, BTreeMap::from([(0, 0), (1, 0), (2, 0)]));
    assert_eq!(alone.counts.lines, lines);
    let expected = triplet_files(&alone_out);
    assert!(expected.len() >= 3, "{:?}", expected.keys());
    catalog.close().await;
    drop(db);

    // The pair reads a copy of the stream that arrives in two halves: the second consumer
    // joins while the first holds every partition mid-stream, whatever the machine's speed.
    mock.create_topic("staged", 3, 1).unwrap();
    copy_share(&brokers, "events", "staged", 3, (0.0, 0.5));
    let db = ScratchDatabase::create("stream_pair").await;
    let catalog = db.catalog().await;
    let out = dir.path().join("pair");
    let mut first = options(&brokers, "pair", &out);
    first.topic = "staged".into();
    first.batch_messages = 5;
    // Idle long enough that the second half, produced once the rebalance has begun, arrives
    // before either consumer takes the quiet for the end: under a loaded test run the copy
    // once started more than 8 s after the rebalance (20,795 of 29,213 lines counted).
    first.until_idle = Some(Duration::from_secs(25));
    let second = first.clone();
    // The first serves its metrics, where a partition has an `open_sessions` gauge from its
    // first commit until it is revoked.
    let first_metrics = free_local_addr();
    first.metrics_addr = Some(first_metrics);
    let (a, b) = tokio::join!(stream(&first, &catalog), async {
        // Once the first has committed on every partition…
        wait_until(
            "the first consumer has committed on every partition",
            Duration::from_secs(30),
            async || {
                let mut all = true;
                for partition in 0..3 {
                    let state = catalog
                        .partition_state("pair", "staged", partition)
                        .await
                        .unwrap();
                    all &= state.next_offset.is_some();
                }
                all && open_session_gauges(first_metrics).await == 3
            },
        )
        .await;
        // …the second joins (the mock takes a few seconds), and once the rebalance it starts
        // has taken partitions from the first, the rest of the stream follows.
        let rest = async {
            wait_until(
                "the second consumer's joining takes partitions from the first",
                Duration::from_secs(60),
                async || open_session_gauges(first_metrics).await < 3,
            )
            .await;
            let brokers = brokers.clone();
            tokio::task::spawn_blocking(move || {
                copy_share(&brokers, "events", "staged", 3, (0.5, 1.0))
            })
            .await
            .unwrap();
        };
        let (report, ()) = tokio::join!(stream(&second, &catalog), rest);
        report
    });
    // The second consumer took over partitions the first had worked on: it restarted them from
    // the catalog. At the end every partition is held by one of them or both (one left just
    // before the other); whoever holds it has its whole count, each message once.
    assert!(
        b.replayed > 0,
        "no partition moved mid-stream: {a:?}\n{b:?}"
    );
    let mut per_partition = a.partition_lines.clone();
    for (partition, lines) in &b.partition_lines {
        let held = per_partition.insert(*partition, *lines);
        assert!(held.is_none_or(|l| l == *lines), "{a:?}\n{b:?}");
    }
    assert_eq!(
        per_partition.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2],
        "{a:?}\n{b:?}"
    );
    assert_eq!(
        per_partition.values().sum::<u64>(),
        lines,
        "every message counted once"
    );
    assert!(a.counts.is_balanced() && b.counts.is_balanced());
    assert_eq!(
        triplet_files(&out),
        expected,
        "files differ after a rebalance"
    );
    assert_eq!(catalog.manifest().await.unwrap().len(), expected.len());
    catalog.close().await;
}

/// Broker faults while consuming: fetch and commit requests failing for a while, then a broker
/// down and up again. The consumer retries through them and writes the same files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_faults_change_nothing() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mock = mock_cluster(3, 2);
    let brokers = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let lines = Simulated::on_kafka(dir.path(), &brokers, scenario(200, 1.5, 8)).lines;

    let db = ScratchDatabase::create("stream_calm").await;
    let catalog = db.catalog().await;
    let calm_out = dir.path().join("calm");
    stream(&options(&brokers, "calm", &calm_out), &catalog).await;
    let expected = triplet_files(&calm_out);
    assert!(expected.len() >= 3, "{:?}", expected.keys());
    catalog.close().await;
    drop(db);

    let db = ScratchDatabase::create("stream_faults").await;
    let catalog = db.catalog().await;
    let out = dir.path().join("faults");
    let mut o = options(&brokers, "faults", &out);
    o.batch_messages = 50;
    // Longer than the outage, so that it is not taken for the end of the input.
    o.until_idle = Some(Duration::from_secs(10));
    let faults = async {
        // The faults strike while the consumer works: once it has committed a first batch.
        wait_until(
            "the consumer has committed a batch",
            Duration::from_secs(60),
            async || {
                let offsets = catalog.stored_offsets("faults", "events").await.unwrap();
                offsets.iter().any(|(_, next)| *next > 0)
            },
        )
        .await;
        let timeouts = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 8];
        mock.request_errors(RDKafkaApiKey::Fetch, &timeouts);
        let not_coordinator = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR; 4];
        mock.request_errors(RDKafkaApiKey::OffsetCommit, &not_coordinator);
        // These sleeps are the faults' schedule, not waits for something: requests fail for a
        // second, then a broker is down for three.
        tokio::time::sleep(Duration::from_secs(1)).await;
        mock.broker_down(1).unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        mock.broker_up(1).unwrap();
    };
    let (report, ()) = tokio::join!(stream(&o, &catalog), faults);
    assert!(
        report.consumer_errors > 0,
        "the faults reached the consumer: {report:?}"
    );
    assert_eq!(report.counts.lines, lines, "{report:?}");
    assert!(report.counts.is_balanced());
    assert_eq!(
        triplet_files(&out),
        expected,
        "files differ after broker faults"
    );
    assert_eq!(catalog.manifest().await.unwrap().len(), expected.len());
    catalog.close().await;
}

/// The embedded default: the same loop over a JSON-lines file with the SQLite catalog writes
/// the files batch `curate` writes, survives stopping dead mid-batch, and a rerun over the
/// fully read file adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_input_streams_like_kafka_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let Simulated { events, lines } = Simulated::in_file(dir.path(), scenario(300, 1.5, 23));

    let (batch, expected) = batch_curate(&events, &dir.path().join("batch")).await;
    assert!(batch.triplets > 20, "{batch:?}");

    let url = format!("sqlite:{}", dir.path().join("catalog.db").display());
    let catalog = Catalog::open(&url).await.unwrap();
    let out = dir.path().join("stream");
    let file_options = || {
        let mut o = options("unused", "files", &out);
        o.input = StreamInput::Files(vec![events.clone()]);
        o.until_idle = Some(Duration::from_millis(200));
        o
    };
    for crash in 0..3 {
        let mut o = file_options();
        o.abort_after = Some(lines / 5 + 977 * crash);
        let report = stream(&o, &catalog).await;
        assert!(report.aborted, "{report:?}");
    }
    let last = stream(&file_options(), &catalog).await;
    assert!(!last.aborted);
    assert_eq!(last.partitions, vec![0]);
    assert!(last.lag.is_empty(), "files have no lag: {last:?}");
    assert_eq!(
        last.counts.lines, lines,
        "every line counted once: {last:?}"
    );
    assert!(last.counts.is_balanced(), "{last:?}");
    assert_eq!(
        triplet_files(&out),
        expected,
        "file stream and batch differ"
    );
    assert_eq!(catalog.manifest().await.unwrap().len(), expected.len());

    let again = stream(&file_options(), &catalog).await;
    assert_eq!(again.messages, 0, "{again:?}");
    assert_eq!(again.triplets, 0);
    assert_eq!(triplet_files(&out), expected);
    assert_eq!(catalog.manifest().await.unwrap().len(), expected.len());
    catalog.close().await;
}

/// A file shorter than one chunk is read to its end before the restarted stream has folded its
/// first record: the seek past what the stopped run committed comes after the reading thread
/// has sent `Drained`, and must still be made (it once ended the run there, losing the rest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_over_a_short_file_reads_past_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let Simulated { events, lines } = Simulated::in_file(dir.path(), scenario(40, 0.5, 5));
    assert!(lines < 8_000, "not shorter than a chunk: {lines} lines");
    let (batch, expected) = batch_curate(&events, &dir.path().join("batch")).await;
    assert!(batch.triplets > 0, "{batch:?}");

    let url = format!("sqlite:{}", dir.path().join("catalog.db").display());
    let catalog = Catalog::open(&url).await.unwrap();
    let out = dir.path().join("stream");
    let file_options = || {
        let mut o = options("unused", "short", &out);
        o.input = StreamInput::Files(vec![events.clone()]);
        o.until_idle = Some(Duration::from_millis(200));
        o
    };
    // The first run sees the first half of the file and is stopped: it commits what it read,
    // as a service stopped by its operator does, with the sessions still open.
    let text = std::fs::read_to_string(&events).unwrap();
    let half: String = text
        .split_inclusive('\n')
        .take(lines as usize / 2)
        .collect();
    std::fs::write(&events, half).unwrap();
    let stopped = run_stream(&file_options(), &catalog, std::future::ready(()))
        .await
        .unwrap();
    assert_eq!(stopped.messages, lines / 2, "{stopped:?}");
    let committed = catalog.stored_offsets("short", "events").await.unwrap();
    assert_eq!(committed, vec![(0, lines as i64 / 2)]);

    std::fs::write(&events, text).unwrap();
    let last = stream(&file_options(), &catalog).await;
    assert!(!last.aborted);
    assert_eq!(
        last.counts.lines, lines,
        "every line counted once: {last:?}"
    );
    assert_eq!(
        triplet_files(&out),
        expected,
        "file stream and batch differ"
    );
    catalog.close().await;
}

/// A small stream on a mock cluster of its own, one topic "events"; the catalog is SQLite.
async fn small_stream(
    dir: &Path,
    partitions: i32,
    seed: u64,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    u64,
    Catalog,
) {
    let mock = mock_cluster(1, partitions);
    let lines = Simulated::on_kafka(dir, &mock.bootstrap_servers(), scenario(120, 0.5, seed)).lines;
    let url = format!("sqlite:{}", dir.join("catalog.db").display());
    (mock, lines, Catalog::open(&url).await.unwrap())
}

/// Fetches failing for longer than `until_idle`: the quiet after the assignment is not the end
/// of the stream while the partitions are short of their high watermarks. (The run used to end
/// one quiet second after the assignment, having read nothing, with exit status 0.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_backlog_is_waited_for_not_taken_for_the_end() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let dir = tempfile::tempdir().unwrap();
    let (mock, lines, catalog) = small_stream(dir.path(), 2, 31).await;
    let mut o = options(&mock.bootstrap_servers(), "stall", &dir.path().join("out"));
    o.until_idle = Some(Duration::from_secs(1));
    // Each failed fetch holds the next one back a second: the first 8 fetches take 8 s.
    o.kafka = vec![("fetch.error.backoff.ms".into(), "1000".into())];
    let timeouts = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 8];
    mock.request_errors(RDKafkaApiKey::Fetch, &timeouts);
    let report = stream(&o, &catalog).await;
    assert_eq!(
        report.counts.lines, lines,
        "ended before the stream: {report:?}"
    );
    // Without the stall the run takes the mock's ~3 s join, a second of quiet and a moment.
    assert!(
        report.seconds > 7.0,
        "the fetches did not stall: {report:?}"
    );
    assert!(report.counts.is_balanced(), "{report:?}");
    assert_eq!(report.partitions, vec![0, 1]);
    assert_eq!(report.lag, BTreeMap::from([(0, 0), (1, 0)]), "{report:?}");
    catalog.close().await;
}

/// The two ways a run with `until_idle` cannot finish, each failing (not exiting 0) once quiet
/// for a minute, with its report: a member of a group whose only partition another member holds
/// (sticky assignment keeps it there), and a member whose fetches keep failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_idle_fails_without_a_partition_or_with_a_backlog() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let dir = tempfile::tempdir().unwrap();
    let (pair_dir, stalled_dir) = (dir.path().join("pair"), dir.path().join("stalled"));
    std::fs::create_dir_all(&pair_dir).unwrap();
    std::fs::create_dir_all(&stalled_dir).unwrap();

    let (pair_mock, pair_lines, pair_catalog) = small_stream(&pair_dir, 1, 37).await;
    let sticky = vec![(
        "partition.assignment.strategy".to_owned(),
        "cooperative-sticky".to_owned(),
    )];
    let mut holder = options(
        &pair_mock.bootstrap_servers(),
        "pair",
        &pair_dir.join("out"),
    );
    holder.until_idle = None;
    holder.kafka = sticky.clone();
    let mut idle = holder.clone();
    idle.until_idle = Some(Duration::from_secs(1));
    let (stop_holder, holder_stopped) = tokio::sync::oneshot::channel::<()>();
    let pair = async {
        let holding = run_stream(&holder, &pair_catalog, async {
            let _ = holder_stopped.await;
        });
        let joining = async {
            // The other member joins once the holder has committed on the only partition.
            wait_until(
                "the holder has committed on the only partition",
                Duration::from_secs(60),
                async || {
                    let state = pair_catalog.partition_state("pair", "events", 0).await;
                    state.unwrap().next_offset.is_some()
                },
            )
            .await;
            let started = std::time::Instant::now();
            let ended = run_stream(&idle, &pair_catalog, std::future::pending()).await;
            let _ = stop_holder.send(());
            (ended, started.elapsed())
        };
        tokio::join!(holding, joining)
    };

    let (stalled_mock, stalled_lines, stalled_catalog) = small_stream(&stalled_dir, 1, 41).await;
    let stalled_out = stalled_dir.join("out");
    let mut stalled = options(&stalled_mock.bootstrap_servers(), "stalled", &stalled_out);
    stalled.until_idle = Some(Duration::from_secs(1));
    stalled.kafka = vec![("fetch.error.backoff.ms".into(), "1000".into())];
    // Five minutes of failing fetches: longer than the run may stay quiet.
    let timeouts = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 300];
    stalled_mock.request_errors(RDKafkaApiKey::Fetch, &timeouts);
    let stalling = async {
        let started = std::time::Instant::now();
        let ended = run_stream(&stalled, &stalled_catalog, std::future::pending()).await;
        (ended, started.elapsed())
    };

    let ((held, (unassigned, unassigned_took)), (backlog, backlog_took)) =
        tokio::join!(pair, stalling);

    let held = held.unwrap();
    assert_eq!(held.partitions, vec![0], "{held:?}");
    assert_eq!(held.counts.lines, pair_lines, "{held:?}");
    assert_eq!(held.lag, BTreeMap::from([(0, 0)]), "{held:?}");
    match unassigned {
        Err(ref error @ StreamError::NoAssignment { ref report, .. }) => {
            let text = error.to_string();
            for words in ["no partition of events", "group pair", "group coordinator"] {
                assert!(text.contains(words), "{text}");
            }
            assert!(report.partitions.is_empty(), "{report:?}");
            assert!(report.lag.is_empty(), "{report:?}");
            assert_eq!(report.messages, 0, "{report:?}");
        }
        other => panic!("expected NoAssignment, got {other:?}"),
    }
    assert!(
        (Duration::from_secs(60)..Duration::from_secs(120)).contains(&unassigned_took),
        "{unassigned_took:?}"
    );

    match backlog {
        Err(
            ref error @ StreamError::StoppedWithBacklog {
                ref behind,
                ref report,
                ..
            },
        ) => {
            let whole = stalled_lines as i64;
            assert_eq!(
                behind,
                &vec![Behind {
                    partition: 0,
                    next: Some(0),
                    high_at_start: whole,
                }]
            );
            let text = error.to_string();
            let expected = format!("partition 0 was read to offset 0 of {whole} ({whole} behind)");
            assert!(text.contains("stopped with a backlog"), "{text}");
            assert!(text.contains(&expected), "{text}");
            assert_eq!(report.lag, BTreeMap::from([(0, whole)]), "{report:?}");
            assert_eq!(report.messages, 0, "{report:?}");
        }
        other => panic!("expected StoppedWithBacklog, got {other:?}"),
    }
    assert!(
        (Duration::from_secs(60)..Duration::from_secs(120)).contains(&backlog_took),
        "{backlog_took:?}"
    );
    pair_catalog.close().await;
    stalled_catalog.close().await;
}

/// A service stopped (SIGTERM) once everything was committed, then a rerun with `until_idle`
/// and nothing new on the topic: the catalog has every message's effect, though the partitions'
/// snapshots are older and no message comes to replay from them. The rerun is done, not stuck
/// with a backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_with_nothing_new_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mock, lines, catalog) = small_stream(dir.path(), 2, 37).await;
    let mut o = options(&mock.bootstrap_servers(), "rerun", &dir.path().join("out"));
    o.until_idle = None;
    // The service is stopped once every message is committed.
    let all_committed = wait_until(
        "the service has committed every message",
        Duration::from_secs(120),
        async || {
            let offsets = catalog.stored_offsets("rerun", "events").await.unwrap();
            let committed: i64 = offsets.iter().map(|(_, next)| next).sum();
            committed as u64 >= lines
        },
    );
    let first = run_stream(&o, &catalog, all_committed).await.unwrap();
    assert_eq!(first.counts.lines, lines, "{first:?}");
    // What makes the case: a snapshot older than the committed offset.
    let mut older = 0;
    for partition in [0, 1] {
        let state = catalog
            .partition_state("rerun", "events", partition)
            .await
            .unwrap();
        let snapshot = state.snapshot.as_ref().map_or(0, |(next, _)| *next);
        older += usize::from(snapshot < state.next_offset.unwrap_or(0));
    }
    assert!(older > 0, "every snapshot is as new as its commit");
    o.until_idle = Some(Duration::from_secs(1));
    let again = run_stream(&o, &catalog, std::future::pending()).await;
    let again = again.unwrap_or_else(|e| panic!("the rerun found a backlog: {e}"));
    assert_eq!(again.messages, 0, "{again:?}");
    assert_eq!(again.lag, BTreeMap::from([(0, 0), (1, 0)]), "{again:?}");
    assert!(again.seconds < 30.0, "{again:?}");
    catalog.close().await;
}
