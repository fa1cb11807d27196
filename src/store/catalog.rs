//! The catalog: one schema on PostgreSQL (production) or SQLite (embedded default), chosen by
//! URL. Queries are written once with `$n` placeholders, which both backends accept, and run on
//! whichever pool the URL opened. Values are always bound, never spliced into SQL.

use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::types::Json;

use crate::events::{DeadLetter, Publish, SourcePosition};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog URL {0:?} is neither postgres:// nor sqlite:")]
    UnsupportedUrl(String),
    #[error("creating the catalog folder {path}: {source}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("catalog migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("catalog table as a frame: {0}")]
    Frame(#[from] polars::error::PolarsError),
}

/// The embedded default: a SQLite file in the working directory's `data/`.
pub const DEFAULT_CATALOG_URL: &str = "sqlite:data/catalog.db";

/// A run's id in the `runs` table and in file names: what ran, and when (UTC, to the
/// millisecond).
pub fn new_run_id(what: &str) -> String {
    format!("{what}-{}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"))
}

#[derive(Debug, Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pool: Pool,
}

/// Runs `$body` with `$pool` bound to whichever concrete pool the catalog holds; the body is
/// compiled once per backend, so a query that one backend cannot type-check fails the build.
macro_rules! on_pool {
    ($catalog:expr, $pool:ident => $body:expr) => {
        match &$catalog.pool {
            Pool::Postgres($pool) => $body,
            Pool::Sqlite($pool) => $body,
        }
    };
}

impl Catalog {
    /// Opens `postgres://…` or `sqlite:PATH` (`sqlite::memory:` for tests) and applies pending
    /// migrations.
    pub async fn open(url: &str) -> Result<Self, CatalogError> {
        let catalog = Self::connect(url).await?;
        catalog.migrate().await?;
        Ok(catalog)
    }

