-- Remix rates of the preferred (pos) and rejected (neg) images: triplets per bucket of 0.05
-- (rate_from = floor(rate * 20) / 20), side by side, with the mean rate inside each bucket.
--
--   social-reward query --file sql/remix_rates.sql --data data/curated --db sqlite:data/catalog.db
--   duckdb analysis.duckdb < sql/remix_rates.sql   (views: see sql/triplets_overview.sql)
SELECT
    round(bucket, 4)                       AS rate_from,
    sum(is_pos)                            AS pos_triplets,
    sum(1 - is_pos)                        AS neg_triplets,
    round(avg(CASE WHEN is_pos = 1 THEN rate END), 4) AS pos_mean_rate,
    round(avg(CASE WHEN is_pos = 0 THEN rate END), 4) AS neg_mean_rate
FROM (
    SELECT floor(pos_rate * 20) / 20 AS bucket, pos_rate AS rate, 1 AS is_pos FROM triplets
    UNION ALL
    SELECT floor(neg_rate * 20) / 20 AS bucket, neg_rate AS rate, 0 AS is_pos FROM triplets
) r
GROUP BY bucket
ORDER BY bucket;
