//! Training data: triplet rows read from curation's Parquet on object storage, and their images
//! fetched, decoded and preprocessed in parallel. A missing or broken image drops its triplet
//! and is counted; it never stops a run.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;
use tracing::warn;

use super::TrainError;
use super::preprocess::preprocess;
use crate::store::ObjectRoot;

/// Largest Parquet file and image read.
const MAX_PARQUET_BYTES: u64 = 2 << 30;
pub const MAX_IMAGE_BYTES: u64 = 32 << 20;
/// Images fetched concurrently from the store.
const FETCH_CONCURRENCY: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub struct TripletRow {
    pub prompt: String,
    pub pos_path: String,
    pub neg_path: String,
    pub split: String,
    pub unique_prompt: bool,
}

/// One Parquet file read, for the model card's data manifest.
#[derive(Debug, Clone, Serialize)]
pub struct SourceFile {
    pub uri: String,
    pub rows: usize,
    pub blake3: String,
}

#[derive(Debug, Default)]
pub struct TripletSet {
    pub rows: Vec<TripletRow>,
    pub files: Vec<SourceFile>,
}

/// The split a key belongs to, from its `split=<name>/` partition.
fn split_of_key(key: &str) -> Option<&str> {
    key.split('/').find_map(|part| part.strip_prefix("split="))
}

/// Reads every `*.parquet` under `url` whose `split=` partition is `split` (all of them when
/// `split` is None). Only `prompt`, `pos_path` and `neg_path` are required, so files in the
/// official Social Reward layout train too.
pub async fn read_triplets(url: &str, split: Option<&str>) -> Result<TripletSet, TrainError> {
    let root = ObjectRoot::open(url)?;
    let mut set = TripletSet::default();
    for key in root.list("").await? {
        if !key.ends_with(".parquet") {
            continue;
        }
        let key_split = split_of_key(&key);
        if let (Some(wanted), Some(found)) = (split, key_split)
            && wanted != found
        {
            continue;
        }
        let bytes = root.get(&key, MAX_PARQUET_BYTES).await?;
        let blake3 = blake3::hash(&bytes).to_hex().to_string();
        let rows = parse_triplets(&bytes, key_split).map_err(|source| TrainError::BadTriplets {
            url: root.url_of(&key),
            source,
        })?;
        let before = set.rows.len();
        set.rows.extend(
            rows.into_iter()
                .filter(|row| split.is_none_or(|wanted| row.split == wanted)),
        );
        set.files.push(SourceFile {
            uri: root.url_of(&key),
            rows: set.rows.len() - before,
            blake3,
        });
    }
    Ok(set)
}

fn parse_triplets(bytes: &[u8], key_split: Option<&str>) -> PolarsResult<Vec<TripletRow>> {
    let frame = ParquetReader::new(Cursor::new(bytes)).finish()?;
    let text = |name: &str| -> PolarsResult<Vec<String>> {
        let column = frame.column(name)?.str()?.clone();
        Ok((0..column.len())
            .map(|i| column.get(i).unwrap_or_default().to_owned())
            .collect())
    };
    let prompts = text("prompt")?;
    let pos = text("pos_path")?;
    let neg = text("neg_path")?;
    let rows = prompts.len();
    let splits = match frame.column("split") {
        Ok(_) => text("split")?,
        Err(_) => vec![key_split.unwrap_or("").to_owned(); rows],
    };
    let unique: Vec<bool> = match frame.column("unique_prompt") {
        Ok(column) => {
            let flags = column.bool()?.clone();
            (0..flags.len())
                .map(|i| flags.get(i).unwrap_or(false))
                .collect()
        }
        Err(_) => vec![false; rows],
    };
    Ok((0..rows)
        .map(|i| TripletRow {
            prompt: prompts[i].clone(),
            pos_path: pos[i].clone(),
            neg_path: neg[i].clone(),
            split: splits[i].clone(),
            unique_prompt: unique[i],
        })
        .collect())
}

/// Preprocessed pixels, shared between the batches that reuse an image.
pub type Pixels = Arc<Vec<f32>>;

/// The rows of a batch whose two images could both be used, with their pixels in row order.
pub struct PairBatch<'r> {
    pub rows: Vec<&'r TripletRow>,
    pub positives: Vec<Pixels>,
    pub negatives: Vec<Pixels>,
    /// Rows dropped because an image was missing, too large or undecodable.
    pub skipped: usize,
}

/// Fetches images relative to the images root (or by absolute URL/path), preprocesses them on
/// all cores and keeps up to `cache_limit` of them in memory.
pub struct ImageLoader {
    root: ObjectRoot,
    size: u32,
    cache: HashMap<String, Pixels>,
    cache_limit: usize,
    failed: HashMap<String, String>,
    failures: AtomicU64,
}

