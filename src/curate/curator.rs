//! The curation core shared by the batch command and the streaming consumer: closed generation
//! sessions in, capped and split triplets out, one day at a time.
//!
//! Sessions are hashed (or given their supplied hashes), cleared of reposts, clustered by prompt
//! and paired as they close. Their triplets wait per day until the window layer says the day is
//! final; `flush` then caps each day's prompt clusters, marks `unique_prompt` and hands the rows
//! over. What is held is therefore bounded by the days still open, and the memories that
//! recognise reposts and prompts forget after `recall_days`. Everything depends only on the
//! order of the sessions and the flush points, which batch and stream share.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::hashing::{FastMap, fast_map};
use crate::store::{CuratedImage, ObjectRoot};

use super::config::{CurateConfig, ImageDedup, Split};
use super::error::CurateError;
use super::fallback::FallbackPool;
use super::pairs::{Preference, session_preferences};
use super::phash::{NearDuplicateIndex, PerceptualHasher};
use super::prompt::PromptClusterer;
use super::recall::{Recall, day_of};
use super::triplets::{self, Triplet};
use super::window::{ClosedImage, ClosedSession};

/// Perceptual hashes given with the input (the simulator's truth table) instead of computed
/// from pixels. An input table, so it grows with the images it covers; keyed by a 128-bit hash
/// of the image id to hold 24 bytes an image rather than a string.
#[derive(Default)]
pub struct SuppliedHashes(FastMap<u128, u64>);

/// How many, not which: the table may hold millions.
impl std::fmt::Debug for SuppliedHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SuppliedHashes({} images)", self.0.len())
    }
}

impl SuppliedHashes {
    /// The `image_id` and `phash` columns of a Parquet table (the simulator's truth).
    pub fn load(path: &std::path::Path) -> Result<Self, CurateError> {
        let frame = crate::sources::simulator::read_truth(path)?;
        let ids = frame.column("image_id")?.str()?.clone();
        let hashes = frame.column("phash")?.u64()?.clone();
        let mut map = Self::new();
        map.reserve(frame.height());
        for (id, hash) in ids.iter().zip(hashes.iter()) {
            if let (Some(id), Some(hash)) = (id, hash) {
                map.insert(id, hash);
            }
        }
        Ok(map)
    }

    pub fn new() -> Self {
        Self(fast_map())
    }

    pub fn insert(&mut self, image_id: &str, hash: u64) {
        self.0
            .insert(xxhash_rust::xxh3::xxh3_128(image_id.as_bytes()), hash);
    }

    pub fn get(&self, image_id: &str) -> Option<u64> {
        self.0
            .get(&xxhash_rust::xxh3::xxh3_128(image_id.as_bytes()))
            .copied()
    }

    pub fn reserve(&mut self, more: usize) {
        self.0.reserve(more);
    }
}

/// Images decoded at once between dedup steps; bounds memory held in fetched bytes.
const HASH_BATCH: usize = 256;

/// What curation decided about one image of a closed session, for the catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CuratedRow {
    pub image: ClosedImage,
    pub phash: Option<u64>,
    pub prompt_key: String,
    pub prompt_cluster: String,
}

/// Triplets of finished days, with the images whose sessions they came from.
#[derive(Debug, Default)]
pub struct Flushed {
    /// One partition per (split, day), rows in their stable order.
    pub parts: BTreeMap<(Split, String), Vec<Triplet>>,
    pub images: Vec<CuratedRow>,
    pub candidates: u64,
    pub capped: u64,
}

impl Flushed {
    pub fn triplets(&self) -> usize {
        self.parts.values().map(Vec::len).sum()
    }

