//! Analysts' side, through the binary as they run it: `query` over the triplets and the
//! catalog (every canned query in sql/ included), its errors, and `report`'s page.

mod common;

use std::path::{Path, PathBuf};

use common::cli::Cli;
use polars::prelude::*;
use social_reward::curate::triplets::COLUMNS;

/// A small simulated community with pictures, curated into `curated/` with a SQLite catalog.
struct Dataset {
    _dir: tempfile::TempDir,
    root: PathBuf,
    triplets: u64,
}

impl Dataset {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let sim = root.join("sim");
        Cli::new()
            .args(["--quiet", "simulate", "--users", "300", "--days", "1.5"])
            .args(["--image-size", "64", "--seed", "3", "--out"])
            .arg(&sim)
            .run_ok();
        let summary = Cli::new()
            .args(["--quiet", "curate", "--events"])
            .arg(sim.join("events.jsonl"))
            .arg("--images")
            .arg(sim.join("images"))
            .arg("--out")
            .arg(root.join("curated"))
            .arg("--db")
            .arg(format!("sqlite:{}", root.join("catalog.db").display()))
            .run_json();
        let triplets = summary["triplets"].as_u64().unwrap();
        assert!(triplets > 10, "too few triplets to query: {summary}");
        Self {
            _dir: dir,
            root,
            triplets,
        }
    }

    fn db(&self) -> String {
        format!("sqlite:{}", self.root.join("catalog.db").display())
    }

    /// `query` over this dataset.
    fn query(&self) -> Cli {
        Cli::new()
            .args(["--quiet", "query", "--data"])
            .arg(self.root.join("curated"))
            .arg("--db")
            .arg(self.db())
            .env_remove("SR_CATALOG__URL")
    }
}

fn parquet_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn query_reads_triplets_with_their_keys_and_the_catalog() {
    let data = Dataset::new();

    // Files hold the columns only; split and dt are the folders' hive keys.
    let files = parquet_files(&data.root.join("curated/triplets"));
    assert!(!files.is_empty());
    let frame = ParquetReader::new(std::fs::File::open(&files[0]).unwrap())
        .finish()
        .unwrap();
    let names: Vec<&str> = frame
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(names, COLUMNS);

    let per_split = data
        .query()
        .args(["--format", "json"])
        .arg("SELECT split, count(*) AS n, min(dt) AS first_day FROM triplets GROUP BY split ORDER BY split")
        .run_ok()
        .json_lines();
    let total: u64 = per_split.iter().map(|row| row["n"].as_u64().unwrap()).sum();
    assert_eq!(total, data.triplets, "{per_split:?}");
    assert!(
        per_split.iter().any(|row| row["split"] == "train"),
        "{per_split:?}"
    );
    for row in &per_split {
        let day = row["first_day"].as_str().unwrap();
        assert_eq!(day.len(), 10, "dt is a day: {row}");
    }

    // The manifest in the catalog agrees with the files.
    let manifest = data
        .query()
        .args(["--format", "csv"])
        .arg("SELECT sum(rows) AS rows, count(*) AS files FROM triplet_files")
        .run_ok();
    let lines: Vec<&str> = manifest.stdout.lines().collect();
    assert_eq!(lines[0], "rows,files");
    assert_eq!(
        lines[1],
        format!("{},{}", data.triplets, files.len()),
        "{manifest}"
    );

    // Times print as RFC 3339 in UTC.
    let published = data
        .query()
        .args(["--format", "csv"])
        .arg("SELECT published_at FROM images ORDER BY published_at LIMIT 1")
        .run_ok();
    let first = published.stdout.lines().nth(1).unwrap().to_owned();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&first).is_ok(),
        "not RFC 3339: {first}"
    );

    // Parquet to a file, read back.
    let out = data.root.join("images.parquet");
    let written = data
        .query()
        .args(["--format", "parquet", "--out"])
        .arg(&out)
        .arg("SELECT image_id, views, remixes FROM images")
        .run_json();
    let back = ParquetReader::new(std::fs::File::open(&out).unwrap())
        .finish()
        .unwrap();
    assert_eq!(back.height() as u64, written["rows"].as_u64().unwrap());
    assert!(back.height() > 100);
}

