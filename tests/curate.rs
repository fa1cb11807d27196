//! Curation end to end: simulate → curate → read the Parquet back. Schema, byte-identical
//! reruns, no duplicate triplets when re-run on the same catalog, and quality against the
//! simulator's ground truth.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use social_reward::curate::triplets::COLUMNS;
use social_reward::curate::{CurateConfig, CurateOptions, CurateSummary, ImageDedup, curate};
use social_reward::events::{Limits, Timestamp};
use social_reward::sources::simulator::{Scenario, SimulateOptions, simulate};
use social_reward::store::Catalog;

mod common;
use common::cli::Cli;

fn options(sim: &Path, out: &Path) -> CurateOptions {
    CurateOptions {
        events: vec![sim.join("events.jsonl")],
        images: Some(sim.join("images").display().to_string()),
        out: out.display().to_string(),
        config: CurateConfig::default(),
        limits: Limits::default(),
        now: Timestamp::now(),
        dedup_horizon_hours: 6.0,
        image_dedup: ImageDedup::Pixels,
        truth: Some(sim.join("truth.parquet")),
        run_id: "test-run".into(),
        progress: false,
    }
}

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

async fn run(sim: &Path, out: &Path, db: &str) -> CurateSummary {
    // `out` may be a URL: `Path` carries it as it is.
    let catalog = Catalog::open(db).await.unwrap();
    let summary = curate(&options(sim, out), Some(&catalog)).await.unwrap();
    catalog.close().await;
    summary
}

#[tokio::test]
async fn simulate_curate_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    simulate(&SimulateOptions {
        out: sim.clone(),
        scenario: Scenario {
            users: 700,
            days: 2.0,
            seed: 5,
            repost_rate: 0.08,
            ..Scenario::default()
        },
        images: true,
        image_size: 64,
        gzip: false,
        progress: false,
        kafka: None,
    })
    .unwrap();
    let (out_a, out_b) = (dir.path().join("a"), dir.path().join("b"));
    let db_a = format!("sqlite:{}", dir.path().join("a.db").display());
    let db_b = format!("sqlite:{}", dir.path().join("b.db").display());

    let first = run(&sim, &out_a, &db_a).await;
    assert!(first.balanced, "every line accounted for");
    assert!(first.triplets > 50, "{first:?}");
    assert_eq!(first.image_errors, 0);
    assert!(first.near_duplicates_dropped > 0, "reposts were found");

    // Same events, fresh catalog and folder: byte-identical files.
    let second = run(&sim, &out_b, &db_b).await;
    assert_eq!(second.triplets, first.triplets);
    assert_eq!(files(&out_a), files(&out_b));

    // Re-run on the same catalog: nothing new, no duplicate triplet.
    let rerun = run(&sim, &out_a, &db_a).await;
    assert_eq!(rerun.triplets, 0);
    assert_eq!(rerun.new_manifest_rows, 0);
    let catalog = Catalog::open(&db_a).await.unwrap();
    let manifest = catalog.manifest().await.unwrap();
    assert_eq!(manifest.len(), first.files.len());
    catalog.close().await;
    // The same folder spelled otherwise is the same place, and the rerun says where and when it
    // was curated.
    let spelled = format!("file://{}/./", out_a.display());
    let again = run(&sim, Path::new(&spelled), &db_a).await;
    assert_eq!(again.triplets, 0);
    let before = again.curated_before.expect("where it was curated before");
    assert_eq!(
        before.location,
        format!("file://{}", out_a.canonicalize().unwrap().display())
    );
    assert!(
        before.run_id == "test-run" && before.at.ends_with('Z'),
        "{before:?}"
    );
    // A new folder with the same catalog is written anew: what was curated elsewhere is not
    // taken for curated here, nor are its pictures taken for originals of these.
    let out_c = dir.path().join("c");
    let elsewhere = run(&sim, &out_c, &db_a).await;
    assert_eq!(elsewhere.sessions_already_curated, 0);
    assert_eq!(files(&out_c), files(&out_a));

    // Read back: schema, row counts, paths resolve, no triplet twice.
    let mut rows = 0;
    let mut seen = std::collections::HashSet::new();
    for entry in &manifest {
        let path = entry.uri.clone();
        assert!(
            path.contains(&format!("split={}/dt={}/part-", entry.split, entry.dt)),
            "{path}"
        );
        let frame = ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        let names: Vec<&str> = frame
            .get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(names, COLUMNS);
        assert_eq!(frame.height() as i64, entry.rows);
        rows += frame.height();
        let pos = frame.column("pos_path").unwrap().str().unwrap().clone();
        let neg = frame.column("neg_path").unwrap().str().unwrap().clone();
        for i in 0..frame.height() {
            let (p, n) = (pos.get(i).unwrap(), neg.get(i).unwrap());
            assert!(sim.join("images").join(p).exists() && sim.join("images").join(n).exists());
            assert!(
                seen.insert((p.to_owned(), n.to_owned())),
                "triplet twice: {p} {n}"
            );
        }
        let blake = blake3::hash(&std::fs::read(&path).unwrap())
            .to_hex()
            .to_string();
        assert_eq!(blake, entry.blake3);
    }
    assert_eq!(rows as u64, first.triplets);

    let eval = first.evaluation.expect("evaluation block");
    eprintln!("{eval:?}");
    assert!(
        eval.curated.precision >= 0.9,
        "precision {}",
        eval.curated.precision
    );
    assert!(eval.curated.precision > eval.naive_baseline.precision + 0.1);
    assert!(
        (eval.curated.age_bias - 0.5).abs() < 0.1,
        "age bias {}",
        eval.curated.age_bias
    );
    assert_eq!(eval.curated.near_duplicate_pairs, 0);
    assert_eq!(eval.curated.pictures_in_two_splits, 0);
    assert_eq!(eval.curated.pictures_used_twice, 0);
}