    /// The curated images as the catalog's emitted marks take them.
    pub fn catalog_images(&self) -> Vec<CuratedImage<'_>> {
        self.images
            .iter()
            .map(|row| CuratedImage {
                image_id: &row.image.record.image_id,
                creator_id: &row.image.record.creator_id,
                generation_id: &row.image.record.generation_id,
                prompt: &row.image.record.prompt,
                image_uri: &row.image.record.image_uri,
                model: &row.image.record.model,
                creator_followers: row.image.record.creator_followers,
                published_at: row.image.record.published_at,
                publish_event_id: &row.image.record.publish_event_id,
                views: row.image.views,
                remixes: row.image.remixes,
                phash: row.phash,
                prompt_key: &row.prompt_key,
                prompt_cluster: &row.prompt_cluster,
            })
            .collect()
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct CuratorStats {
    pub skipped_sessions: u64,
    pub hashed: u64,
    pub image_errors: u64,
    pub near_duplicates: u64,
    pub fallback_pairs: u64,
}

pub struct Curator {
    config: CurateConfig,
    hasher: PerceptualHasher,
    supplied: Arc<SuppliedHashes>,
    dedup: ImageDedup,
    images_root: Option<ObjectRoot>,
    curated_before: HashSet<String>,
    keep_images: bool,
    memory: CuratorMemory,
}

/// Everything a curator learns from the sessions it saw: what a state snapshot holds.
#[derive(Serialize, Deserialize)]
pub struct CuratorMemory {
    index: NearDuplicateIndex,
    index_ids: u64,
    clusterer: PromptClusterer,
    /// Candidate triplets and curated images by publish day, until the day is flushed.
    waiting: BTreeMap<i64, Day>,
    /// Prompt clusters of flushed train triplets, as long as the clusterer remembers prompts.
    train_clusters: Recall<HashSet<String>>,
    /// Days before this one have been handed over.
    flushed_before: i64,
    fallback: Option<FallbackPool>,
    stats: CuratorStats,
}

#[derive(Default, Serialize, Deserialize)]
struct Day {
    candidates: Vec<Triplet>,
    images: Vec<CuratedRow>,
}

struct PendingSession {
    session: ClosedSession,
    hashes: Vec<Option<u64>>,
}

impl Curator {
    /// `keep_images`: also hand over every curated image (for the catalog's emitted marks).
    pub fn new(
        config: CurateConfig,
        dedup: ImageDedup,
        images_root: Option<ObjectRoot>,
        supplied: Arc<SuppliedHashes>,
        keep_images: bool,
    ) -> Self {
        let memory = CuratorMemory {
            index: NearDuplicateIndex::with_recall(config.phash.max_distance, config.recall_days),
            index_ids: 0,
            clusterer: PromptClusterer::with_recall(config.clustering, config.recall_days),
            waiting: BTreeMap::new(),
            train_clusters: Recall::new(config.recall_days),
            flushed_before: i64::MIN,
            fallback: FallbackPool::new(config.same_cluster_fallback_hours),
            stats: CuratorStats::default(),
        };
        Self::restore(config, dedup, images_root, supplied, keep_images, memory)
    }

    /// A curator that goes on from a snapshot's memory (made with the same config).
    pub fn restore(
        config: CurateConfig,
        dedup: ImageDedup,
        images_root: Option<ObjectRoot>,
        supplied: Arc<SuppliedHashes>,
        keep_images: bool,
        memory: CuratorMemory,
    ) -> Self {
        Self {
            hasher: PerceptualHasher::new(config.phash),
            supplied,
            dedup,
            images_root,
            curated_before: HashSet::new(),
            keep_images,
            memory,
            config,
        }
    }

    pub fn memory(&self) -> &CuratorMemory {
        &self.memory
    }

    /// Images curated by earlier runs: their sessions are skipped, their hashes are known.
    pub fn remember_catalog(&mut self, curated: HashSet<String>, hashes: Vec<u64>) {
        self.curated_before = curated;
        for hash in hashes {
            self.memory.index.insert(self.memory.index_ids, hash);
            self.memory.index_ids += 1;
        }
    }

    pub fn stats(&self) -> CuratorStats {
        self.memory.stats
    }

    pub fn prompt_clusters(&self) -> usize {
        self.memory.clusterer.clusters()
    }

    /// Hands over the days before `final_before` (see `Windows::final_before`) once that has
    /// moved on since the last call; `None` while nothing new is final.
    pub fn flush_final(&mut self, final_before: i64) -> Option<Flushed> {
        if final_before <= self.memory.flushed_before {
            return None;
        }
        self.memory.flushed_before = final_before;
        let later = self.memory.waiting.split_off(&final_before);
        let done = std::mem::replace(&mut self.memory.waiting, later);
        Some(self.hand_over(done))
    }

