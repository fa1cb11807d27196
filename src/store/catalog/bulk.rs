//! The writes a batch makes once per image (new images, counter deltas, curated images), on
//! each backend's best path. PostgreSQL takes a whole batch in one statement (arrays unnested
//! server-side): a statement per image was most of a streaming commit. SQLite, in process,
//! takes them one by one in the transaction.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::events::Publish;

use super::rows::{CounterDelta, CuratedImage};

/// A curated image's row: inserted if the catalog never saw its publish, else updated with its
/// final counts, prompt cluster, hash and the run that emitted it.
const UPSERT_EMITTED_COLUMNS: &str = "INSERT INTO images (image_id, creator_id, generation_id, \
    prompt, image_uri, model, creator_followers, published_at, publish_event_id, views, \
    remixes, prompt_key, prompt_cluster, phash, emitted_run_id, emitted_at) ";
const UPSERT_EMITTED_CONFLICT: &str = " ON CONFLICT (image_id) DO UPDATE SET \
    views = excluded.views, remixes = excluded.remixes, prompt_key = excluded.prompt_key, \
    prompt_cluster = excluded.prompt_cluster, phash = excluded.phash, \
    emitted_run_id = excluded.emitted_run_id, emitted_at = excluded.emitted_at";

pub(super) trait BulkWrites {
    /// Adds each delta to its image's counters; returns the deltas whose image is unknown.
    async fn add_counters(
        &mut self,
        deltas: &[CounterDelta],
    ) -> Result<Vec<CounterDelta>, sqlx::Error>;

