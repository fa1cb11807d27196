//! What the catalog takes and gives: rows and counts, in plain types that know nothing of the
//! stages that produce them.

use serde::Serialize;

use crate::events::Timestamp;

/// A status in the `runs` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

/// Per-image counter deltas folded from a batch of view and remix events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDelta {
    pub image_id: String,
    pub views: i64,
    pub remixes: i64,
}

/// Where a consumer stands after a batch: (partition, next offset to read) per partition.
#[derive(Debug, Clone)]
pub struct ConsumedOffsets<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    pub next_offsets: &'a [(i32, i64)],
}

/// What `apply_batch` changed.
#[derive(Debug, Clone, Default)]
pub struct AppliedBatch {
    pub images_inserted: u64,
    /// Deltas whose image the catalog does not know (reported, never dropped silently).
    pub unmatched: Vec<CounterDelta>,
    pub dead_letters_stored: u64,
}

/// One triplet file in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestEntry {
    pub uri: String,
    pub rows: i64,
    pub blake3: String,
    pub split: String,
    pub dt: String,
}

/// An image whose session curation has finished with, and what curation learnt about it: the
/// `images` row its emitted mark writes.
#[derive(Debug, Clone, Copy)]
pub struct CuratedImage<'a> {
    pub image_id: &'a str,
    pub creator_id: &'a str,
    pub generation_id: &'a str,
    pub prompt: &'a str,
    pub image_uri: &'a str,
    pub model: &'a str,
    pub creator_followers: u64,
    pub published_at: Timestamp,
    pub publish_event_id: &'a str,
    /// In-window counts when the session closed.
    pub views: u32,
    pub remixes: u32,
    pub phash: Option<u64>,
    pub prompt_key: &'a str,
    pub prompt_cluster: &'a str,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TableCounts {
    pub images: i64,
    pub dead_letters: i64,
    pub triplet_files: i64,
    pub runs: i64,
    pub models: i64,
}
