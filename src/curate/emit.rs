//! Writing flushed triplets: one Parquet file per (split, day) partition, named by the blake3 of
//! its bytes, then the manifest rows and the images' emitted marks in one catalog transaction.
//!
//! Files go first: a crash between the write and the commit leaves an orphan file that the next
//! run writes again under the same name (same rows, same bytes) and then records.

use crate::store::{Catalog, ManifestEntry, ObjectRoot};

use super::curator::Flushed;
use super::error::CurateError;
use super::paths::PicturePaths;
use super::triplets::{self, Triplet};

/// Encodes and stores every partition of `flushed`; returns their manifest entries.
pub async fn write_parts(
    out: &ObjectRoot,
    pictures: &PicturePaths,
    flushed: &Flushed,
) -> Result<Vec<ManifestEntry>, CurateError> {
    let mut files = Vec::with_capacity(flushed.parts.len());
    for ((split, dt), rows) in &flushed.parts {
        let bytes = triplets::encode_parquet(rows, pictures)?;
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
            dt: dt.clone(),
        });
    }
    Ok(files)
}

/// The batch command's sink: writes each flush and records it when there is a catalog.
pub struct Emitter {
    out: ObjectRoot,
    pictures: PicturePaths,
    catalog: Option<Catalog>,
    run_id: String,
    /// Kept only when asked (the truth evaluation needs every row).
    kept: Option<Vec<Triplet>>,
    pub files: Vec<ManifestEntry>,
    pub new_manifest_rows: u64,
    pub candidates: u64,
    pub capped: u64,
    pub triplets: u64,
}

impl Emitter {
    pub fn new(
        out: ObjectRoot,
        pictures: PicturePaths,
        catalog: Option<Catalog>,
        run_id: &str,
        keep_rows: bool,
    ) -> Self {
        Self {
            out,
            pictures,
            catalog,
            run_id: run_id.to_owned(),
            kept: keep_rows.then(Vec::new),
            files: Vec::new(),
            new_manifest_rows: 0,
            candidates: 0,
            capped: 0,
            triplets: 0,
        }
    }

    pub async fn emit(&mut self, flushed: Flushed) -> Result<(), CurateError> {
        let files = write_parts(&self.out, &self.pictures, &flushed).await?;
        if let Some(catalog) = &self.catalog {
            let images = flushed.catalog_images();
            self.new_manifest_rows += catalog
                .record_emission(&self.run_id, self.out.location(), &files, &images)
                .await?;
        }
        self.candidates += flushed.candidates;
        self.capped += flushed.capped;
        self.triplets += flushed.triplets() as u64;
        if let Some(kept) = &mut self.kept {
            kept.extend(flushed.parts.into_values().flatten());
        }
        self.files.extend(files);
        Ok(())
    }

    /// Every row emitted, when kept.
    pub fn kept(&self) -> Option<&[Triplet]> {
        self.kept.as_deref()
    }
}
