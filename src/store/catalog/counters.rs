//! Counter deltas, the catalog's one write per image per batch, on each backend's best path.
//! PostgreSQL takes a whole batch in one statement (arrays unnested server-side): a
//! statement per image was most of a streaming commit. SQLite, in process, takes them one by
//! one in the transaction.

use std::collections::HashSet;

use super::CounterDelta;

pub(super) trait AddCounters {
    /// Adds each delta to its image's counters; returns the deltas whose image is unknown.
    async fn add_counters(
        &mut self,
        deltas: &[CounterDelta],
    ) -> Result<Vec<CounterDelta>, sqlx::Error>;
}

impl AddCounters for sqlx::PgConnection {
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

impl AddCounters for sqlx::SqliteConnection {
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
