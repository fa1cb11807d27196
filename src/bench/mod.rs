//! `social-reward bench …`: throughput figures measured in one process, printed as JSON.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

mod error;
mod ingest;
pub use error::BenchError;
pub use ingest::{IngestBench, IngestFigure, IngestOptions, ingest};

use crate::events::{Event, Intake, Outcome, SourcePosition, Timestamp, Validator};
use crate::sources::simulator::{self, Scenario, SimulateOptions};

#[derive(Debug, Serialize)]
pub struct ParseBench {
    pub file: PathBuf,
    pub bytes: u64,
    pub lines: u64,
    pub valid: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
    pub images: usize,
    pub best_seconds: f64,
    pub events_per_second: f64,
    pub megabytes_per_second: f64,
    /// The same passes with every record parsed by serde_json (no fast path).
    pub serde_only_events_per_second: f64,
    pub threads: u32,
}

/// Parse + validate + de-duplicate + per-image aggregation on one thread, from memory so that
/// disk speed does not enter the figure. The best of `repeat` passes is reported.
pub fn parse(
    events: Option<&Path>,
    users: u64,
    days: f64,
    repeat: u32,
) -> Result<ParseBench, BenchError> {
    let scratch;
    let file = match events {
        Some(path) => path.to_path_buf(),
        None => {
            scratch =
                std::env::temp_dir().join(format!("social-reward-bench-{}", std::process::id()));
            simulate_without_images(&scratch, users, days)?.events
        }
    };
    let data = std::fs::read(&file).map_err(|e| BenchError::Io {
        path: file.clone(),
        source: e,
    })?;
    let mut best = f64::INFINITY;
    let mut best_serde = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        let pass = one_pass(&data, true)?;
        best = best.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let serde_pass = one_pass(&data, false)?;
        best_serde = best_serde.min(started.elapsed().as_secs_f64());
        if serde_pass != pass {
            return Err(BenchError::FastPathDisagrees);
        }
        last = Some(pass);
    }
    let (counts, images) = last.unwrap_or_default();
    if events.is_none() {
        let _ = std::fs::remove_dir_all(file.parent().unwrap_or(Path::new("")));
    }
    Ok(ParseBench {
        file,
        bytes: data.len() as u64,
        lines: counts.lines,
        valid: counts.valid,
        duplicates: counts.duplicates,
        dead_letters: counts.dead_letters,
        images,
        best_seconds: best,
        events_per_second: counts.lines as f64 / best,
        megabytes_per_second: data.len() as f64 / best / 1e6,
        serde_only_events_per_second: counts.lines as f64 / best_serde,
        threads: 1,
    })
}

fn one_pass(
    data: &[u8],
    fast_path: bool,
) -> Result<(crate::events::IntakeCounts, usize), BenchError> {
    let validator = Validator::new(Default::default(), Timestamp::now())?;
    let validator = if fast_path {
        validator
    } else {
        validator.serde_only()
    };
    let mut intake = Intake::new(validator, crate::events::DEFAULT_DEDUP_HORIZON_HOURS);
    let mut per_image: crate::hashing::FastMap<Box<str>, (u32, u32)> = crate::hashing::fast_map();
    for (index, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() && index > 0 {
            continue;
        }
        let position = || SourcePosition::File {
            path: "bench".into(),
            line: index as u64 + 1,
        };
        match intake.accept(line, line.len() as u64, position) {
            Outcome::Valid(Event::Publish(p)) => {
                per_image.entry(p.image_id.as_ref().into()).or_default();
            }
            Outcome::Valid(Event::View(v)) => {
                if let Some(c) = per_image.get_mut(v.image_id.as_ref()) {
                    c.0 += 1;
                }
            }
            Outcome::Valid(Event::Remix(r)) => {
                if let Some(c) = per_image.get_mut(r.image_id.as_ref()) {
                    c.1 += 1;
                }
            }
            Outcome::Duplicate | Outcome::Dead(_) => {}
        }
    }
    Ok((intake.into_counts(), per_image.len()))
}