    /// Inserts the published images the catalog does not have yet; returns how many were new.
    async fn insert_images(&mut self, publishes: &[Publish<'_>]) -> Result<u64, sqlx::Error>;

    /// Marks curated images emitted by `run_id`, with what curation decided about them, and
    /// records them as curated into `location` (the first run that did keeps the row).
    async fn upsert_emitted(
        &mut self,
        run_id: &str,
        location: &str,
        now: DateTime<Utc>,
        images: &[CuratedImage<'_>],
    ) -> Result<(), sqlx::Error>;
}

const INSERT_EMISSION: &str = "INSERT INTO emissions (location, image_id, run_id, emitted_at) ";

/// Stored bit for bit: SQL has no unsigned 64-bit integer.
fn phash_bits(curated: &CuratedImage<'_>) -> Option<i64> {
    curated.phash.map(|h| h as i64)
}

/// A follower count as SQL's BIGINT (saturating: no account has 2^63 followers).
fn followers(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl BulkWrites for sqlx::PgConnection {
    async fn insert_images(&mut self, publishes: &[Publish<'_>]) -> Result<u64, sqlx::Error> {
        const SQL: &str = "INSERT INTO images (image_id, creator_id, generation_id, prompt, \
            image_uri, model, creator_followers, published_at, publish_event_id) \
            SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
            $6::text[], $7::int8[], $8::timestamptz[], $9::text[]) \
            ON CONFLICT (image_id) DO NOTHING";
        if publishes.is_empty() {
            return Ok(0);
        }
        let text = |field: for<'b> fn(&'b Publish<'b>) -> &'b str| -> Vec<&str> {
            publishes.iter().map(|p| field(p)).collect()
        };
        let follower_counts: Vec<i64> = publishes
            .iter()
            .map(|p| followers(p.creator_followers))
            .collect();
        let published: Vec<_> = publishes.iter().map(|p| p.ts.to_chrono()).collect();
        Ok(sqlx::query(SQL)
            .bind(text(|p| &p.image_id))
            .bind(text(|p| &p.creator_id))
            .bind(text(|p| &p.generation_id))
            .bind(text(|p| &p.prompt))
            .bind(text(|p| &p.image_uri))
            .bind(text(|p| &p.model))
            .bind(follower_counts)
            .bind(published)
            .bind(text(|p| &p.event_id))
            .execute(&mut *self)
            .await?
            .rows_affected())
    }

    async fn add_counters(
        &mut self,
        deltas: &[CounterDelta],
    ) -> Result<Vec<CounterDelta>, sqlx::Error> {
        const SQL: &str = "UPDATE images AS i \
            SET views = i.views + d.views, remixes = i.remixes + d.remixes \
            FROM UNNEST($1::text[], $2::int8[], $3::int8[]) AS d(image_id, views, remixes) \
            WHERE i.image_id = d.image_id RETURNING i.image_id";
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = deltas.iter().map(|d| d.image_id.as_str()).collect();
        let views: Vec<i64> = deltas.iter().map(|d| d.views).collect();
        let remixes: Vec<i64> = deltas.iter().map(|d| d.remixes).collect();
        let matched: HashSet<String> = sqlx::query_scalar::<_, String>(SQL)
            .bind(&ids)
            .bind(&views)
            .bind(&remixes)
            .fetch_all(&mut *self)
            .await?
            .into_iter()
            .collect();
        Ok(deltas
            .iter()
            .filter(|d| !matched.contains(&d.image_id))
            .cloned()
            .collect())
    }

    async fn upsert_emitted(
        &mut self,
        run_id: &str,
        location: &str,
        now: DateTime<Utc>,
        images: &[CuratedImage<'_>],
    ) -> Result<(), sqlx::Error> {
        if images.is_empty() {
            return Ok(());
        }
        // One statement may not update a row twice: an image listed again keeps its last
        // values, as one statement per image would have left it.
        let mut seen = HashSet::with_capacity(images.len());
        let mut last: Vec<&CuratedImage<'_>> = images
            .iter()
            .rev()
            .filter(|c| seen.insert(c.image_id))
            .collect();
        last.reverse();
        let text = |field: for<'b> fn(&'b CuratedImage<'b>) -> &'b str| -> Vec<&str> {
            last.iter().map(|c| field(c)).collect()
        };
        let follower_counts: Vec<i64> = last
            .iter()
            .map(|c| followers(c.creator_followers))
            .collect();
        let published: Vec<_> = last.iter().map(|c| c.published_at.to_chrono()).collect();
        let views: Vec<i64> = last.iter().map(|c| i64::from(c.views)).collect();
        let remixes: Vec<i64> = last.iter().map(|c| i64::from(c.remixes)).collect();
        let phashes: Vec<Option<i64>> = last.iter().map(|c| phash_bits(c)).collect();
        let sql = format!(
            "{UPSERT_EMITTED_COLUMNS} SELECT u.*, $15::text, $16::timestamptz FROM UNNEST(\
             $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::int8[], $8::timestamptz[], $9::text[], $10::int8[], $11::int8[], $12::text[], \
             $13::text[], $14::int8[]) AS u {UPSERT_EMITTED_CONFLICT}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(text(|c| c.image_id))
            .bind(text(|c| c.creator_id))
            .bind(text(|c| c.generation_id))
            .bind(text(|c| c.prompt))
            .bind(text(|c| c.image_uri))
            .bind(text(|c| c.model))
            .bind(follower_counts)
            .bind(published)
            .bind(text(|c| c.publish_event_id))
            .bind(views)
            .bind(remixes)
            .bind(text(|c| c.prompt_key))
            .bind(text(|c| c.prompt_cluster))
            .bind(phashes)
            .bind(run_id)
            .bind(now)
            .execute(&mut *self)
            .await?;
        let sql = format!(
            "{INSERT_EMISSION} SELECT $1, u, $2, $3 FROM UNNEST($4::text[]) AS u \
             ON CONFLICT (location, image_id) DO NOTHING"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(location)
            .bind(run_id)
            .bind(now)
            .bind(text(|c| c.image_id))
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}

impl BulkWrites for sqlx::SqliteConnection {
    async fn insert_images(&mut self, publishes: &[Publish<'_>]) -> Result<u64, sqlx::Error> {
        const SQL: &str = "INSERT INTO images (image_id, creator_id, generation_id, prompt, \
            image_uri, model, creator_followers, published_at, publish_event_id) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (image_id) DO NOTHING";
        let mut inserted = 0;
        for image in publishes {
            inserted += sqlx::query(SQL)
                .bind(image.image_id.as_ref())
                .bind(image.creator_id.as_ref())
                .bind(image.generation_id.as_ref())
                .bind(image.prompt.as_ref())
                .bind(image.image_uri.as_ref())
                .bind(image.model.as_ref())
                .bind(followers(image.creator_followers))
                .bind(image.ts.to_chrono())
                .bind(image.event_id.as_ref())
                .execute(&mut *self)
                .await?
                .rows_affected();
        }
        Ok(inserted)
    }

    async fn add_counters(
        &mut self,
        deltas: &[CounterDelta],
    ) -> Result<Vec<CounterDelta>, sqlx::Error> {
        const SQL: &str =
            "UPDATE images SET views = views + $1, remixes = remixes + $2 WHERE image_id = $3";
        let mut unmatched = Vec::new();
        for delta in deltas {
            let matched = sqlx::query(SQL)
                .bind(delta.views)
                .bind(delta.remixes)
                .bind(delta.image_id.as_str())
                .execute(&mut *self)
                .await?
                .rows_affected();
            if matched == 0 {
                unmatched.push(delta.clone());
            }
        }
        Ok(unmatched)
    }

    async fn upsert_emitted(
        &mut self,
        run_id: &str,
        location: &str,
        now: DateTime<Utc>,
        images: &[CuratedImage<'_>],
    ) -> Result<(), sqlx::Error> {
        let sql = format!(
            "{UPSERT_EMITTED_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16) {UPSERT_EMITTED_CONFLICT}"
        );
        for curated in images {
            let r = curated;
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(r.image_id)
                .bind(r.creator_id)
                .bind(r.generation_id)
                .bind(r.prompt)
                .bind(r.image_uri)
                .bind(r.model)
                .bind(followers(r.creator_followers))
                .bind(r.published_at.to_chrono())
                .bind(r.publish_event_id)
                .bind(i64::from(curated.views))
                .bind(i64::from(curated.remixes))
                .bind(curated.prompt_key)
                .bind(curated.prompt_cluster)
                .bind(phash_bits(curated))
                .bind(run_id)
                .bind(now)
                .execute(&mut *self)
                .await?;
        }
        let emission = format!(
            "{INSERT_EMISSION} VALUES ($1, $2, $3, $4) ON CONFLICT (location, image_id) DO NOTHING"
        );
        for curated in images {
            sqlx::query(sqlx::AssertSqlSafe(emission.as_str()))
                .bind(location)
                .bind(curated.image_id)
                .bind(run_id)
                .bind(now)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }
}