impl ImageLoader {
    pub fn new(images_url: &str, size: u32, cache_limit: usize) -> Result<Self, TrainError> {
        Ok(Self {
            root: ObjectRoot::open(images_url)?,
            size,
            cache: HashMap::new(),
            cache_limit,
            failed: HashMap::new(),
            failures: AtomicU64::new(0),
        })
    }

    /// Distinct images that could not be used, so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    async fn fetch(&self, path: &str) -> Result<Vec<u8>, String> {
        let absolute = path.contains("://") || path.starts_with('/');
        if !absolute {
            return self
                .root
                .get(path, MAX_IMAGE_BYTES)
                .await
                .map_err(|e| e.to_string());
        }
        let (parent, name) = path
            .rsplit_once('/')
            .ok_or_else(|| format!("{path:?} has no file name"))?;
        let parent = if parent.is_empty() { "/" } else { parent };
        let root = ObjectRoot::open(parent).map_err(|e| e.to_string())?;
        root.get(name, MAX_IMAGE_BYTES)
            .await
            .map_err(|e| e.to_string())
    }

    /// Both images of each row; a row with an unusable image is left out and counted.
    pub async fn load_pairs<'r>(&mut self, rows: &[&'r TripletRow]) -> PairBatch<'r> {
        let paths: Vec<&str> = rows
            .iter()
            .flat_map(|r| [r.pos_path.as_str(), r.neg_path.as_str()])
            .collect();
        let pixels = self.load(&paths).await;
        let mut batch = PairBatch {
            rows: Vec::with_capacity(rows.len()),
            positives: Vec::with_capacity(rows.len()),
            negatives: Vec::with_capacity(rows.len()),
            skipped: 0,
        };
        for (row, pair) in rows.iter().zip(pixels.chunks(2)) {
            match (&pair[0], &pair[1]) {
                (Some(pos), Some(neg)) => {
                    batch.rows.push(row);
                    batch.positives.push(pos.clone());
                    batch.negatives.push(neg.clone());
                }
                _ => batch.skipped += 1,
            }
        }
        batch
    }

    /// The pixels of each path, `None` where the image is missing, too large or undecodable.
    pub async fn load(&mut self, paths: &[&str]) -> Vec<Option<Pixels>> {
        let mut wanted: Vec<&str> = paths
            .iter()
            .copied()
            .filter(|p| !self.cache.contains_key(*p) && !self.failed.contains_key(*p))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let this = &*self;
        let fetched: Vec<(String, Result<Vec<u8>, String>)> = futures::stream::iter(wanted)
            .map(|path| async move { (path.to_owned(), this.fetch(path).await) })
            .buffered(FETCH_CONCURRENCY)
            .collect()
            .await;
        let size = self.size;
        let decoded = tokio::task::spawn_blocking(move || {
            fetched
                .into_par_iter()
                .map(|(path, bytes)| {
                    let pixels =
                        bytes.and_then(|b| preprocess(&b, size).map_err(|e| e.to_string()));
                    (path, pixels)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut fresh: HashMap<String, Pixels> = HashMap::new();
        for (path, pixels) in decoded {
            match pixels {
                Ok(pixels) => {
                    fresh.insert(path, Arc::new(pixels));
                }
                Err(reason) => {
                    warn!(image = %path, %reason, "image skipped");
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    self.failed.insert(path, reason);
                }
            }
        }
        let out = paths
            .iter()
            .map(|p| self.cache.get(*p).or_else(|| fresh.get(*p)).cloned())
            .collect();
        for (path, pixels) in fresh {
            if self.cache.len() >= self.cache_limit {
                break;
            }
            self.cache.insert(path, pixels);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_split_from_the_partition_key() {
        assert_eq!(
            split_of_key("triplets/split=val/dt=2026-01-01/part-x.parquet"),
            Some("val")
        );
        assert_eq!(split_of_key("part-x.parquet"), None);
    }

    #[tokio::test]
    async fn broken_missing_and_hostile_images_are_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let good = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 10, 10]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(good)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        std::fs::write(dir.path().join("good.png"), &png).unwrap();
        std::fs::write(dir.path().join("bad.png"), b"garbage").unwrap();
        let mut loader = ImageLoader::new(dir.path().to_str().unwrap(), 4, 10).unwrap();
        let absolute = dir.path().join("good.png").display().to_string();
        let got = loader
            .load(&[
                "good.png",
                "bad.png",
                "missing.png",
                "../etc/passwd",
                &absolute,
            ])
            .await;
        assert!(got[0].is_some());
        assert_eq!(got[0].as_ref().unwrap().len(), 3 * 16);
        assert!(got[1].is_none() && got[2].is_none() && got[3].is_none());
        assert!(got[4].is_some());
        assert_eq!(loader.failures(), 3);
        // Cached and remembered: no second fetch, no second count.
        let again = loader.load(&["good.png", "bad.png"]).await;
        assert!(again[0].is_some() && again[1].is_none());
        assert_eq!(loader.failures(), 3);
    }
}
