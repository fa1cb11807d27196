//! `social-reward bench …`: throughput figures measured in one process, printed as JSON.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::events::{Event, Intake, Outcome, SourcePosition, Timestamp, Validator};
use crate::pipeline::StageError;
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
    pub threads: u32,
}

/// Parse + validate + de-duplicate + per-image aggregation on one thread, from memory so that
/// disk speed does not enter the figure. The best of `repeat` passes is reported.
pub fn parse(events: Option<&Path>, users: u64, days: f64, repeat: u32) -> Result<ParseBench, StageError> {
    let scratch;
    let file = match events {
        Some(path) => path.to_path_buf(),
        None => {
            scratch = std::env::temp_dir().join(format!("social-reward-bench-{}", std::process::id()));
            let scenario = Scenario {
                users,
                days,
                ..Scenario::default()
            };
            let summary = simulator::simulate(&SimulateOptions {
                out: scratch.clone(),
                scenario,
                images: false,
                image_size: 64,
                gzip: false,
                progress: false,
            })?;
            summary.events
        }
    };
    let data = std::fs::read(&file).map_err(|e| StageError::io(&file, e))?;
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        let pass = one_pass(&data)?;
        best = best.min(started.elapsed().as_secs_f64());
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
        threads: 1,
    })
}

fn one_pass(data: &[u8]) -> Result<(crate::events::IntakeCounts, usize), StageError> {
    let validator = Validator::new(Default::default(), Timestamp::now())?;
    let mut intake = Intake::new(validator, 6.0);
    let mut per_image: HashMap<Box<str>, (u32, u32)> = HashMap::new();
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