    /// Connects without migrating.
    pub async fn connect(url: &str) -> Result<Self, CatalogError> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut options = PgConnectOptions::from_str(url)?;
            // TLS when the URL asks for it (`sslmode=require`, `verify-full`); a URL that says
            // nothing connects in the clear, as before TLS was built in, rather than sqlx's
            // opportunistic, unverified `prefer`.
            if !url.contains("sslmode=") {
                options = options.ssl_mode(PgSslMode::Disable);
            }
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .connect_with(options)
                    .await?,
            )
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true);
            let file = options.get_filename();
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty())
                && file != Path::new(":memory:")
            {
                std::fs::create_dir_all(parent).map_err(|source| CatalogError::Folder {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
            // One writer at a time is all SQLite allows; a single connection also keeps an
            // in-memory database alive and shared.
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await?,
            )
        } else {
            return Err(CatalogError::UnsupportedUrl(super::redact_url(url)));
        };
        Ok(Self { pool })
    }

    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    /// Applies the backend's pending migrations and returns how many this call applied: every
    /// migration on a new database, 0 on one already up to date. The count is exact when
    /// several processes migrate at once: the migrator's lock (on PostgreSQL an advisory lock,
    /// which a session may take again) is held from the count before to the count after.
    pub async fn migrate(&self) -> Result<usize, CatalogError> {
        use sqlx::migrate::Migrate;
        macro_rules! run_counting {
            ($pool:expr, $migrator:expr) => {{
                let migrator = $migrator;
                let table = &*migrator.table_name;
                let mut conn = $pool.acquire().await?;
                conn.lock().await?;
                let counted = async {
                    conn.ensure_migrations_table(table).await?;
                    let before = conn.list_applied_migrations(table).await?.len();
                    migrator.run(&mut *conn).await?;
                    let after = conn.list_applied_migrations(table).await?.len();
                    Ok::<_, sqlx::migrate::MigrateError>(after.saturating_sub(before))
                }
                .await;
                // Released whatever happened: the connection goes back to the pool.
                let unlocked = conn.unlock().await;
                let applied = counted?;
                unlocked?;
                applied
            }};
        }
        let applied = match &self.pool {
            Pool::Postgres(pool) => run_counting!(pool, sqlx::migrate!("migrations/postgres")),
            Pool::Sqlite(pool) => run_counting!(pool, sqlx::migrate!("migrations/sqlite")),
        };
        Ok(applied)
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    /// Inserts images from publish events; a publish seen before (same image_id) is left as is,
    /// so replaying a stream never resets counters.
    pub async fn insert_images(&self, images: &[Publish<'_>]) -> Result<u64, CatalogError> {
        let inserted;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            inserted = tx.insert_images(images).await?;
            tx.commit().await?;
        });
        Ok(inserted)
    }

    /// Adds counter deltas in one transaction and returns the deltas whose image is unknown, so
    /// the caller can account for them instead of losing them silently.
    pub async fn add_counters(
        &self,
        deltas: &[CounterDelta],
    ) -> Result<Vec<CounterDelta>, CatalogError> {
        let unmatched;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            unmatched = tx.add_counters(deltas).await?;
            tx.commit().await?;
        });
        Ok(unmatched)
    }

    /// Stores dead letters; one already stored for the same source position is not stored twice.
    pub async fn insert_dead_letters(
        &self,
        run_id: &str,
        letters: &[DeadLetter],
    ) -> Result<u64, CatalogError> {
        let inserted;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            inserted = insert_dead_letter_rows!(tx, run_id, letters);
            tx.commit().await?;
        });
        Ok(inserted)
    }

    /// One batch of consumed events in ONE transaction: new images, counter deltas, dead
    /// letters and, for a Kafka consumer, the next offset of each partition the batch came
    /// from. A crash leaves either all of it or none, so a consumer that restarts from the
    /// stored offsets counts every event exactly once.
    pub async fn apply_batch(
        &self,
        run_id: &str,
        publishes: &[Publish<'_>],
        deltas: &[CounterDelta],
        letters: &[DeadLetter],
        offsets: Option<&ConsumedOffsets<'_>>,
    ) -> Result<AppliedBatch, CatalogError> {
        const OFFSET_SQL: &str = "INSERT INTO consumer_offsets (consumer_group, topic, \
            partition_id, next_offset, updated_at) VALUES ($1, $2, $3, $4, $5) \
            ON CONFLICT (consumer_group, topic, partition_id) DO UPDATE \
            SET next_offset = excluded.next_offset, updated_at = excluded.updated_at";
        let applied;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let images_inserted = tx.insert_images(publishes).await?;
            let unmatched = tx.add_counters(deltas).await?;
            let dead_letters_stored = insert_dead_letter_rows!(tx, run_id, letters);
            if let Some(consumed) = offsets {
                for &(partition, next_offset) in consumed.next_offsets {
                    sqlx::query(OFFSET_SQL)
                        .bind(consumed.group)
                        .bind(consumed.topic)
                        .bind(partition)
                        .bind(next_offset)
                        .bind(Utc::now())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            applied = AppliedBatch {
                images_inserted,
                unmatched,
                dead_letters_stored,
            };
        });
        Ok(applied)
    }

    /// The next offset to read of each partition of `topic` for `group`, as last committed.
    pub async fn stored_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<(i32, i64)>, CatalogError> {
        const SQL: &str = "SELECT partition_id, next_offset FROM consumer_offsets \
            WHERE consumer_group = $1 AND topic = $2 ORDER BY partition_id";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, (i32, i64)>(SQL)
            .bind(group)
            .bind(topic)
            .fetch_all(pool)
            .await?))
    }

    pub async fn dead_letters_by_reason(&self) -> Result<Vec<(String, i64)>, CatalogError> {
        const SQL: &str =
            "SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason ORDER BY reason";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, (String, i64)>(SQL).fetch_all(pool).await?))
    }

    pub async fn start_run(
        &self,
        run_id: &str,
        stage: &str,
        pipeline: &str,
        params: &serde_json::Value,
    ) -> Result<(), CatalogError> {
        const SQL: &str = "INSERT INTO runs (run_id, stage, pipeline, status, params, started_at) \
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, stage) DO UPDATE \
            SET status = excluded.status, params = excluded.params, \
            started_at = excluded.started_at, finished_at = NULL, error = NULL";
        on_pool!(self, pool => {
            sqlx::query(SQL)
                .bind(run_id)
                .bind(stage)
                .bind(pipeline)
                .bind(RunStatus::Running.as_str())
                .bind(Json(params))
                .bind(Utc::now())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records a trained model (its directory URI, training config and metrics); a retrain that
    /// produces the same weights (same id) updates the row.
    pub async fn record_model(
        &self,
        model_id: &str,
        uri: &str,
        run_id: Option<&str>,
        config: &serde_json::Value,
        metrics: &serde_json::Value,
    ) -> Result<(), CatalogError> {
        const SQL: &str = "INSERT INTO models (model_id, uri, run_id, config, metrics, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (model_id) DO UPDATE \
            SET uri = excluded.uri, run_id = excluded.run_id, config = excluded.config, \
            metrics = excluded.metrics";
        on_pool!(self, pool => {
            sqlx::query(SQL)
                .bind(model_id)
                .bind(uri)
                .bind(run_id)
                .bind(Json(config))
                .bind(Json(metrics))
                .bind(Utc::now())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// (model_id, uri) of every recorded model, oldest first.
    pub async fn models(&self) -> Result<Vec<(String, String)>, CatalogError> {
        const SQL: &str = "SELECT model_id, uri FROM models ORDER BY created_at, model_id";
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, (String, String)>(SQL).fetch_all(pool).await?),
        )
    }

    pub async fn finish_run(
        &self,
        run_id: &str,
        stage: &str,
        status: RunStatus,
        metrics: &serde_json::Value,
        error: Option<&str>,
    ) -> Result<(), CatalogError> {
        const SQL: &str = "UPDATE runs SET status = $1, metrics = $2, error = $3, \
            finished_at = $4 WHERE run_id = $5 AND stage = $6";
        on_pool!(self, pool => {
            sqlx::query(SQL)
                .bind(status.as_str())
                .bind(Json(metrics))
                .bind(error)
                .bind(Utc::now())
                .bind(run_id)
                .bind(stage)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn run_status(
        &self,
        run_id: &str,
        stage: &str,
    ) -> Result<Option<String>, CatalogError> {
        const SQL: &str = "SELECT status FROM runs WHERE run_id = $1 AND stage = $2";
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, String>(SQL)
            .bind(run_id)
            .bind(stage)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn image_counters(&self, image_id: &str) -> Result<Option<(i64, i64)>, CatalogError> {
        const SQL: &str = "SELECT views, remixes FROM images WHERE image_id = $1";
        Ok(on_pool!(self, pool => sqlx::query_as::<_, (i64, i64)>(SQL)
            .bind(image_id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn table_counts(&self) -> Result<TableCounts, CatalogError> {
        // Table names come from this fixed list, never from input.
        const SQL: &str = "SELECT (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM dead_letters), \
            (SELECT COUNT(*) FROM triplet_files), (SELECT COUNT(*) FROM runs), \
            (SELECT COUNT(*) FROM models)";
        let (images, dead_letters, triplet_files, runs, models) = on_pool!(self, pool =>
            sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(SQL).fetch_one(pool).await?);
        Ok(TableCounts {
            images,
            dead_letters,
            triplet_files,
            runs,
            models,
        })
    }

    /// Records triplet files and marks their sessions' images curated, in ONE transaction: a
    /// crash leaves either both or neither, and a file written before the crash is simply
    /// rewritten (same content, same name) by the next run.
    /// `location` is where the files went (`ObjectRoot::location`): the images count as
    /// curated there, not elsewhere.
    pub async fn record_emission(
        &self,
        run_id: &str,
        location: &str,
        files: &[ManifestEntry],
        images: &[CuratedImage<'_>],
    ) -> Result<u64, CatalogError> {
        let now = Utc::now();
        let new_files;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            tx.upsert_emitted(run_id, location, now, images).await?;
            new_files = insert_file_rows!(tx, run_id, now, files);
            tx.commit().await?;
        });
        Ok(new_files)
    }

    /// Images already curated into `location` (and those curated before locations were
    /// recorded, which count everywhere).
    pub async fn curated_image_ids(&self, location: &str) -> Result<Vec<String>, CatalogError> {
        const SQL: &str = "SELECT DISTINCT image_id FROM emissions \
            WHERE location = $1 OR location = '*'";
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, String>(SQL)
            .bind(location)
            .fetch_all(pool)
            .await?))
    }

    /// Perceptual hashes of the images curated into `location`, oldest image first (the order
    /// originals are known in): another dataset's pictures are not this one's originals.
    pub async fn known_phashes(&self, location: &str) -> Result<Vec<(String, u64)>, CatalogError> {
        const SQL: &str = "SELECT i.image_id, i.phash FROM images i WHERE i.phash IS NOT NULL \
            AND EXISTS (SELECT 1 FROM emissions e WHERE e.image_id = i.image_id \
            AND (e.location = $1 OR e.location = '*')) ORDER BY i.published_at, i.image_id";
        let rows = on_pool!(self, pool => sqlx::query_as::<_, (String, i64)>(SQL)
            .bind(location)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(|(id, h)| (id, h as u64)).collect())
    }

    /// The latest curation into `location`: its run and when it wrote.
    pub async fn last_emission(
        &self,
        location: &str,
    ) -> Result<Option<(String, DateTime<Utc>)>, CatalogError> {
        const SQL: &str = "SELECT run_id, emitted_at FROM emissions \
            WHERE location = $1 OR location = '*' ORDER BY emitted_at DESC, run_id LIMIT 1";
        Ok(
            on_pool!(self, pool => sqlx::query_as::<_, (String, DateTime<Utc>)>(SQL)
            .bind(location)
            .fetch_optional(pool)
            .await?),
        )
    }

    pub async fn manifest(&self) -> Result<Vec<ManifestEntry>, CatalogError> {
        const SQL: &str = "SELECT uri, rows, blake3, split, dt FROM triplet_files ORDER BY uri";
        let rows = on_pool!(self, pool => sqlx::query_as::<_, (String, i64, String, String, String)>(SQL)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(uri, rows, blake3, split, dt)| ManifestEntry {
                uri,
                rows,
                blake3,
                split,
                dt,
            })
            .collect())
    }

    /// Latest time any run of `stage` finished, for triggers and reports.
    pub async fn last_finished(&self, stage: &str) -> Result<Option<DateTime<Utc>>, CatalogError> {
        const SQL: &str = "SELECT finished_at FROM runs WHERE stage = $1 AND status = 'succeeded' \
            ORDER BY finished_at DESC LIMIT 1";
        Ok(
            on_pool!(self, pool => sqlx::query_scalar::<_, Option<DateTime<Utc>>>(SQL)
            .bind(stage)
            .fetch_optional(pool)
            .await?
            .flatten()),
        )
    }
}

mod bulk;
mod export;
mod rows;
mod stream_state;
use bulk::BulkWrites;
pub use export::CatalogTable;
pub use rows::{
    AppliedBatch, ConsumedOffsets, CounterDelta, CuratedImage, ManifestEntry, RunStatus,
    TableCounts,
};
pub use stream_state::{CommitOutcome, PartitionCommit, PartitionState};
