-- Creator coverage: how many creators published images (catalog) and how many have at least one
-- triplet, the share covered, and the distribution of triplets per creator among those with any
-- (min, median, mean, 90th percentile, max).
--
--   social-reward query --file sql/creator_coverage.sql --data data/curated --db sqlite:data/catalog.db
--   duckdb analysis.duckdb < sql/creator_coverage.sql   (views: see sql/triplets_overview.sql)
SELECT
    p.creators_published,
    t.creators_with_triplets,
    CASE WHEN p.creators_published > 0
         THEN round(CAST(t.creators_with_triplets AS DOUBLE) / p.creators_published, 4)
    END AS coverage,
    t.min_triplets,
    t.median_triplets,
    t.mean_triplets,
    t.p90_triplets,
    t.max_triplets
FROM (SELECT count(DISTINCT creator_id) AS creators_published FROM images) p
CROSS JOIN (
    SELECT
        count(*)                                         AS creators_with_triplets,
        min(n)                                           AS min_triplets,
        round(median(CAST(n AS DOUBLE)), 4)              AS median_triplets,
        round(avg(CAST(n AS DOUBLE)), 4)                 AS mean_triplets,
        round(quantile_cont(CAST(n AS DOUBLE), 0.9), 4)  AS p90_triplets,
        max(n)                                           AS max_triplets
    FROM (SELECT creator_id, count(*) AS n FROM triplets GROUP BY creator_id) per_creator
) t
ORDER BY p.creators_published;