#[test]
fn every_canned_query_runs() {
    let data = Dataset::new();
    let mut canned: Vec<PathBuf> = std::fs::read_dir("sql")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    canned.sort();
    assert!(canned.len() >= 7, "{canned:?}");
    // Models and dead letters may well be none in a dataset only curated.
    let may_be_empty = ["model_accuracy.sql", "dead_letters_by_reason.sql"];
    for file in canned {
        let rows = data
            .query()
            .args(["--format", "json", "--file"])
            .arg(&file)
            .run_ok()
            .json_lines();
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            !rows.is_empty() || may_be_empty.contains(&name),
            "{name} returned no rows"
        );
    }
}

#[test]
fn query_mistakes_are_explained() {
    let data = Dataset::new();
    let bad_sql = data.query().arg("SELEC split FROM triplets").run_fail();
    assert!(bad_sql.stderr.contains("SQL"), "{bad_sql}");

    let no_table = data.query().arg("SELECT * FROM nope").run_fail();
    assert!(no_table.stderr.contains("nope"), "{no_table}");

    let parquet = data
        .query()
        .args(["--format", "parquet", "SELECT 1"])
        .run_fail();
    assert!(parquet.stderr.contains("--out"), "{parquet}");

    let missing = Cli::new()
        .args(["--quiet", "query", "--db", "sqlite:/nonexistent/catalog.db"])
        .arg("SELECT 1")
        .env_remove("SR_CATALOG__URL")
        .run_fail();
    assert!(missing.stderr.contains("no catalog at"), "{missing}");
    assert!(!Path::new("/nonexistent/catalog.db").exists());
}

#[test]
fn report_is_one_self_contained_page() {
    let data = Dataset::new();
    let out = data.root.join("report");
    let summary = Cli::new()
        .args(["--quiet", "report", "--out"])
        .arg(&out)
        .arg("--data")
        .arg(data.root.join("curated"))
        .arg("--images")
        .arg(data.root.join("sim/images"))
        .arg("--db")
        .arg(data.db())
        .env_remove("SR_CATALOG__URL")
        .run_json();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let figures = summary["figures"].as_u64().unwrap() as usize;
    assert!(figures >= 7, "{summary}");
    assert_eq!(html.matches("<figure class=\"plot\"").count(), figures);
    assert_eq!(html.matches("<svg").count(), figures, "one plot per figure");
    let thumbnails = summary["thumbnails"].as_u64().unwrap() as usize;
    assert!(thumbnails >= 2, "{summary}");
    assert_eq!(
        html.matches("src=\"data:image/png;base64,").count(),
        thumbnails
    );
    assert_eq!(summary["triplets"].as_u64(), Some(data.triplets));
    // Nothing outside the page: no link, script or picture from elsewhere.
    for outside in ["src=\"http", "href=\"http", "<script", "<link"] {
        assert!(!html.contains(outside), "the page reaches out: {outside}");
    }
}

/// `--path-style`: the files name their pictures so that a reader finds them from anywhere, as
/// absolute paths or as URLs, and relative (the default) to the pictures' root.
#[test]
fn picture_paths_resolve_in_every_style() {
    let data = Dataset::new();
    let images = data.root.join("sim/images");
    for style in ["relative", "absolute", "url"] {
        let out = data.root.join(format!("curated-{style}"));
        Cli::new()
            .args([
                "--quiet",
                "curate",
                "--no-catalog",
                "--path-style",
                style,
                "--events",
            ])
            .arg(data.root.join("sim/events.jsonl"))
            .arg("--images")
            .arg(&images)
            .arg("--out")
            .arg(&out)
            .run_json();
        let mut paths: Vec<String> = Vec::new();
        for file in parquet_files(&out.join("triplets")) {
            let frame = ParquetReader::new(std::fs::File::open(file).unwrap())
                .finish()
                .unwrap();
            for name in ["pos_path", "neg_path"] {
                let column = frame.column(name).unwrap().str().unwrap().clone();
                paths.extend(column.iter().flatten().map(str::to_owned));
            }
        }
        assert!(!paths.is_empty(), "{style}: no triplets");
        for path in paths {
            let on_disk = match style {
                "relative" => images.join(&path),
                "absolute" => PathBuf::from(&path),
                _ => url::Url::parse(&path)
                    .unwrap_or_else(|e| panic!("{path}: {e}"))
                    .to_file_path()
                    .unwrap(),
            };
            assert!(
                on_disk.is_file(),
                "{style}: {path} is not {}",
                on_disk.display()
            );
        }
    }
}
