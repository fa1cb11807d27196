//! The batch driver: event files in, triplet files on object storage and a manifest out.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tracing::{info, warn};

use crate::events::{
    DeadLetter, Event, Intake, IntakeCounts, Limits, Outcome, SourcePosition, Timestamp, Validator,
};
use crate::hashing::{FastMap, fast_map};
use crate::pipeline::StageError;
use crate::sources::file::JsonlReader;
use crate::store::{Catalog, CuratedImage, ManifestEntry, ObjectRoot};

use super::config::CurateConfig;
use super::evaluate::{Evaluation, RawCounts, Truth};
use super::fallback::FallbackPool;
use super::pairs::{Preference, session_preferences};
use super::phash::{NearDuplicateIndex, PerceptualHasher};
use super::prompt::PromptClusterer;
use super::triplets::{self, Triplet};
use super::window::{ClosedImage, ClosedSession, Observation, WindowCounts, Windows};

/// How reposts and near-duplicate pictures are found.
#[derive(Debug, Clone)]
pub enum ImageDedup {
    /// Perceptual hashes of the pixels, fetched from the images root.
    Pixels,
    /// Hashes supplied in a Parquet file with `image_id` and `phash` (u64) columns, e.g. the
    /// simulator's truth table, for image-free runs at scale.
    Supplied(PathBuf),
    Off,
}

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

/// Images decoded at once between dedup steps; bounds memory held in fetched bytes.
const HASH_BATCH: usize = 256;

