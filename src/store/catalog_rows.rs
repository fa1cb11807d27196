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
