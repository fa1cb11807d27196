//! Where state and results live: the catalog (PostgreSQL or SQLite), Parquet files on object
//! storage, and dead letters.

pub mod catalog;
pub mod objects;

pub use catalog::{
    Catalog, CatalogError, CounterDelta, CuratedImage, ManifestEntry, RunStatus, TableCounts,
};
pub use objects::{ObjectError, ObjectRoot};