pub async fn curate(
    options: &CurateOptions,
    catalog: Option<&Catalog>,
) -> Result<CurateSummary, StageError> {
    let started = Instant::now();
    let config = &options.config;
    let validator = Validator::new(options.limits.clone(), options.now)?;
    let max_record = validator.limits().max_payload_bytes;
    let mut intake = Intake::new(validator, options.dedup_horizon_hours);
    let mut windows = Windows::new(config);
    let images_root = match (&options.image_dedup, &options.images) {
        (ImageDedup::Pixels, Some(url)) => Some(ObjectRoot::open(url)?),
        (ImageDedup::Pixels, None) => {
            return Err(StageError::Failed {
                stage: "curate".into(),
                message: "image de-duplication needs --images (or pass --no-image-dedup)".into(),
            });
        }
        _ => None,
    };
    let out = ObjectRoot::open(&options.out)?;
    let mut state = SessionProcessor {
        config: config.clone(),
        hasher: PerceptualHasher::new(config.phash),
        index: NearDuplicateIndex::new(config.phash.max_distance),
        index_ids: 0,
        supplied: match &options.image_dedup {
            ImageDedup::Supplied(path) => load_supplied_hashes(path)?,
            _ => fast_map(),
        },
        dedup: options.image_dedup.clone(),
        images_root,
        clusterer: PromptClusterer::new(config.clustering),
        curated_before: HashSet::new(),
        keep_images: catalog.is_some(),
        curated: Vec::new(),
        candidates: Vec::new(),
        fallback: FallbackPool::new(config.same_cluster_fallback_hours),
        stats: Stats::default(),
    };
    if let Some(catalog) = catalog {
        state.curated_before = catalog.curated_image_ids().await?.into_iter().collect();
        for (_, hash) in catalog.known_phashes().await? {
            state.index.insert(state.index_ids, hash);
            state.index_ids += 1;
        }
    }
    // Closed sessions are hashed, de-duplicated and paired on another task while this one keeps
    // reading: with two cores, windowing and pairing overlap instead of taking turns.
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel::<Vec<ClosedSession>>(8);
    let processor = tokio::spawn(async move {
        while let Some(closed) = closed_rx.recv().await {
            state.process(closed).await?;
        }
        Ok::<_, StageError>(state)
    });
    let send = |closed: Vec<ClosedSession>| {
        let tx = closed_tx.clone();
        async move {
            if closed.is_empty() {
                return true;
            }
            tx.send(closed).await.is_ok()
        }
    };
    let mut raw = options.truth.as_ref().map(|_| RawCounts::default());
    let mut dead: Vec<DeadLetter> = Vec::new();
    let bar = crate::progress::counter(options.progress, "curating events");
    for path in &options.events {
        let mut reader = JsonlReader::open(path, max_record)?;
        let shown = path.display().to_string();
        let mut since_advance = 0u32;
        while let Some(record) = reader.next_record()? {
            let line = record.line;
            let position = || SourcePosition::File {
                path: shown.clone(),
                line,
            };
            match intake.accept(record.payload, record.raw_len, position) {
                Outcome::Valid(event) => {
                    if let Some(raw) = raw.as_mut() {
                        raw_count(raw, &event);
                    }
                    let kind = event.kind();
                    if let Observation::Rejected(rejection) =
                        windows.observe(&event, record.payload, position)
                    {
                        intake.reject_after_intake(kind, rejection.reason);
                        dead.push(DeadLetter::new(
                            record.payload,
                            record.raw_len,
                            rejection,
                            position(),
                        ));
                    }
                }
                Outcome::Duplicate => {}
                Outcome::Dead(letter) => dead.push(letter),
            }
            since_advance += 1;
            if since_advance == 50_000 {
                bar.inc(u64::from(since_advance));
                since_advance = 0;
                let (closed, expired) = windows.advance();
                account_expired(&mut intake, &mut dead, expired);
                if !send(closed).await {
                    return Err(processor_failure(processor).await);
                }
            }
        }
        bar.inc(u64::from(since_advance));
    }
    let (closed, expired) = windows.advance();
    account_expired(&mut intake, &mut dead, expired);
    let unclaimed = windows.drain_buffered();
    account_expired(&mut intake, &mut dead, unclaimed);
    if !send(closed).await {
        return Err(processor_failure(processor).await);
    }
    drop(closed_tx);
    let mut state = processor.await.map_err(|e| StageError::Failed {
        stage: "curate".into(),
        message: format!("session processor: {e}"),
    })??;
    bar.finish_and_clear();

    let mut candidates = std::mem::take(&mut state.candidates);
    let candidate_count = candidates.len() as u64;
    let capped = triplets::apply_cluster_cap(&mut candidates, config.max_cluster_share) as u64;
    triplets::mark_unique_prompts(&mut candidates);
    let evaluation = match (&options.truth, &raw) {
        (Some(path), Some(raw)) => Some(Truth::load(path)?.evaluate(&candidates, raw)),
        _ => None,
    };
    let triplet_count = candidates.len() as u64;
    let mut files = Vec::new();
    for ((split, dt), rows) in triplets::partition(candidates) {
        let bytes = triplets::encode_parquet(&rows)?;
        let digest = blake3::hash(&bytes).to_hex();
        let key = format!(
            "triplets/split={}/dt={dt}/part-{}.parquet",
            split.as_str(),
            &digest[..32]
        );
        out.put(&key, bytes).await?;
        files.push(ManifestEntry {
            uri: out.url_of(&key),
            rows: rows.len() as i64,
            blake3: digest.to_string(),
            split: split.as_str().to_owned(),
            dt,
        });
    }
    let mut new_manifest_rows = 0;
    if let Some(catalog) = catalog {
        catalog.insert_dead_letters(&options.run_id, &dead).await?;
        let curated: Vec<CuratedImage<'_>> = state
            .curated
            .iter()
            .map(|(image, phash, key, cluster)| CuratedImage {
                image,
                phash: *phash,
                prompt_key: key,
                prompt_cluster: cluster,
            })
            .collect();
        new_manifest_rows = catalog
            .record_emission(&options.run_id, &files, &curated)
            .await?;
    }
    let counts = intake.into_counts();
    info!(
        triplets = triplet_count,
        files = files.len(),
        "curation finished"
    );
    Ok(CurateSummary {
        run_id: options.run_id.clone(),
        balanced: counts.is_balanced(),
        intake: counts,
        windows: windows.counts(),
        sessions_already_curated: state.stats.skipped_sessions,
        images_hashed: state.stats.hashed,
        image_errors: state.stats.image_errors,
        near_duplicates_dropped: state.stats.near_duplicates,
        fallback_triplets: state.stats.fallback_pairs,
        prompt_clusters: state.clusterer.clusters(),
        candidate_triplets: candidate_count,
        capped_triplets: capped,
        triplets: triplet_count,
        files,
        new_manifest_rows,
        evaluation,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn account_expired(intake: &mut Intake, dead: &mut Vec<DeadLetter>, expired: Vec<DeadLetter>) {
    for letter in expired {
        // Buffered events were valid views or remixes; which kind does not matter for the
        // balance, only that one valid event became one dead letter.
        let kind = if letter.raw.windows(7).any(|w| w == b"\"remix\"") {
            crate::events::EventKind::Remix
        } else {
            crate::events::EventKind::View
        };
        intake.reject_after_intake(kind, letter.reason);
        dead.push(letter);
    }
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

fn load_supplied_hashes(path: &std::path::Path) -> Result<FastMap<String, u64>, StageError> {
    let frame = crate::sources::simulator::read_truth(path)?;
    let ids = frame.column("image_id")?.str()?.clone();
    let hashes = frame.column("phash")?.u64()?.clone();
    let mut map = fast_map();
    map.reserve(frame.height());
    map.extend((0..frame.height()).filter_map(|i| Some((ids.get(i)?.to_owned(), hashes.get(i)?))));
    Ok(map)
}

#[derive(Default)]
struct Stats {
    skipped_sessions: u64,
    hashed: u64,
    image_errors: u64,
    near_duplicates: u64,
    fallback_pairs: u64,
}

struct SessionProcessor {
    config: CurateConfig,
    hasher: PerceptualHasher,
    index: NearDuplicateIndex,
    index_ids: u64,
    supplied: FastMap<String, u64>,
    dedup: ImageDedup,
    images_root: Option<ObjectRoot>,
    clusterer: PromptClusterer,
    curated_before: HashSet<String>,
    keep_images: bool,
    /// Every image of every session curated in this run, for the catalog.
    curated: Vec<(super::window::ClosedImage, Option<u64>, String, String)>,
    candidates: Vec<Triplet>,
    fallback: Option<FallbackPool>,
    stats: Stats,
}

struct PendingSession {
    session: ClosedSession,
    hashes: Vec<Option<u64>>,
}

impl SessionProcessor {
    async fn process(&mut self, closed: Vec<ClosedSession>) -> Result<(), StageError> {
        let mut pending = Vec::new();
        let mut images = 0;
        for session in closed {
            if session
                .images
                .iter()
                .any(|i| self.curated_before.contains(&i.record.image_id))
            {
                self.stats.skipped_sessions += 1;
                continue;
            }
            images += session.images.len();
            pending.push(session);
            if images >= HASH_BATCH {
                self.hash_and_pair(std::mem::take(&mut pending)).await?;
                images = 0;
            }
        }
        self.hash_and_pair(pending).await
    }

    async fn hash_and_pair(&mut self, sessions: Vec<ClosedSession>) -> Result<(), StageError> {
        let mut pending: Vec<PendingSession> = Vec::with_capacity(sessions.len());
        match (&self.dedup, &self.images_root) {
            (ImageDedup::Pixels, Some(root)) => {
                let mut fetched = Vec::new();
                for session in &sessions {
                    for image in &session.images {
                        let uri = &image.record.image_uri;
                        fetched.push(
                            root.get(uri, self.config.phash.max_bytes)
                                .await
                                .map_err(|e| e.to_string()),
                        );
                    }
                }
                let hashes = hash_parallel(&self.hasher, &sessions, fetched);
                let mut hashes = hashes.into_iter();
                for session in sessions {
                    let session_hashes: Vec<Option<u64>> = session
                        .images
                        .iter()
                        .map(|image| match hashes.next() {
                            Some(Ok(hash)) => {
                                self.stats.hashed += 1;
                                Some(hash)
                            }
                            Some(Err(message)) => {
                                self.stats.image_errors += 1;
                                warn!(image = %image.record.image_id, %message, "image left out of pairing");
                                None
                            }
                            None => None,
                        })
                        .collect();
                    pending.push(PendingSession {
                        session,
                        hashes: session_hashes,
                    });
                }
            }
            (ImageDedup::Supplied(_), _) => {
                for session in sessions {
                    let hashes = session
                        .images
                        .iter()
                        .map(|i| self.supplied.get(&i.record.image_id).copied())
                        .collect();
                    pending.push(PendingSession { session, hashes });
                }
            }
            _ => {
                for session in sessions {
                    let hashes = vec![None; session.images.len()];
                    pending.push(PendingSession { session, hashes });
                }
            }
        }
        for p in pending {
            self.pair(p);
        }
        Ok(())
    }

    fn pair(&mut self, pending: PendingSession) {
        let PendingSession { session, hashes } = pending;
        let Some(first) = session.images.first() else {
            return;
        };
        let assignment = self.clusterer.assign(&first.record.prompt);
        let dedup_on = !matches!(self.dedup, ImageDedup::Off);
        let mut eligible = Vec::with_capacity(session.images.len());
        for (image, hash) in session.images.iter().zip(&hashes) {
            let mut ok = image.views >= self.config.min_views;
            match hash {
                Some(hash) => {
                    let id = self.index_ids;
                    self.index_ids += 1;
                    if self.index.insert(id, *hash).is_some() {
                        self.stats.near_duplicates += 1;
                        ok = false;
                    }
                }
                // Without a hash a picture cannot be shown to be unique: leave it out.
                None if dedup_on => ok = false,
                None => {}
            }
            eligible.push(ok);
        }
        let dt = first.record.published_at.date_string();
        let split = self.config.split.split_of(&session.creator_id);
        let triplet = |pos: &ClosedImage, neg: &ClosedImage, pref: &Preference| Triplet {
            prompt: pos.record.prompt.to_string(),
            pos_path: pos.record.image_uri.clone(),
            neg_path: neg.record.image_uri.clone(),
            pos_image_id: pos.record.image_id.clone(),
            neg_image_id: neg.record.image_id.clone(),
            creator_id: session.creator_id.clone(),
            generation_id: session.generation_id.clone(),
            prompt_cluster: assignment.cluster_id.clone(),
            split,
            unique_prompt: false,
            pos_views: pos.views,
            pos_remixes: pos.remixes,
            neg_views: neg.views,
            neg_remixes: neg.remixes,
            pos_rate: pref.pos_rate,
            neg_rate: pref.neg_rate,
            confidence: pref.confidence,
            window_hours: self.config.window_hours,
            pipeline_version: format!("social-reward/{}", env!("CARGO_PKG_VERSION")),
            dt: dt.clone(),
        };
        for pref in session_preferences(&self.config, &session.images, &eligible) {
            let (pos, neg) = (&session.images[pref.pos], &session.images[pref.neg]);
            self.candidates.push(triplet(pos, neg, &pref));
        }
        if let Some(pool) = &mut self.fallback {
            // Across sessions the generation_id column names the later session.
            for (earlier, index) in
                pool.match_and_remember(&assignment.cluster_id, &session, &eligible)
            {
                let pair = [earlier.image, session.images[index].clone()];
                for pref in session_preferences(&self.config, &pair, &[true, true]) {
                    self.candidates
                        .push(triplet(&pair[pref.pos], &pair[pref.neg], &pref));
                    self.stats.fallback_pairs += 1;
                }
            }
        }
        if self.keep_images {
            for (image, hash) in session.images.into_iter().zip(hashes) {
                self.curated.push((
                    image,
                    hash,
                    assignment.prompt_key.clone(),
                    assignment.cluster_id.clone(),
                ));
            }
        }
    }
}

/// The error that stopped the session processor (it only stops early on one).
async fn processor_failure(
    processor: tokio::task::JoinHandle<Result<SessionProcessor, StageError>>,
) -> StageError {
    match processor.await {
        Ok(Err(error)) => error,
        Ok(Ok(_)) => StageError::Failed {
            stage: "curate".into(),
            message: "the session processor stopped early".into(),
        },
        Err(join) => StageError::Failed {
            stage: "curate".into(),
            message: format!("session processor: {join}"),
        },
    }
}

/// Decodes and hashes fetched pictures on all cores; results keep the input order.
fn hash_parallel(
    hasher: &PerceptualHasher,
    sessions: &[ClosedSession],
    fetched: Vec<Result<Vec<u8>, String>>,
) -> Vec<Result<u64, String>> {
    let names: Vec<&str> = sessions
        .iter()
        .flat_map(|s| s.images.iter().map(|i| i.record.image_id.as_str()))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(1);
    let chunk = fetched.len().div_ceil(threads).max(1);
    let mut results: Vec<Result<u64, String>> = Vec::with_capacity(fetched.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = fetched
            .chunks(chunk)
            .zip(names.chunks(chunk))
            .map(|(bytes, names)| {
                scope.spawn(move || {
                    bytes
                        .iter()
                        .zip(names)
                        .map(|(b, name)| match b {
                            Ok(b) => hasher.hash_bytes(name, b).map_err(|e| e.to_string()),
                            Err(e) => Err(e.clone()),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(part) => results.extend(part),
                Err(_) => results.push(Err("hashing thread panicked".into())),
            }
        }
    });
    results
}
