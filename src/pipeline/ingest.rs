//! The `ingest` stage on files: validated events folded into the catalog in batches, one
//! transaction per batch (images, counter deltas, dead letters). Files carry no offsets, so
//! re-running it over the same files adds the counters again; the Kafka consumer stores each
//! partition's next offset in the same transaction (`Catalog::apply_batch`) instead.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::events::{
    DeadLetter, Event, Intake, IntakeCounts, Outcome, Publish, SourcePosition, Validator,
};
use crate::sources::file::JsonlReader;
use crate::store::{Catalog, CounterDelta};

use super::StageError;

#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub files: Vec<PathBuf>,
    #[serde(flatten)]
    pub counts: IntakeCounts,
    pub balanced: bool,
    pub images_inserted: u64,
    pub counted_events: u64,
    /// Views and remixes of images whose publish event the catalog has not seen.
    pub unknown_image_events: u64,
    pub dead_letters_stored: u64,
    pub seconds: f64,
}

#[derive(Default)]
struct Batch {
    records: usize,
    publishes: Vec<Publish<'static>>,
    counters: HashMap<String, (i64, i64)>,
    dead: Vec<DeadLetter>,
}

pub async fn ingest_files(
    catalog: &Catalog,
    run_id: &str,
    files: &[PathBuf],
    validator: Validator,
    dedup_horizon_hours: f64,
    batch_size: usize,
    progress: bool,
) -> Result<IngestReport, StageError> {
    let started = Instant::now();
    let bar = crate::progress::counter(progress, "ingesting lines");
    let max_record = validator.limits().max_payload_bytes;
    let mut intake = Intake::new(validator, dedup_horizon_hours);
    let mut totals = Totals::default();
    for path in files {
        let mut reader = JsonlReader::open(path, max_record)?;
        let shown = path.display().to_string();
        let mut batch = Batch::default();
        while let Some(record) = reader.next_record()? {
            let line = record.line;
            batch.records += 1;
            match intake.accept(record.payload, record.raw_len, || SourcePosition::File {
                path: shown.clone(),
                line,
            }) {
                Outcome::Valid(Event::Publish(p)) => batch.publishes.push(p.into_owned()),
                Outcome::Valid(Event::View(v)) => {
                    batch.counters.entry(v.image_id.into_owned()).or_default().0 += 1;
                }
                Outcome::Valid(Event::Remix(r)) => {
                    batch.counters.entry(r.image_id.into_owned()).or_default().1 += 1;
                }
                Outcome::Duplicate => {}
                Outcome::Dead(letter) => batch.dead.push(letter),
            }
            if batch.records >= batch_size.max(1) {
                totals
                    .flush(catalog, run_id, std::mem::take(&mut batch))
                    .await?;
            }
        }
        bar.inc(batch.records as u64);
        totals.flush(catalog, run_id, batch).await?;
    }
    bar.finish_and_clear();
    let counts = intake.into_counts();
    Ok(IngestReport {
        files: files.to_vec(),
        balanced: counts.is_balanced(),
        counts,
        images_inserted: totals.images_inserted,
        counted_events: totals.counted_events,
        unknown_image_events: totals.unknown_image_events,
        dead_letters_stored: totals.dead_letters_stored,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[derive(Default)]
struct Totals {
    images_inserted: u64,
    counted_events: u64,
    unknown_image_events: u64,
    dead_letters_stored: u64,
}

impl Totals {
    /// Publishes are written first in the transaction, so that views of images published in
    /// the same batch find them.
    async fn flush(
        &mut self,
        catalog: &Catalog,
        run_id: &str,
        batch: Batch,
    ) -> Result<(), StageError> {
        let mut deltas: Vec<CounterDelta> = batch
            .counters
            .into_iter()
            .map(|(image_id, (views, remixes))| CounterDelta {
                image_id,
                views,
                remixes,
            })
            .collect();
        deltas.sort_by(|a, b| a.image_id.cmp(&b.image_id));
        let total: i64 = deltas.iter().map(|d| d.views + d.remixes).sum();
        let applied = catalog
            .apply_batch(run_id, &batch.publishes, &deltas, &batch.dead, None)
            .await?;
        let lost: i64 = applied.unmatched.iter().map(|d| d.views + d.remixes).sum();
        self.images_inserted += applied.images_inserted;
        self.counted_events += (total - lost) as u64;
        self.unknown_image_events += lost as u64;
        self.dead_letters_stored += applied.dead_letters_stored;
        Ok(())
    }
}
