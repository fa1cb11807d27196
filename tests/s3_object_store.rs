//! Triplets written through object_store to a real S3-protocol server (moto's server, started
//! here on a free loopback port; `scripts/test.sh` installs it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use social_reward::curate::{CurateConfig, CurateOptions, ImageDedup, curate};
use social_reward::events::{Limits, Timestamp};
use social_reward::sources::simulator::{Scenario, SimulateOptions, simulate};
use social_reward::store::ObjectRoot;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> (Server, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `python3 -m` rather than the `moto_server` script: a fresh pip install may not have put
    // the script on PATH yet (pyenv shims need a rehash).
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "moto_server is required (pip install 'moto[server]'); scripts/test.sh installs it",
        );
    let server = Server(child);
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

fn create_bucket(port: u16, bucket: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn curated_triplets_land_on_s3() {
    let (_server, port) = start_moto();
    create_bucket(port, "social-reward");
    // SAFETY: this test binary has a single test; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
    let root = ObjectRoot::open("s3://social-reward/smoke").unwrap();
    root.put("a/b.txt", b"hello".to_vec()).await.unwrap();
    assert_eq!(root.get("a/b.txt", 100).await.unwrap(), b"hello");
    assert!(!root.exists("a/missing").await.unwrap());

    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    simulate(&SimulateOptions {
        out: sim.clone(),
        scenario: Scenario {
            users: 400,
            days: 2.0,
            seed: 9,
            ..Scenario::default()
        },
        images: false,
        image_size: 64,
        gzip: false,
        progress: false,
        kafka: None,
    })
    .unwrap();
    let options = CurateOptions {
        events: vec![sim.join("events.jsonl")],
        images: None,
        out: "s3://social-reward/curated".into(),
        config: CurateConfig::default(),
        limits: Limits::default(),
        now: Timestamp::now(),
        dedup_horizon_hours: 6.0,
        image_dedup: ImageDedup::Supplied(sim.join("truth.parquet")),
        truth: None,
        run_id: "s3-test".into(),
        progress: false,
    };
    let summary = curate(&options, None).await.unwrap();
    assert!(summary.triplets > 0);
    let curated = ObjectRoot::open("s3://social-reward/curated").unwrap();
    for file in &summary.files {
        assert!(
            file.uri
                .starts_with("s3://social-reward/curated/triplets/split="),
            "{}",
            file.uri
        );
        let key = file.uri.trim_start_matches("s3://social-reward/curated/");
        let bytes = curated.get(key, 1 << 30).await.unwrap();
        assert_eq!(blake3::hash(&bytes).to_hex().to_string(), file.blake3);
    }
}
