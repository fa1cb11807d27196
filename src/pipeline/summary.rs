//! The end of `run` for people: one line per stage, then the tables a reader of the paper looks
//! for (curation against the simulator's truth, pairwise accuracy beside the untrained model).
//! `run --json` prints the same summary as one JSON line instead.

use std::fmt::Write;

use super::run::{PipelineSummary, StageOutcome};

impl PipelineSummary {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\npipeline {} — run {} ({} catalog), {}",
            self.pipeline,
            self.run_id,
            self.catalog,
            duration(self.seconds)
        );
        let _ = writeln!(
            out,
            "  {:<9} {:<10} {:>8}  result",
            "stage", "status", "time"
        );
        for stage in &self.stages {
            let _ = writeln!(
                out,
                "  {:<9} {:<10} {:>8}  {}",
                stage.stage,
                stage.status,
                duration(stage.seconds),
                stage.metrics.headline()
            );
        }
        for stage in &self.stages {
            match &stage.metrics {
                StageOutcome::Curate(curate) => {
                    if let Some(evaluation) = &curate.evaluation {
                        let _ = write!(
                            out,
                            "\ncuration against the simulator's hidden truth\n{}",
                            evaluation.table()
                        );
                    }
                }
                StageOutcome::Eval(eval) => {
                    let _ = write!(out, "\nreward model ({})\n{}", eval.model, eval.table());
                }
                _ => {}
            }
        }
        let outputs: Vec<String> = self
            .stages
            .iter()
            .filter_map(|stage| stage.metrics.output())
            .collect();
        if !outputs.is_empty() {
            let _ = writeln!(out, "\noutputs");
            for line in outputs {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }
}

impl StageOutcome {
    /// The stage's result in a few words.
    fn headline(&self) -> String {
        match self {
            StageOutcome::Simulate(s) => format!(
                "{} images ({} reposts), {} event lines ({} views, {} remixes)",
                count(s.counts.images),
                count(s.counts.reposts),
                count(s.counts.lines),
                count(s.counts.views),
                count(s.counts.remixes)
            ),
            StageOutcome::Ingest(r) => format!(
                "{} messages ({} replayed), {} triplets in {} files, {} dead letters",
                count(r.messages),
                count(r.replayed),
                count(r.triplets),
                count(r.files),
                count(r.dead_letters_stored)
            ),
            StageOutcome::Curate(c) => format!(
                "{} triplets in {} files from {} lines ({} dead letters, {} duplicates){}",
                count(c.triplets),
                c.files.len(),
                count(c.intake.lines),
                count(c.intake.dead_letters),
                count(c.intake.duplicates),
                if c.sessions_already_curated > 0 {
                    format!(
                        "; {} sessions curated before",
                        count(c.sessions_already_curated)
                    )
                } else {
                    String::new()
                }
            ),
            StageOutcome::Train(t) => format!(
                "{} steps on {} triplets, loss {} -> {}, val accuracy {} (untrained {}), {:.0} samples/s on {}",
                t.steps,
                count(t.train_triplets as u64),
                decimal(t.first_loss),
                decimal(t.final_loss),
                percent(t.val_accuracy),
                percent(t.val_baseline_accuracy),
                t.samples_per_second,
                t.device
            ),
            StageOutcome::Eval(e) => format!(
                "{} accuracy {} vs untrained {} ({} pairs)",
                e.split,
                percent(e.accuracy),
                percent(e.baseline_accuracy),
                count(e.pairs as u64)
            ),
            StageOutcome::Report(r) => format!(
                "{} plots and {} thumbnails over {} triplets ({} KiB)",
                r.figures,
                r.thumbnails,
                count(r.triplets as u64),
                r.bytes / 1024
            ),
        }
    }

    /// Where the stage's result lies, for the stages whose result is a place.
    fn output(&self) -> Option<String> {
        match self {
            StageOutcome::Simulate(s) => Some(format!("events    {}", s.events.display())),
            StageOutcome::Curate(c) => {
                let first = c.files.first()?;
                let root = first
                    .uri
                    .split("/triplets/")
                    .next()
                    .unwrap_or(first.uri.as_str());
                Some(format!(
                    "triplets  {root}/triplets (split=…/dt=…/part-….parquet)"
                ))
            }
            StageOutcome::Train(t) => Some(format!("model     {}", t.model_uri)),
            StageOutcome::Report(r) => Some(format!("report    {}", r.page)),
            StageOutcome::Ingest(_) | StageOutcome::Eval(_) => None,
        }
    }
}

fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        format!(
            "{}m{:02}s",
            (seconds / 60.0) as u64,
            (seconds % 60.0) as u64
        )
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn decimal(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.3}"))
}

/// 1234567 -> "1,234,567": counts a person reads at a glance.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_read_at_a_glance() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(duration(9.24), "9.2 s");
        assert_eq!(duration(95.0), "1m35s");
        assert_eq!(percent(Some(0.6972)), "69.7%");
        assert_eq!(percent(None), "-");
    }
}
