//! A real Kafka-protocol broker in a process of its own: tansu 0.6 with SQLite storage (its
//! memory storage lost records in a resume check; SQLite kept all of them).
//!
//! `scripts/test.sh` installs it (`cargo install tansu --locked --features libsql,dynostore`)
//! when it is missing; `SOCIAL_REWARD_TANSU` names another binary.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use social_reward::sinks::kafka::{KafkaSink, KafkaTarget};

pub struct TansuBroker {
    child: Child,
    pub brokers: String,
}

/// The tansu binary: `SOCIAL_REWARD_TANSU`, else on the PATH, else where `cargo install` puts it.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SOCIAL_REWARD_TANSU") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .collect::<Vec<_>>()
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let installed = cargo_home.map(|home| home.join("bin").join("tansu"));
    on_path
        .chain(installed)
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test needs the tansu broker: `cargo install tansu --locked --features \
                 libsql,dynostore` (scripts/test.sh does it), or SOCIAL_REWARD_TANSU=/path/to/tansu"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

impl TansuBroker {
    /// Starts a broker storing into `dir/tansu.db` and waits until it accepts connections.
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("tansu.log")).expect("tansu log file");
        // tansu 0.6 reads the file of a `sqlite://` URL relative to its working directory (an
        // absolute path gets the directory prepended), so it runs inside `dir`.
        let child = Command::new(binary())
            .current_dir(dir)
            .args(["broker", "--storage-engine", "sqlite://tansu.db"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        let broker = Self {
            child,
            brokers: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&broker.brokers).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} within 30 s (see {})",
                broker.brokers,
                dir.join("tansu.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        broker
    }

    /// Creates `topic` through the Kafka admin protocol (CreateTopics).
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .expect("admin client");
        let results = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("CreateTopics answered");
        for result in results {
            result.unwrap_or_else(|(name, code)| panic!("creating {name}: {code}"));
        }
    }
}

/// Produces every line of `events` to `topic` at about `per_second`, on a thread of its own
/// (the simulator's paced producer): a broker that hands a consumer the whole topic in one fetch
/// would otherwise let it finish before anything could interrupt it.
pub fn produce_paced(
    brokers: &str,
    topic: &str,
    events: &Path,
    per_second: u64,
) -> std::thread::JoinHandle<u64> {
    let target = KafkaTarget {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        per_second: Some(per_second),
        create: social_reward::sinks::kafka::TopicLayout::default(),
    };
    let lines = std::fs::read_to_string(events).expect("events file");
    std::thread::spawn(move || {
        let mut sink = KafkaSink::connect(&target).expect("producer");
        for line in lines.lines() {
            sink.send("", line.as_bytes()).expect("line produced");
        }
        sink.finish().expect("every line acknowledged")
    })
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
