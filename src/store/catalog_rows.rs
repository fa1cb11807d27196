//! The catalog's row writes as macros over a transaction of either backend (sqlx's executor
//! types differ between PostgreSQL and SQLite, and a generic function over both needs bounds
//! longer than the statements). `catalog.rs` expands them in its single-purpose methods and in
//! `apply_batch`, which does them all in one transaction.

macro_rules! insert_image_rows {
    ($tx:expr, $images:expr) => {{
        const SQL: &str = "INSERT INTO images (image_id, creator_id, generation_id, prompt, \
            image_uri, model, creator_followers, published_at, publish_event_id) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (image_id) DO NOTHING";
        let mut inserted = 0u64;
        for image in $images {
            let followers = i64::try_from(image.creator_followers).unwrap_or(i64::MAX);
            inserted += sqlx::query(SQL)
                .bind(image.image_id.as_ref())
                .bind(image.creator_id.as_ref())
                .bind(image.generation_id.as_ref())
                .bind(image.prompt.as_ref())
                .bind(image.image_uri.as_ref())
                .bind(image.model.as_ref())
                .bind(followers)
                .bind(image.ts.to_chrono())
                .bind(image.event_id.as_ref())
                .execute(&mut *$tx)
                .await?
                .rows_affected();
        }
        inserted
    }};
}

macro_rules! add_counter_rows {
    ($tx:expr, $deltas:expr) => {{
        const SQL: &str =
            "UPDATE images SET views = views + $1, remixes = remixes + $2 WHERE image_id = $3";
        let mut unmatched = Vec::new();
        for delta in $deltas {
            let matched = sqlx::query(SQL)
                .bind(delta.views)
                .bind(delta.remixes)
                .bind(delta.image_id.as_str())
                .execute(&mut *$tx)
                .await?
                .rows_affected();
            if matched == 0 {
                unmatched.push(delta.clone());
            }
        }
        unmatched
    }};
}

macro_rules! insert_dead_letter_rows {
    ($tx:expr, $run_id:expr, $letters:expr) => {{
        const SQL: &str = "INSERT INTO dead_letters (run_id, reason, detail, position, source, \
            file_path, line, topic, partition_id, kafka_offset, raw, raw_len, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
            ON CONFLICT (position) DO NOTHING";
        let now = Utc::now();
        let mut inserted = 0u64;
        for letter in $letters {
            let (source, file_path, line, topic, partition, offset) = match &letter.position {
                SourcePosition::File { path, line } => (
                    "file",
                    Some(path.as_str()),
                    Some(*line as i64),
                    None,
                    None,
                    None,
                ),
                SourcePosition::Kafka {
                    topic,
                    partition,
                    offset,
                } => (
                    "kafka",
                    None,
                    None,
                    Some(topic.as_str()),
                    Some(*partition),
                    Some(*offset),
                ),
            };
            inserted += sqlx::query(SQL)
                .bind($run_id)
                .bind(letter.reason.as_str())
                .bind(letter.detail.as_str())
                .bind(letter.position.to_string())
                .bind(source)
                .bind(file_path)
                .bind(line)
                .bind(topic)
                .bind(partition)
                .bind(offset)
                .bind(letter.raw.as_slice())
                .bind(i64::try_from(letter.raw_len).unwrap_or(i64::MAX))
                .bind(now)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
        }
        inserted
    }};
}
