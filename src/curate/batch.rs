//! The batch driver: event files in, triplet files on object storage and a manifest out.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tracing::{info, warn};

use crate::events::{DeadLetter, Event, Intake, IntakeCounts, Limits, Timestamp, Validator};
use crate::sources::file::FileFeed;
use crate::sources::{PartitionSource, Polled, SourceError};
use crate::store::{Catalog, ManifestEntry, ObjectRoot};

use super::admit::{admit, end_of_input, settle_unclaimed};
use super::config::{CurateConfig, ImageDedup};
use super::curator::{Curator, SuppliedHashes};
use super::emit::Emitter;
use super::error::CurateError;
use super::evaluate::{Evaluation, RawCounts, Truth};
use super::paths::PicturePaths;
use super::window::{ClosedSession, WindowCounts, Windows};

#[derive(Debug, Clone)]
pub struct CurateOptions {
    pub events: Vec<PathBuf>,
    pub images: Option<String>,
    pub out: String,
    pub config: CurateConfig,
    pub limits: Limits,
    pub now: Timestamp,
    pub dedup_horizon_hours: f64,
    pub image_dedup: ImageDedup,
    pub truth: Option<PathBuf>,
    pub run_id: String,
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurateSummary {
    pub run_id: String,
    #[serde(flatten)]
    pub intake: IntakeCounts,
    pub balanced: bool,
    pub windows: WindowCounts,
    pub sessions_already_curated: u64,
    /// When sessions were skipped as curated before: where to, and the latest run that wrote
    /// there.
    pub curated_before: Option<CuratedBefore>,
    pub images_hashed: u64,
    pub image_errors: u64,
    pub near_duplicates_dropped: u64,
    /// Candidate triplets across a creator's sessions (`same_cluster_fallback_hours`).
    pub fallback_triplets: u64,
    pub prompt_clusters: usize,
    pub candidate_triplets: u64,
    pub capped_triplets: u64,
    pub triplets: u64,
    pub files: Vec<ManifestEntry>,
    pub new_manifest_rows: u64,
    pub evaluation: Option<Evaluation>,
    pub seconds: f64,
}

/// The earlier curation a run found in its output location.
#[derive(Debug, Clone, Serialize)]
pub struct CuratedBefore {
    pub location: String,
    pub run_id: String,
    pub at: String,
}

impl CuratedBefore {
    /// What a run that wrote nothing new says, and why.
    pub fn explain(&self, sessions: u64) -> String {
        format!(
            "no new triplets: {sessions} sessions were curated into {} before (last by run {} \
             at {}) and are not written again. Curate into another --out, or with another \
             catalog (--db), to write them anew",
            self.location, self.run_id, self.at
        )
    }
}

pub async fn curate(
    options: &CurateOptions,
    catalog: Option<&Catalog>,
) -> Result<CurateSummary, CurateError> {
    let started = Instant::now();
    let config = &options.config;
    let validator = Validator::new(options.limits.clone(), options.now)?;
    let mut intake = Intake::new(validator.clone(), options.dedup_horizon_hours);
    let mut windows = Windows::new(config);
    let images_root = match (&options.image_dedup, &options.images) {
        (ImageDedup::Pixels, Some(url)) => Some(ObjectRoot::open(url)?),
        (ImageDedup::Pixels, None) => {
            return Err(CurateError::ImagesNeeded);
        }
        _ => None,
    };
    let out = ObjectRoot::open(&options.out)?;
    let supplied = match &options.image_dedup {
        ImageDedup::Supplied(path) => Arc::new(SuppliedHashes::load(path)?),
        _ => Arc::default(),
    };
    let mut curator = Curator::new(
        config.clone(),
        options.image_dedup.clone(),
        images_root,
        supplied,
        catalog.is_some(),
    );
    // What was curated into this output before: its sessions are not written again, its
    // pictures are the originals later reposts are told from. Other locations' are not.
    let location = out.location().to_owned();
    if let Some(catalog) = catalog {
        let curated = catalog.curated_image_ids(&location).await?;
        let hashes = catalog.known_phashes(&location).await?;
        curator.remember_catalog(
            curated.into_iter().collect(),
            hashes.into_iter().map(|(_, h)| h).collect(),
        );
    }
    let pictures = PicturePaths::new(config.path_style, options.images.as_deref())?;
    let mut emitter = Emitter::new(
        out,
        pictures,
        catalog.cloned(),
        &options.run_id,
        options.truth.is_some(),
    );
    // Closed sessions are hashed, de-duplicated, paired and written on another task while this
    // one keeps reading: with two cores, windowing and pairing overlap instead of taking turns.
    // Each message carries the day before which everything is final; `None` ends the input.
    let (closed_tx, mut closed_rx) =
        tokio::sync::mpsc::channel::<(Vec<ClosedSession>, Option<i64>)>(8);
    let processor = tokio::spawn(async move {
        while let Some((closed, final_before)) = closed_rx.recv().await {
            curator.process(closed).await?;
            let flushed = match final_before {
                Some(before) => curator.flush_final(before),
                None => Some(curator.flush_all()),
            };
            if let Some(flushed) = flushed {
                emitter.emit(flushed).await?;
            }
        }
        Ok::<_, CurateError>((curator, emitter))
    });
    let send = |closed: Vec<ClosedSession>, final_before: Option<i64>| {
        let tx = closed_tx.clone();
        async move { tx.send((closed, final_before)).await.is_ok() }
    };
    let mut raw = options.truth.as_ref().map(|_| RawCounts::default());
    let mut dead: Vec<DeadLetter> = Vec::new();
    let bar = crate::progress::counter(options.progress, "curating events");
    let mut final_before = i64::MIN;
    // Lines are read and parsed on a thread of their own (the same feed the streaming ingest
    // reads files from); this task de-duplicates them and counts them in the windows.
    let (feed, link, mut polled) = FileFeed::start(options.events.clone(), validator)?;
    let mut since_advance = 0u32;
    loop {
        let chunk = match polled.recv().await {
            Some(Polled::Records(chunk)) => chunk,
            Some(Polled::Drained) => break,
            // A read error ends the input early: it must fail the run before the end of input
            // is emitted.
            Some(Polled::Failed(error)) => return Err(error.into()),
            // The files' ends one by one; a batch asks for no seeks.
            Some(_) => continue,
            None => return Err(SourceError::ReaderStopped.into()),
        };
        // The event-id memory's slots are fetched ahead of the whole chunk, so that its cache
        // misses overlap instead of stalling one event at a time.
        for record in chunk.records() {
            intake.prefetch(&record.parsed);
        }
        for record in chunk.records() {
            let position = || link.position(record.partition, record.offset);
            let (payload, raw_len) = (record.payload, record.raw_len);
            let outcome = intake.accept_parsed(record.parsed.clone(), payload, raw_len, position);
            let event = admit(
                &mut intake,
                &mut windows,
                outcome,
                payload,
                raw_len,
                position,
                &mut dead,
            );
            if let (Some(raw), Some(event)) = (raw.as_mut(), &event) {
                raw_count(raw, event);
            }
            since_advance += 1;
            if since_advance == 50_000 {
                bar.inc(u64::from(since_advance));
                since_advance = 0;
                let (closed, unclaimed) = windows.advance();
                settle_unclaimed(&mut intake, unclaimed, &mut dead);
                store_letters(catalog, &options.run_id, &mut dead).await?;
                let moved = windows.final_before() > final_before;
                final_before = windows.final_before();
                if (!closed.is_empty() || moved) && !send(closed, Some(final_before)).await {
                    return Err(processor_failure(processor).await);
                }
            }
        }
        link.recycle(chunk);
    }
    feed.stop(polled);
    bar.inc(u64::from(since_advance));
    let closed = end_of_input(&mut intake, &mut windows, &mut dead);
    store_letters(catalog, &options.run_id, &mut dead).await?;
    // End of input: what has closed is final, whatever its day.
    if !send(closed, None).await {
        return Err(processor_failure(processor).await);
    }
    drop(closed_tx);
    let (curator, emitter) = processor.await.map_err(|source| CurateError::Task {
        task: "session processor",
        source,
    })??;
    bar.finish_and_clear();

    let evaluation = match (&options.truth, &raw, emitter.kept()) {
        (Some(path), Some(raw), Some(rows)) => Some(Truth::load(path)?.evaluate(rows, raw)),
        _ => None,
    };
    let counts = intake.into_counts();
    let stats = curator.stats();
    let curated_before =
        match catalog {
            Some(catalog) if stats.skipped_sessions > 0 => catalog
                .last_emission(&location)
                .await?
                .map(|(run_id, at)| CuratedBefore {
                    location: location.clone(),
                    run_id,
                    at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                }),
            _ => None,
        };
    if let Some(before) = &curated_before
        && emitter.triplets == 0
    {
        warn!("{}", before.explain(stats.skipped_sessions));
    }
    info!(
        triplets = emitter.triplets,
        files = emitter.files.len(),
        "curation finished"
    );
    Ok(CurateSummary {
        run_id: options.run_id.clone(),
        balanced: counts.is_balanced(),
        intake: counts,
        windows: windows.counts(),
        sessions_already_curated: stats.skipped_sessions,
        curated_before,
        images_hashed: stats.hashed,
        image_errors: stats.image_errors,
        near_duplicates_dropped: stats.near_duplicates,
        fallback_triplets: stats.fallback_pairs,
        prompt_clusters: curator.prompt_clusters(),
        candidate_triplets: emitter.candidates,
        capped_triplets: emitter.capped,
        triplets: emitter.triplets,
        new_manifest_rows: emitter.new_manifest_rows,
        files: emitter.files,
        evaluation,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Dead letters go to the catalog as they come, not held to the end of the input: memory then
/// does not grow with the stream's bad records. Without a catalog the counts are all that stays.
async fn store_letters(
    catalog: Option<&Catalog>,
    run_id: &str,
    letters: &mut Vec<DeadLetter>,
) -> Result<(), CurateError> {
    if let Some(catalog) = catalog
        && !letters.is_empty()
    {
        catalog.insert_dead_letters(run_id, letters).await?;
    }
    letters.clear();
    Ok(())
}

fn raw_count(raw: &mut RawCounts, event: &Event<'_>) {
    match event {
        Event::Publish(p) => {
            raw.images
                .entry(p.image_id.to_string())
                .or_insert_with(|| (Arc::from(p.prompt.as_ref()), 0));
        }
        Event::Remix(r) => {
            if let Some(entry) = raw.images.get_mut(r.image_id.as_ref()) {
                entry.1 += 1;
            }
        }
        Event::View(_) => {}
    }
}

/// The error that stopped the session processor (it only stops early on one).
async fn processor_failure(
    processor: tokio::task::JoinHandle<Result<(Curator, Emitter), CurateError>>,
) -> CurateError {
    match processor.await {
        Ok(Err(error)) => error,
        Ok(Ok(_)) => CurateError::ProcessorStopped,
        Err(source) => CurateError::Task {
            task: "session processor",
            source,
        },
    }
}
