//! Where state and results live: the catalog (PostgreSQL or SQLite), Parquet files on object
//! storage, and dead letters.

pub mod catalog;

pub use catalog::{Catalog, CatalogError, CounterDelta, RunStatus, TableCounts};