    /// The end of the input: every waiting day, final or not.
    pub fn flush_all(&mut self) -> Flushed {
        let done = std::mem::take(&mut self.memory.waiting);
        self.hand_over(done)
    }

    /// Caps, marks and partitions the given days in order. Each day is capped on its own, so no
    /// prompt cluster exceeds the share of any day's file set, nor of any union of them.
    fn hand_over(&mut self, days: BTreeMap<i64, Day>) -> Flushed {
        let mut flushed = Flushed::default();
        for (
            day,
            Day {
                mut candidates,
                images,
            },
        ) in days
        {
            flushed.candidates += candidates.len() as u64;
            flushed.capped +=
                triplets::apply_cluster_cap(&mut candidates, self.config.max_cluster_share) as u64;
            self.memory.train_clusters.advance_to(day);
            let known = &self.memory.train_clusters;
            triplets::mark_unique_prompts(&mut candidates, |cluster| {
                known.generations().any(|set| set.contains(cluster))
            });
            let train = candidates.iter().filter(|t| t.split == Split::Train);
            let train: Vec<String> = train.map(|t| t.prompt_cluster.clone()).collect();
            self.memory.train_clusters.current_mut().extend(train);
            flushed.parts.extend(triplets::partition(candidates));
            flushed.images.extend(images);
        }
        flushed
    }

    /// Hashes, de-duplicates and pairs closed sessions, in the order given.
    pub async fn process(&mut self, closed: Vec<ClosedSession>) -> Result<(), CurateError> {
        let mut pending = Vec::new();
        let mut images = 0;
        for session in closed {
            if session
                .images
                .iter()
                .any(|i| self.curated_before.contains(&i.record.image_id))
            {
                self.memory.stats.skipped_sessions += 1;
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

    async fn hash_and_pair(&mut self, sessions: Vec<ClosedSession>) -> Result<(), CurateError> {
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
                                self.memory.stats.hashed += 1;
                                Some(hash)
                            }
                            Some(Err(message)) => {
                                self.memory.stats.image_errors += 1;
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
                        .map(|i| self.supplied.get(&i.record.image_id))
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
        let day = day_of(first.record.published_at.as_micros());
        self.memory.clusterer.advance_to(day);
        self.memory.index.advance_to(day);
        let assignment = self.memory.clusterer.assign(&first.record.prompt);
        let dedup_on = !matches!(self.dedup, ImageDedup::Off);
        let mut eligible = Vec::with_capacity(session.images.len());
        for (image, hash) in session.images.iter().zip(&hashes) {
            let mut ok = image.views >= self.config.min_views;
            match hash {
                Some(hash) => {
                    let id = self.memory.index_ids;
                    self.memory.index_ids += 1;
                    if self.memory.index.insert(id, *hash).is_some() {
                        self.memory.stats.near_duplicates += 1;
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
        let waiting = self.memory.waiting.entry(day).or_default();
        for pref in session_preferences(&self.config, &session.images, &eligible) {
            let (pos, neg) = (&session.images[pref.pos], &session.images[pref.neg]);
            waiting.candidates.push(triplet(pos, neg, &pref));
        }
        if let Some(pool) = &mut self.memory.fallback {
            // Across sessions the generation_id column names the later session.
            for (earlier, index) in
                pool.match_and_remember(&assignment.cluster_id, &session, &eligible)
            {
                let pair = [earlier.image, session.images[index].clone()];
                for pref in session_preferences(&self.config, &pair, &[true, true]) {
                    waiting
                        .candidates
                        .push(triplet(&pair[pref.pos], &pair[pref.neg], &pref));
                    self.memory.stats.fallback_pairs += 1;
                }
            }
        }
        if self.keep_images {
            for (image, phash) in session.images.into_iter().zip(hashes) {
                waiting.images.push(CuratedRow {
                    image,
                    phash,
                    prompt_key: assignment.prompt_key.clone(),
                    prompt_cluster: assignment.cluster_id.clone(),
                });
            }
        }
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
