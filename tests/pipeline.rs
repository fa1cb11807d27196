//! The main job end to end: `run` on a local pipeline (simulate → ingest → curate → train →
//! eval → report) with SQLite, the same pipeline on PostgreSQL by configuration alone, and the CLI's
//! one-line JSON summary.

mod common;

use std::path::Path;

use common::cli::Cli;
use social_reward::pipeline::{PipelineConfig, RunOptions, run_pipeline};
use social_reward::store::Catalog;

fn config(data_dir: &Path, catalog_url: &str) -> PipelineConfig {
    let text = std::fs::read_to_string("pipelines/local.toml").unwrap();
    let vars = [
        ("SR_DATA_DIR".to_owned(), data_dir.display().to_string()),
        ("SR_CATALOG__URL".to_owned(), catalog_url.to_owned()),
        // Enough sessions close in two days for a few test-split pairs to evaluate.
        ("SR_SIMULATE__USERS".to_owned(), "200".to_owned()),
        ("SR_SIMULATE__DAYS".to_owned(), "2.0".to_owned()),
        ("SR_SIMULATE__IMAGE_SIZE".to_owned(), "32".to_owned()),
        ("SR_INGEST__BATCH_SIZE".to_owned(), "997".to_owned()),
        ("SR_TRAIN__STEPS".to_owned(), "12".to_owned()),
        ("SR_TRAIN__CHECKPOINT_EVERY".to_owned(), "5".to_owned()),
    ];
    PipelineConfig::from_toml_with_env(&text, vars).unwrap()
}

async fn check_run(config: &PipelineConfig, catalog_url: &str) {
    let summary = run_pipeline(config, &RunOptions::default()).await.unwrap();
    let stages: Vec<_> = summary.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        stages,
        ["simulate", "ingest", "curate", "train", "eval", "report"]
    );
    // The stages' metrics as `run --json` and the catalog hold them.
    let json = serde_json::to_value(&summary).unwrap();
    let metrics = |index: usize| json["stages"][index]["metrics"].clone();
    let simulated = &metrics(0);
    // The ingest stage is the streaming loop over the simulated file.
    let ingested = &metrics(1);
    let count = |key: &str| ingested[key].as_u64().unwrap();
    assert_eq!(
        count("lines"),
        count("valid") + count("duplicates") + count("dead_letters"),
        "{ingested}"
    );
    assert_eq!(
        count("lines"),
        simulated["lines"].as_u64().unwrap(),
        "every delivered line reached intake"
    );

    let catalog = Catalog::open(catalog_url).await.unwrap();
    let counts = catalog.table_counts().await.unwrap();
    assert_eq!(
        counts.images as u64,
        ingested["by_kind"]["publish"].as_u64().unwrap()
    );
    assert_eq!(
        counts.dead_letters as u64,
        ingested["dead_letters_stored"].as_u64().unwrap()
    );
    assert_eq!(counts.runs, 6, "one run row per stage");
    let curated = &metrics(2);
    assert!(curated["balanced"].as_bool().unwrap(), "{curated}");
    assert_eq!(
        counts.triplet_files as usize,
        curated["files"].as_array().unwrap().len()
    );
    let precision = curated["evaluation"]["curated"]["precision"].as_f64();
    assert!(
        precision.is_some_and(|p| (0.0..=1.0).contains(&p)),
        "a share: {curated}"
    );
    assert_eq!(
        catalog
            .run_status(&summary.run_id, "ingest")
            .await
            .unwrap()
            .as_deref(),
        Some("succeeded")
    );
    // The model trained on the curated triplets is recorded, and evaluation reports the trained
    // and the untrained model side by side.
    let trained = &metrics(3);
    assert_eq!(trained["steps"].as_u64(), Some(12), "{trained}");
    let models = catalog.models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].1, trained["model_uri"].as_str().unwrap());
    let evaluated = &metrics(4);
    assert_eq!(evaluated["model"].as_str(), trained["model_uri"].as_str());
    let pairs = evaluated["pairs"].as_u64().unwrap();
    assert!(pairs > 0, "{evaluated}");
    // Accuracy is the share of the pairs judged right, inside its bootstrap interval; the
    // untrained model's is a share of the same pairs.
    let accuracy = evaluated["accuracy"].as_f64().expect("an accuracy");
    let right = accuracy * pairs as f64;
    assert!(
        (0.0..=1.0).contains(&accuracy) && (right - right.round()).abs() < 1e-6,
        "accuracy {accuracy} is not a share of {pairs} pairs: {evaluated}"
    );
    let ci95 = evaluated["ci95"].as_array().expect("an interval");
    let (lo, hi) = (ci95[0].as_f64().unwrap(), ci95[1].as_f64().unwrap());
    assert!(lo <= accuracy && accuracy <= hi, "{evaluated}");
    let baseline = evaluated["baseline_accuracy"].as_f64();
    assert!(
        baseline.is_some_and(|b| (0.0..=1.0).contains(&b)),
        "{evaluated}"
    );
    assert_eq!(evaluated["baseline_model"], trained["base_model"]);
    // Batch curation after the stream writes exactly the files the stream recorded.
    assert_eq!(
        ingested["triplets"].as_u64(),
        curated["triplets"].as_u64(),
        "{ingested}\n{curated}"
    );
    assert_eq!(counts.triplet_files, ingested["files"].as_i64().unwrap());
    // The stream's commits record where its sessions were curated to, one location.
    let emissions = catalog
        .table_frame(social_reward::store::CatalogTable::Emissions)
        .await
        .unwrap();
    assert!(emissions.height() > 0);
    let locations = emissions.column("location").unwrap().n_unique().unwrap();
    assert_eq!(locations, 1, "{emissions}");
    catalog.close().await;

    // The report reads what the stages before it recorded: the evaluation's accuracy plot is
    // among its figures, and the sample pairs show the simulated pictures.
    let reported = &metrics(5);
    assert!(reported["figures"].as_u64().unwrap() >= 8, "{reported}");
    assert!(reported["thumbnails"].as_u64().unwrap() >= 2, "{reported}");
    assert_eq!(reported["triplets"], curated["triplets"], "{reported}");
    let page = std::fs::read_to_string(reported["page"].as_str().unwrap()).unwrap();
    assert!(page.contains("<figure class=\"plot\" id=\"accuracy\">"));
}

