-- Dead letters by reason and day (UTC date of created_at): how many records were set aside, from
-- which source (file or kafka), and their raw bytes (raw_len: the record as received).
--
--   social-reward query --file sql/dead_letters_by_reason.sql --data data/curated --db sqlite:data/catalog.db
--   duckdb analysis.duckdb < sql/dead_letters_by_reason.sql   (views: see sql/triplets_overview.sql)
SELECT
    reason,
    day,
    count(*)                                         AS dead_letters,
    sum(CASE WHEN source = 'file' THEN 1 ELSE 0 END)  AS from_file,
    sum(CASE WHEN source = 'kafka' THEN 1 ELSE 0 END) AS from_kafka,
    sum(raw_len)                                     AS raw_bytes
FROM (
    SELECT reason, strftime(created_at, '%Y-%m-%d') AS day, source, raw_len
    FROM dead_letters
) d
GROUP BY reason, day
ORDER BY reason, day;
