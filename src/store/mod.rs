//! Where state and results live: the catalog (PostgreSQL or SQLite), Parquet files on object
//! storage, and dead letters.

#[macro_use]
mod catalog_rows;
pub mod catalog;
pub mod objects;
pub mod parquet;
pub mod redact;

pub use catalog::{
    AppliedBatch, Catalog, CatalogError, CatalogTable, CommitOutcome, ConsumedOffsets,
    CounterDelta, CuratedImage, DEFAULT_CATALOG_URL, ManifestEntry, PartitionCommit,
    PartitionState, RunStatus, TableCounts, new_run_id,
};
pub use objects::{ObjectError, ObjectRoot};
pub use redact::redact_url;
