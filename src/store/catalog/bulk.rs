//! The writes a batch makes once per image (new images, counter deltas), on each backend's best
//! path. PostgreSQL takes a whole batch in one statement (arrays unnested server-side): a
//! statement per image was most of a streaming commit. SQLite, in process, takes them one by
//! one in the transaction.

use std::collections::HashSet;

use crate::events::Publish;

use super::CounterDelta;

pub(super) trait BulkWrites {
    /// Adds each delta to its image's counters; returns the deltas whose image is unknown.
    async fn add_counters(
        &mut self,
        deltas: &[CounterDelta],
    ) -> Result<Vec<CounterDelta>, sqlx::Error>;

    /// Inserts the published images the catalog does not have yet; returns how many were new.
    async fn insert_images(&mut self, publishes: &[Publish<'_>]) -> Result<u64, sqlx::Error>;
}

fn followers(publish: &Publish<'_>) -> i64 {
    i64::try_from(publish.creator_followers).unwrap_or(i64::MAX)
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
        let followers: Vec<i64> = publishes.iter().map(followers).collect();
        let published: Vec<_> = publishes.iter().map(|p| p.ts.to_chrono()).collect();
        Ok(sqlx::query(SQL)
            .bind(text(|p| &p.image_id))
            .bind(text(|p| &p.creator_id))
            .bind(text(|p| &p.generation_id))
            .bind(text(|p| &p.prompt))
            .bind(text(|p| &p.image_uri))
            .bind(text(|p| &p.model))
            .bind(followers)
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
                .bind(followers(image))
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
}
