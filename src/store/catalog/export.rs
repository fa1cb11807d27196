//! The catalog's tables as data frames, for analysts' SQL: every column with one type whichever
//! backend holds it (integers as i64, times as UTC datetimes, JSON as its text).

use chrono::{DateTime, Utc};
use polars::prelude::*;
use sqlx::Row;

use super::{Catalog, CatalogError, Pool};

/// A table analysts can query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogTable {
    Images,
    DeadLetters,
    TripletFiles,
    Runs,
    Models,
    ConsumerOffsets,
    Emissions,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Int,
    Time,
    /// JSON documents (JSONB on PostgreSQL), as their text.
    Json,
    /// Bytes as text, invalid UTF-8 replaced: a dead letter's raw record.
    Bytes,
}

impl CatalogTable {
    pub const ALL: [CatalogTable; 7] = [
        Self::Images,
        Self::DeadLetters,
        Self::TripletFiles,
        Self::Runs,
        Self::Models,
        Self::ConsumerOffsets,
        Self::Emissions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Images => "images",
            Self::DeadLetters => "dead_letters",
            Self::TripletFiles => "triplet_files",
            Self::Runs => "runs",
            Self::Models => "models",
            Self::ConsumerOffsets => "consumer_offsets",
            Self::Emissions => "emissions",
        }
    }

    fn columns(self) -> &'static [(&'static str, Kind)] {
        use Kind::*;
        match self {
            Self::Images => &[
                ("image_id", Text),
                ("creator_id", Text),
                ("generation_id", Text),
                ("prompt", Text),
                ("image_uri", Text),
                ("model", Text),
                ("creator_followers", Int),
                ("published_at", Time),
                ("publish_event_id", Text),
                ("views", Int),
                ("remixes", Int),
                ("prompt_key", Text),
                ("prompt_cluster", Text),
                ("phash", Int),
                ("emitted_run_id", Text),
                ("emitted_at", Time),
            ],
            Self::DeadLetters => &[
                ("id", Int),
                ("run_id", Text),
                ("reason", Text),
                ("detail", Text),
                ("position", Text),
                ("source", Text),
                ("file_path", Text),
                ("line", Int),
                ("topic", Text),
                ("partition_id", Int),
                ("kafka_offset", Int),
                ("raw", Bytes),
                ("raw_len", Int),
                ("created_at", Time),
            ],
            Self::TripletFiles => &[
                ("uri", Text),
                ("rows", Int),
                ("blake3", Text),
                ("split", Text),
                ("dt", Text),
                ("run_id", Text),
                ("created_at", Time),
            ],
            Self::Runs => &[
                ("run_id", Text),
                ("stage", Text),
                ("pipeline", Text),
                ("status", Text),
                ("params", Json),
                ("metrics", Json),
                ("error", Text),
                ("started_at", Time),
                ("finished_at", Time),
            ],
            Self::Models => &[
                ("model_id", Text),
                ("uri", Text),
                ("run_id", Text),
                ("config", Json),
                ("metrics", Json),
                ("created_at", Time),
            ],
            Self::ConsumerOffsets => &[
                ("consumer_group", Text),
                ("topic", Text),
                ("partition_id", Int),
                ("next_offset", Int),
                ("updated_at", Time),
            ],
            Self::Emissions => &[
                ("location", Text),
                ("image_id", Text),
                ("run_id", Text),
                ("emitted_at", Time),
            ],
        }
    }

    /// One statement for both backends: PostgreSQL's INTEGER and JSONB are cast to the types
    /// SQLite gives, so that each column decodes one way.
    fn select(self) -> String {
        let list: Vec<String> = self
            .columns()
            .iter()
            .map(|(name, kind)| match kind {
                Kind::Int => format!("CAST({name} AS BIGINT)"),
                Kind::Json => format!("CAST({name} AS TEXT)"),
                _ => (*name).to_owned(),
            })
            .collect();
        format!("SELECT {} FROM {}", list.join(", "), self.name())
    }
}

impl Catalog {
    /// The whole of `table`, in the database's order of its key columns.
    pub async fn table_frame(&self, table: CatalogTable) -> Result<DataFrame, CatalogError> {
        let sql = table.select();
        let spec = table.columns();
        let columns = on_pool!(self, pool => {
            // Built from the fixed table and column names above: no data reaches the SQL.
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .fetch_all(pool)
                .await?;
            let mut columns = Vec::with_capacity(spec.len());
            for (i, (name, kind)) in spec.iter().enumerate() {
                let name = PlSmallStr::from_static(name);
                let column = match kind {
                    Kind::Text | Kind::Json => {
                        let values = rows
                            .iter()
                            .map(|row| row.try_get::<Option<String>, _>(i))
                            .collect::<Result<Vec<_>, _>>()?;
                        Column::new(name, values)
                    }
                    Kind::Int => {
                        let values = rows
                            .iter()
                            .map(|row| row.try_get::<Option<i64>, _>(i))
                            .collect::<Result<Vec<_>, _>>()?;
                        Column::new(name, values)
                    }
                    Kind::Bytes => {
                        let values = rows
                            .iter()
                            .map(|row| {
                                row.try_get::<Option<Vec<u8>>, _>(i).map(|bytes| {
                                    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        Column::new(name, values)
                    }
                    Kind::Time => {
                        let values = rows
                            .iter()
                            .map(|row| {
                                row.try_get::<Option<DateTime<Utc>>, _>(i)
                                    .map(|time| time.map(|t| t.timestamp_micros()))
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        Column::new(name, values).cast(&DataType::Datetime(
                            TimeUnit::Microseconds,
                            None,
                        ))?
                    }
                };
                columns.push(column);
            }
            columns
        });
        Ok(DataFrame::new_infer_height(columns)?)
    }
}
