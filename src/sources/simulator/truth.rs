//! The simulator's hidden ground truth, one row per published image, written as Parquet.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::events::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub struct TruthRow {
    pub image_id: String,
    pub creator_id: String,
    pub generation_id: String,
    pub quality: f64,
    pub prompt_cluster: String,
    pub repost_of: Option<String>,
    pub published_at: Timestamp,
    pub creator_followers: u64,
    pub exposure: f64,
    /// A synthetic 64-bit perceptual hash (reposts are their source's hash with a few bits
    /// flipped), so image-free runs can still exercise duplicate detection.
    pub phash: u64,
}

#[derive(Default)]
pub struct TruthTable {
    image_id: Vec<String>,
    creator_id: Vec<String>,
    generation_id: Vec<String>,
    quality: Vec<f64>,
    prompt_cluster: Vec<String>,
    repost_of: Vec<Option<String>>,
    published_at: Vec<i64>,
    creator_followers: Vec<u64>,
    exposure: Vec<f64>,
    phash: Vec<u64>,
}

impl TruthTable {
    pub fn push(&mut self, row: TruthRow) {
        self.image_id.push(row.image_id);
        self.creator_id.push(row.creator_id);
        self.generation_id.push(row.generation_id);
        self.quality.push(row.quality);
        self.prompt_cluster.push(row.prompt_cluster);
        self.repost_of.push(row.repost_of);
        self.published_at.push(row.published_at.as_micros());
        self.creator_followers.push(row.creator_followers);
        self.exposure.push(row.exposure);
        self.phash.push(row.phash);
    }

    pub fn len(&self) -> usize {
        self.image_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.image_id.is_empty()
    }

    pub fn into_frame(self) -> PolarsResult<DataFrame> {
        let published_at = Column::new("published_at".into(), self.published_at).cast(
            &DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        )?;
        DataFrame::new_infer_height(vec![
            Column::new("image_id".into(), self.image_id),
            Column::new("creator_id".into(), self.creator_id),
            Column::new("generation_id".into(), self.generation_id),
            Column::new("quality".into(), self.quality),
            Column::new("prompt_cluster".into(), self.prompt_cluster),
            Column::new("repost_of".into(), self.repost_of),
            published_at,
            Column::new("creator_followers".into(), self.creator_followers),
            Column::new("exposure".into(), self.exposure),
            Column::new("phash".into(), self.phash),
        ])
    }

    pub fn write_parquet(self, path: &Path) -> PolarsResult<()> {
        let mut frame = self.into_frame()?;
        let file = File::create(path)?;
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .finish(&mut frame)?;
        Ok(())
    }
}

/// Reads a truth table back (curation's evaluation and the tests use it).
pub fn read_truth(path: &Path) -> PolarsResult<DataFrame> {
    let file = File::open(path)?;
    ParquetReader::new(file).finish()
}
