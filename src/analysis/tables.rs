//! The tables of `query`: `triplets`, every Parquet file under the dataset's `triplets/` with
//! its hive keys `split` and `dt` as columns, and the catalog's tables as they are.

use std::io::Cursor;

use polars::prelude::*;
use polars::sql::SQLContext;
use tracing::info;

use super::AnalysisError;
use crate::curate::PicturePaths;
use crate::curate::triplets::to_frame;
use crate::store::{Catalog, CatalogTable, ObjectRoot};

/// The table of curated triplets.
pub const TRIPLETS: &str = "triplets";

/// A triplet file larger than this is refused (curation writes files of a day's partition).
const MAX_PARQUET_BYTES: u64 = 2 << 30;

/// The tables registered for SQL, and what each holds.
pub struct QueryTables {
    context: SQLContext,
    /// In registration order.
    frames: Vec<(&'static str, DataFrame)>,
}

impl QueryTables {
    /// Reads the triplets under `data` (when given) and the catalog's tables (when given).
    pub async fn load(
        data: Option<&ObjectRoot>,
        catalog: Option<&Catalog>,
    ) -> Result<Self, AnalysisError> {
        let mut tables = Self {
            context: SQLContext::new(),
            frames: Vec::new(),
        };
        if let Some(root) = data {
            tables.register(TRIPLETS, read_triplets(root).await?);
        }
        if let Some(catalog) = catalog {
            for table in CatalogTable::ALL {
                tables.register(table.name(), catalog.table_frame(table).await?);
            }
        }
        Ok(tables)
    }

    fn register(&mut self, name: &'static str, frame: DataFrame) {
        self.context.register(name, frame.clone().lazy());
        self.frames.push((name, frame));
    }

    /// A table as registered (`None`: not loaded).
    pub fn frame(&self, name: &str) -> Option<&DataFrame> {
        self.frames
            .iter()
            .find_map(|(table, frame)| (*table == name).then_some(frame))
    }

    /// Runs one SQL statement.
    pub fn query(&mut self, sql: &str) -> Result<DataFrame, AnalysisError> {
        self.context
            .execute(sql)
            .and_then(|plan| plan.collect())
            .map_err(AnalysisError::Query)
    }
}

/// The hive key `name=value` among a key's folders.
fn hive_key<'k>(key: &'k str, name: &str) -> Option<&'k str> {
    key.split('/')
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
}

/// Every triplet file, `split` and `dt` taken from its folders. Files of the layout before
/// `split` left the columns have the column dropped for the key's.
pub async fn read_triplets(root: &ObjectRoot) -> Result<DataFrame, AnalysisError> {
    let mut frames = Vec::new();
    for key in root.list(TRIPLETS).await? {
        let (Some(split), Some(dt)) = (hive_key(&key, "split"), hive_key(&key, "dt")) else {
            continue;
        };
        if !key.ends_with(".parquet") {
            continue;
        }
        let bytes = root.get(&key, MAX_PARQUET_BYTES).await?;
        let with_keys = |bytes: Vec<u8>| -> PolarsResult<DataFrame> {
            let mut frame = ParquetReader::new(Cursor::new(bytes)).finish()?;
            if frame.column("split").is_ok() {
                frame = frame.drop("split")?;
            }
            let height = frame.height();
            frame.with_column(Column::new("split".into(), vec![split; height]))?;
            frame.with_column(Column::new("dt".into(), vec![dt; height]))?;
            Ok(frame)
        };
        let frame = with_keys(bytes).map_err(|source| AnalysisError::BadTriplets {
            url: root.url_of(&key),
            source,
        })?;
        frames.push(frame);
    }
    info!(files = frames.len(), "triplet files read");
    let bad = |source| AnalysisError::BadTriplets {
        url: root.url_of(TRIPLETS),
        source,
    };
    if frames.is_empty() {
        // No files yet: the columns still exist, so that a query says "0 rows", not "no such
        // column".
        let mut empty = to_frame(&[], &PicturePaths::default()).map_err(bad)?;
        empty
            .with_column(Column::new("split".into(), Vec::<String>::new()))
            .and_then(|f| f.with_column(Column::new("dt".into(), Vec::<String>::new())))
            .map_err(bad)?;
        return Ok(empty);
    }
    // Stacked eagerly: a lazy concat collects through polars' async executor, which cannot
    // block on a single-threaded runtime.
    let mut frames = frames.into_iter();
    let mut all = frames.next().unwrap_or_default();
    for frame in frames {
        all.vstack_mut_owned(frame).map_err(bad)?;
    }
    all.rechunk_mut();
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::hive_key;

    #[test]
    fn hive_keys_are_read_from_the_folders() {
        let key = "triplets/split=train/dt=2026-11-30/part-ab.parquet";
        assert_eq!(hive_key(key, "split"), Some("train"));
        assert_eq!(hive_key(key, "dt"), Some("2026-11-30"));
        assert_eq!(hive_key("triplets/splits=x/a.parquet", "split"), None);
    }
}