#[tokio::test]
async fn local_pipeline_runs_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("catalog.db").display());
    check_run(&config(dir.path(), &url), &url).await;
    assert!(dir.path().join("sim/images").read_dir().unwrap().count() > 50);
}

#[tokio::test]
async fn the_same_pipeline_runs_on_postgres_by_configuration() {
    let db = common::ScratchDatabase::create("pipeline").await;
    let dir = tempfile::tempdir().unwrap();
    check_run(&config(dir.path(), &db.url), &db.url).await;
}

/// `run pipelines/local.toml` with a small image-free community and the given stages.
fn small_pipeline(dir: &std::path::Path, args: &[&str]) -> Cli {
    Cli::new()
        .args(["--quiet", "run", "pipelines/local.toml"])
        .args(args)
        .env_remove("RUST_LOG")
        .env("SR_DATA_DIR", dir)
        .env(
            "SR_CATALOG__URL",
            format!("sqlite:{}", dir.join("c.db").display()),
        )
        .env("SR_SIMULATE__USERS", "60")
        .env("SR_SIMULATE__DAYS", "0.5")
        .env("SR_SIMULATE__IMAGES", "false")
        .env("SR_STAGES", r#"["simulate", "ingest", "curate"]"#)
}

#[test]
fn run_command_prints_tables_for_people_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let summary_file = dir.path().join("summary.json");
    let run = small_pipeline(
        dir.path(),
        &["--summary-file", summary_file.to_str().unwrap()],
    )
    .run_ok();
    assert!(
        !run.stderr.contains(" INFO "),
        "INFO logs are opt-in (-v): {run}"
    );
    let stdout = &run.stdout;
    for expected in [
        "pipeline local",
        "simulate",
        "ingest",
        "curate",
        "succeeded",
        "curation against the simulator's hidden truth",
        "precision",
        "naive baseline",
        "triplets",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    // The file holds the same summary `--json` prints.
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_file).unwrap()).unwrap();
    assert_eq!(written["pipeline"], "local");
    let curate = &written["stages"][2];
    assert_eq!(curate["stage"], "curate");
    let triplets = curate["metrics"]["triplets"].as_u64().unwrap();
    assert!(
        stdout.contains(&format!("{triplets} triplets")),
        "{triplets} triplets:\n{stdout}"
    );
}

#[test]
fn run_command_prints_one_json_summary_line() {
    let dir = tempfile::tempdir().unwrap();
    // One line: run_json insists.
    let summary = small_pipeline(dir.path(), &["--json"]).run_json();
    assert_eq!(summary["pipeline"], "local");
    assert_eq!(summary["stages"].as_array().unwrap().len(), 3);
}

/// Without pictures the simulator's hashes stand in for them in the stream as in batch: the
/// ingest stage once paired nothing (its hash table was empty), and curate refused the
/// difference.
#[test]
fn without_pictures_the_stream_uses_the_simulators_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let summary = small_pipeline(dir.path(), &["--json"])
        .env("SR_SIMULATE__USERS", "400")
        .env("SR_SIMULATE__DAYS", "1.5")
        .run_json();
    let (ingested, curated) = (&summary["stages"][1], &summary["stages"][2]);
    let triplets = ingested["metrics"]["triplets"].as_u64().unwrap();
    assert!(triplets > 10, "{ingested}");
    assert_eq!(curated["metrics"]["triplets"].as_u64(), Some(triplets));
    assert!(curated["metrics"]["images_hashed"] == 0, "{curated}");
}

