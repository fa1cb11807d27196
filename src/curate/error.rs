//! What can stop curation, batch or per partition: the caller (a stage, the stream) decides
//! what to do with each.

use crate::events::validate::LimitsError;
use crate::sources::SourceError;
use crate::store::{CatalogError, ObjectError};

#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// Reading the event files.
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Reading images or writing triplet files.
    #[error(transparent)]
    Objects(#[from] ObjectError),
    /// Encoding triplets, or reading the simulator's truth.
    #[error("parquet: {0}")]
    Parquet(#[from] polars::error::PolarsError),
    #[error("image de-duplication needs --images (or pass --no-image-dedup)")]
    ImagesNeeded,
    #[error("path_style = \"{style}\": {why}")]
    PathStyle { style: &'static str, why: String },
    /// A task of the batch run (the event parser, the session processor) panicked or was
    /// cancelled.
    #[error("{task}: {source}")]
    Task {
        task: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("the session processor stopped early")]
    ProcessorStopped,
    #[error("state snapshot: {0}")]
    SnapshotEncode(#[from] rmp_serde::encode::Error),
    #[error("state snapshot: {0}")]
    SnapshotDecode(#[from] rmp_serde::decode::Error),
    /// A snapshot written by another version of the curation state: replay from the start of
    /// the partition instead.
    #[error("state snapshot: version {found} where {expected} was expected")]
    SnapshotVersion { found: u32, expected: u32 },
}