#[derive(Debug, Serialize)]
pub struct CurateBench {
    pub file: PathBuf,
    pub bytes: u64,
    pub lines: u64,
    pub images: u64,
    pub triplets: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub peak_rss_mib: Option<f64>,
    pub duckdb: Option<DuckDbFigure>,
}

#[derive(Debug, Serialize)]
pub struct DuckDbFigure {
    pub seconds: f64,
    pub windowed_images: u64,
    pub threads: u64,
    /// DuckDB's time over ours, measured in this run.
    pub ratio: f64,
}

/// Curation of a simulated stream without pictures (hashes supplied by the simulator) and
/// without a catalog, then the same windowed counting in DuckDB when `python3 -m duckdb` works.
pub async fn curate(
    events: Option<&Path>,
    users: u64,
    days: f64,
    window_hours: f64,
    with_duckdb: bool,
) -> Result<CurateBench, BenchError> {
    let scratch =
        std::env::temp_dir().join(format!("social-reward-bench-curate-{}", std::process::id()));
    let (file, truth) = match events {
        // The simulator's truth table beside the events supplies the perceptual hashes.
        Some(path) => {
            let truth = path.with_file_name("truth.parquet");
            (path.to_path_buf(), truth.exists().then_some(truth))
        }
        None => {
            let summary = simulate_without_images(&scratch, users, days)?;
            (summary.events, Some(summary.truth))
        }
    };
    let bytes = std::fs::metadata(&file)
        .map_err(|e| BenchError::Io {
            path: file.clone(),
            source: e,
        })?
        .len();
    let out = scratch.join("out");
    let options = crate::curate::CurateOptions {
        events: vec![file.clone()],
        images: None,
        out: out.display().to_string(),
        config: crate::curate::CurateConfig {
            window_hours,
            ..Default::default()
        },
        limits: Default::default(),
        now: Timestamp::now(),
        dedup_horizon_hours: crate::events::DEFAULT_DEDUP_HORIZON_HOURS,
        image_dedup: match &truth {
            Some(t) => crate::curate::ImageDedup::Supplied(t.clone()),
            None => crate::curate::ImageDedup::Off,
        },
        truth: None,
        run_id: "bench".into(),
        progress: false,
    };
    let started = Instant::now();
    let summary = crate::curate::curate(&options, None).await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_rss_mib = peak_rss_mib();
    let duckdb = if with_duckdb {
        duckdb_windowed_counts(&file, window_hours).map(|(s, n, threads)| DuckDbFigure {
            seconds: s,
            windowed_images: n,
            threads,
            ratio: s / seconds,
        })
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(CurateBench {
        file,
        bytes,
        lines: summary.intake.lines,
        images: summary
            .intake
            .by_kind
            .get(&crate::events::EventKind::Publish)
            .copied()
            .unwrap_or(0),
        triplets: summary.triplets,
        seconds,
        events_per_second: summary.intake.lines as f64 / seconds,
        peak_rss_mib,
        duckdb,
    })
}

fn peak_rss_mib() -> Option<f64> {
    peak_rss_mib_of("self")
}

/// VmHWM of a process (`self` or a pid), from Linux's /proc.
fn peak_rss_mib_of(process: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The equivalent of curation's counting step in SQL: per image, views and remixes inside
/// `[published_at, published_at + window]`. Returns (seconds, images, threads).
fn duckdb_windowed_counts(file: &Path, window_hours: f64) -> Option<(f64, u64, u64)> {
    const SCRIPT: &str = r#"
import sys, time, duckdb
path, window = sys.argv[1], float(sys.argv[2])
con = duckdb.connect()
# Its progress bar goes to stdout on queries over ~2 s and would garble the figures.
con.execute("SET enable_progress_bar = false")
threads = con.execute("select current_setting('threads')").fetchone()[0]
sql = f"""
with ev as (
  select kind, image_id, try_cast(ts as timestamptz) as ts
  from read_json('{path}', format='newline_delimited', ignore_errors=true,
                 columns={{'kind':'VARCHAR','image_id':'VARCHAR','ts':'VARCHAR'}})
),
pub as (select image_id, min(ts) as published_at from ev where kind = 'publish' group by image_id)
select count(*) from (
  select p.image_id,
         count(*) filter (where e.kind = 'view') as views,
         count(*) filter (where e.kind = 'remix') as remixes
  from ev e join pub p using (image_id)
  where e.kind in ('view', 'remix')
    and e.ts between p.published_at and p.published_at + to_microseconds(cast({window} * 3600e6 as bigint))
  group by p.image_id
)
"""
t = time.perf_counter()
n = con.execute(sql).fetchone()[0]
print(time.perf_counter() - t, n, threads)
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(file)
        .arg(window_hours.to_string())
        .output()
        .ok()?;
    if !output.status.success() {
        tracing::warn!(
            "duckdb comparison skipped: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let figures = text.lines().last().and_then(|line| {
        let mut parts = line.split_whitespace();
        Some((
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        ))
    });
    if figures.is_none() {
        tracing::warn!("duckdb comparison: unexpected output {text:?}");
    }
    figures
}

/// A default-scenario community of `users` over `days`, events and truth only, in `out`.
fn simulate_without_images(
    out: &Path,
    users: u64,
    days: f64,
) -> Result<simulator::SimulationSummary, BenchError> {
    simulate_without_images_to(out, users, days, None)
}

/// The same, also produced to a Kafka topic.
fn simulate_without_images_to(
    out: &Path,
    users: u64,
    days: f64,
    kafka: Option<crate::sinks::kafka::KafkaTarget>,
) -> Result<simulator::SimulationSummary, BenchError> {
    Ok(simulator::simulate(&SimulateOptions {
        out: out.to_path_buf(),
        scenario: Scenario {
            users,
            days,
            ..Scenario::default()
        },
        images: false,
        image_size: 64,
        gzip: false,
        progress: false,
        kafka,
    })?)
}

#[derive(Debug, Serialize)]
pub struct DedupBench {
    pub hashes: usize,
    pub max_distance: u32,
    pub planted_near_copies: usize,
    pub found_near_duplicates: usize,
    pub seconds: f64,
    pub inserts_per_second: f64,
    /// Throughput over the last tenth, when the index is nearly full.
    pub inserts_per_second_at_end: f64,
}

/// The near-duplicate index alone: `count` 64-bit hashes, 5% of them copies of an earlier one
/// with up to `max_distance` bits flipped (reposts), inserted one by one.
pub fn dedup(count: usize, max_distance: u32) -> DedupBench {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut hashes: Vec<u64> = Vec::with_capacity(count);
    let mut planted = 0;
    for i in 0..count {
        let h = if i > 0 && rng.random_bool(0.05) {
            planted += 1;
            let mut h = hashes[rng.random_range(0..i)];
            for _ in 0..rng.random_range(0..=max_distance) {
                h ^= 1 << rng.random_range(0..64);
            }
            h
        } else {
            rng.random()
        };
        hashes.push(h);
    }
    let mut index = crate::curate::phash::NearDuplicateIndex::new(max_distance);
    let tail_from = count - count / 10;
    let started = Instant::now();
    let mut tail_started = started;
    let mut found = 0;
    for (i, &h) in hashes.iter().enumerate() {
        if i == tail_from {
            tail_started = Instant::now();
        }
        found += usize::from(index.insert(i as u64, h).is_some());
    }
    let seconds = started.elapsed().as_secs_f64();
    let tail = tail_started.elapsed().as_secs_f64();
    DedupBench {
        hashes: count,
        max_distance,
        planted_near_copies: planted,
        found_near_duplicates: found,
        seconds,
        inserts_per_second: count as f64 / seconds.max(1e-9),
        inserts_per_second_at_end: (count - tail_from) as f64 / tail.max(1e-9),
    }
}