#[test]
fn unknown_stage_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        "name = \"x\"\nstages = [\"simulate\", \"teleport\"]\n[catalog]\nurl = \"sqlite::memory:\"\n",
    )
    .unwrap();
    let run = Cli::new()
        .args(["--quiet", "run"])
        .arg(&pipeline)
        .run_fail();
    assert!(
        run.stderr.contains("teleport") && run.stderr.contains("simulate, ingest, curate"),
        "{run}"
    );
}

/// `run pipelines/production.toml`, the shipped file with only environment overrides: its
/// ingest stage is the Kafka consumer group (here against librdkafka's mock cluster), which
/// `--until-idle` ends once caught up; a second run resumes from the catalog's offsets.
#[test]
fn the_production_pipeline_runs_its_kafka_consumer() {
    use common::streaming::{Simulated, TOPIC, mock_cluster, scenario};
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_cluster(1, 3);
    mock.create_topic("social-reward.dead-letters", 1, 1)
        .unwrap();
    let brokers = mock.bootstrap_servers();
    let Simulated { lines, .. } = Simulated::on_kafka(dir.path(), &brokers, scenario(60, 0.5, 9));
    let db = format!("sqlite:{}", dir.path().join("catalog.db").display());
    let run = || {
        Cli::new()
            .args(["--quiet", "run", "pipelines/production.toml", "--json"])
            .args(["--until-idle", "1"])
            .env_remove("RUST_LOG")
            .env("SR_DATA_DIR", dir.path())
            .env("SR_CATALOG__URL", &db)
            .env("SR_KAFKA__BROKERS", &brokers)
            .env("SR_KAFKA__TOPIC", TOPIC)
            .env("SR_OBJECT_STORE__OUT", dir.path().join("curated"))
            .env("SR_OBJECT_STORE__IMAGES", dir.path().join("images"))
            .env("SR_INGEST__METRICS_ADDR", "127.0.0.1:0")
            .run_json()
    };
    let first = run();
    let ingest = &first["stages"][0];
    assert_eq!(ingest["stage"], "ingest", "{first}");
    assert_eq!(ingest["metrics"]["lines"].as_u64(), Some(lines), "{ingest}");
    assert_eq!(
        ingest["metrics"]["partitions"],
        serde_json::json!([0, 1, 2])
    );
    let again = run();
    assert_eq!(again["stages"][0]["metrics"]["messages"], 0, "{again}");
}

/// A password planted in the catalog URL appears nowhere: not in the log at its most verbose,
/// not in any catalog row (`runs.params` records the configuration), not in any file written.
#[tokio::test]
async fn a_planted_password_is_never_stored_or_printed() {
    const PLANTED: &str = "PLANTED-pass-7f3a";
    let db = common::ScratchDatabase::create("secret").await;
    // The test server trusts local connections: the password is carried, never checked.
    let with_password = db.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PLANTED}@"),
        1,
    );
    assert!(with_password.contains(PLANTED), "{with_password}");
    let dir = tempfile::tempdir().unwrap();
    let run = small_pipeline(dir.path(), &["--json"])
        .env("SR_CATALOG__URL", &with_password)
        .env("SR_STAGES", r#"["simulate", "ingest", "curate", "report"]"#)
        .env("RUST_LOG", "debug")
        .run_ok();
    assert!(!run.stdout.contains(PLANTED), "stdout: {run}");
    assert!(!run.stderr.contains(PLANTED), "the log holds the password");
    assert!(run.stderr.contains("DEBUG"), "the log was verbose");

    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let found = bytes
                    .windows(PLANTED.len())
                    .any(|w| w == PLANTED.as_bytes());
                assert!(!found, "{} holds the password", path.display());
            }
        }
    }

    let catalog = db.catalog().await;
    let queried = Cli::new()
        .args(["--quiet", "query", "--data"])
        .arg(dir.path().join("curated"))
        .arg("--db")
        .arg(&with_password)
        .args(["--format", "csv", "SELECT params FROM runs"])
        .run_ok();
    assert!(queried.stdout.lines().count() > 1, "{queried}");
    assert!(!queried.stdout.contains(PLANTED), "{queried}");
    for table in social_reward::store::CatalogTable::ALL {
        let frame = catalog.table_frame(table).await.unwrap();
        for column in frame.columns() {
            if let Ok(texts) = column.str() {
                let leaked = texts.iter().flatten().any(|text| text.contains(PLANTED));
                assert!(
                    !leaked,
                    "{}.{} holds the password",
                    table.name(),
                    column.name()
                );
            }
        }
    }
    let runs = catalog
        .table_frame(social_reward::store::CatalogTable::Runs)
        .await
        .unwrap();
    let params = runs
        .column("params")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_owned();
    assert!(!params.contains(PLANTED), "runs.params: {params}");
    assert!(
        params.contains("postgres://postgres:***@"),
        "runs.params: {params}"
    );
    catalog.close().await;
}
