//! The catalog's row writes as macros over a transaction of either backend (sqlx's executor
//! types differ between PostgreSQL and SQLite, and a generic function over both needs bounds
//! longer than the statements). `catalog.rs` expands them in its single-purpose methods and in
//! `apply_batch`, which does them all in one transaction.

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

macro_rules! upsert_emitted_image_rows {
    ($tx:expr, $run_id:expr, $now:expr, $images:expr) => {{
        const SQL: &str = "INSERT INTO images (image_id, creator_id, generation_id, prompt, \
            image_uri, model, creator_followers, published_at, publish_event_id, views, remixes, \
            prompt_key, prompt_cluster, phash, emitted_run_id, emitted_at) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
            ON CONFLICT (image_id) DO UPDATE SET views = excluded.views, \
            remixes = excluded.remixes, prompt_key = excluded.prompt_key, \
            prompt_cluster = excluded.prompt_cluster, phash = excluded.phash, \
            emitted_run_id = excluded.emitted_run_id, emitted_at = excluded.emitted_at";
        let (run_id, now, images) = ($run_id, $now, $images);
        for curated in images {
            let r = &curated.image.record;
            sqlx::query(SQL)
                .bind(r.image_id.as_str())
                .bind(r.creator_id.as_str())
                .bind(r.generation_id.as_str())
                .bind(r.prompt.as_ref())
                .bind(r.image_uri.as_str())
                .bind(r.model.as_str())
                .bind(i64::try_from(r.creator_followers).unwrap_or(i64::MAX))
                .bind(r.published_at.to_chrono())
                .bind(r.publish_event_id.as_str())
                .bind(i64::from(curated.image.views))
                .bind(i64::from(curated.image.remixes))
                .bind(curated.prompt_key)
                .bind(curated.prompt_cluster)
                // Stored bit for bit: SQL has no unsigned 64-bit integer.
                .bind(curated.phash.map(|h| h as i64))
                .bind(run_id)
                .bind(now)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

macro_rules! insert_file_rows {
    ($tx:expr, $run_id:expr, $now:expr, $files:expr) => {{
        const SQL: &str = "INSERT INTO triplet_files (uri, rows, blake3, split, dt, run_id, \
            created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (uri) DO NOTHING";
        let (run_id, now, files) = ($run_id, $now, $files);
        let mut new_files = 0u64;
        for file in files {
            new_files += sqlx::query(SQL)
                .bind(file.uri.as_str())
                .bind(file.rows)
                .bind(file.blake3.as_str())
                .bind(file.split.as_str())
                .bind(file.dt.as_str())
                .bind(run_id)
                .bind(now)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
        }
        new_files
    }};
}