/// One creator, the same prompt in two generation sessions an hour apart, one image per session
/// clearly preferred: only the fallback pairs across the sessions, and never across creators.
#[tokio::test]
async fn fallback_pairs_a_creators_sessions_of_one_prompt_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    let mut next = 0u32;
    let mut id = || {
        next += 1;
        format!("e{next}")
    };
    let ts = |minutes: u32| format!("2026-01-01T{:02}:{:02}:00Z", minutes / 60, minutes % 60);
    let publish = |e: String, at: u32, image: &str, creator: &str, generation: &str| {
        format!(
            r#"{{"v":1,"kind":"publish","event_id":"{e}","ts":"{}","image_id":"{image}","creator_id":"{creator}","generation_id":"{generation}","prompt":"a golden fox in the snow, watercolor","image_uri":"{image}.png","model":"m","creator_followers":50}}"#,
            ts(at)
        )
    };
    lines.push(publish(id(), 0, "a", "c1", "g1"));
    lines.push(publish(id(), 60, "b", "c1", "g2"));
    lines.push(publish(id(), 61, "x", "c2", "g3"));
    // 60 views each; "a" remixed 25 times, "b" twice, "x" once.
    for (image, remixes) in [("a", 25u32), ("b", 2), ("x", 1)] {
        for v in 0..60u32 {
            lines.push(format!(
                r#"{{"v":1,"kind":"view","event_id":"{}","ts":"{}","image_id":"{image}","viewer_id":"v-{image}-{v}"}}"#,
                id(),
                ts(70 + v)
            ));
        }
        for r in 0..remixes {
            lines.push(format!(
                r#"{{"v":1,"kind":"remix","event_id":"{}","ts":"{}","image_id":"{image}","remixer_id":"r-{image}-{r}","remix_image_id":"rx-{image}-{r}"}}"#,
                id(),
                ts(140 + r)
            ));
        }
    }
    // A publish a day later moves the watermark past every window.
    lines.push(publish(id(), 23 * 60 + 50, "late", "c9", "g9"));
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();

    let run = |hours: f64, out: &str| {
        let mut config = CurateConfig {
            same_cluster_fallback_hours: hours,
            max_cluster_share: 1.0,
            ..CurateConfig::default()
        };
        config.split.val_share = 0.0;
        config.split.test_share = 0.0;
        CurateOptions {
            events: vec![events.clone()],
            images: None,
            out: dir.path().join(out).display().to_string(),
            config,
            limits: Limits::default(),
            now: Timestamp::now(),
            dedup_horizon_hours: 6.0,
            image_dedup: ImageDedup::Off,
            truth: None,
            run_id: "fallback".into(),
            progress: false,
        }
    };
    let off = curate(&run(0.0, "off"), None).await.unwrap();
    assert_eq!(
        off.triplets, 0,
        "sessions of one image each: nothing to pair"
    );
    let on = curate(&run(2.0, "on"), None).await.unwrap();
    assert_eq!(on.fallback_triplets, 1, "{on:?}");
    assert_eq!(on.triplets, 1);
    let frame = read_parquet(&on.files[0].uri);
    let pos = frame
        .column("pos_image_id")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_owned();
    let neg = frame
        .column("neg_image_id")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_owned();
    assert_eq!((pos.as_str(), neg.as_str()), ("a", "b"));
    let too_short = curate(&run(0.5, "short"), None).await.unwrap();
    assert_eq!(
        too_short.triplets, 0,
        "an hour apart is beyond a 30-minute fallback"
    );
}

fn read_parquet(path: &str) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

/// Two different communities curated one after the other into two folders, with the default
/// catalog both share: each gets its triplets (the second once got none, silently). Curating
/// one again into its folder writes nothing, says so, and fails with --strict.
#[test]
fn a_second_dataset_is_not_taken_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let curate = |seed: &str, extra: &[&str]| {
        let sim = dir.path().join(format!("sim-{seed}"));
        if !sim.exists() {
            Cli::new()
                .current_dir(dir.path())
                .args(["--quiet", "simulate", "--users", "300", "--days", "1.5"])
                .args(["--image-size", "48", "--seed", seed, "--out"])
                .arg(&sim)
                .run_ok();
        }
        Cli::new()
            .current_dir(dir.path())
            .env_remove("SR_CATALOG__URL")
            .args(["--quiet", "curate", "--events"])
            .arg(sim.join("events.jsonl"))
            .arg("--images")
            .arg(sim.join("images"))
            .args(["--out", &format!("out-{seed}")])
            .args(extra)
            .output()
    };
    let first = curate("1", &[]).success().json();
    let second = curate("2", &[]).success().json();
    assert!(
        dir.path().join("data/catalog.db").exists(),
        "the default catalog"
    );
    for summary in [&first, &second] {
        assert!(summary["triplets"].as_u64().unwrap() > 5, "{summary}");
        assert_eq!(summary["sessions_already_curated"], 0, "{summary}");
    }

    let again = curate("1", &[]).success();
    assert_eq!(again.json()["triplets"], 0);
    assert!(again.stderr.contains("no new triplets"), "{again}");
    assert!(again.stderr.contains("out-1"), "names the place: {again}");
    let strict = curate("1", &["--strict"]).failure();
    assert!(strict.stderr.contains("were curated into"), "{strict}");
}
