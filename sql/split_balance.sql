-- Split balance: per split, the triplets and their share of all triplets, the distinct prompt
-- clusters and creators, the rows whose prompt is held out of train (unique_prompt), and the
-- days covered.
--
--   social-reward query --file sql/split_balance.sql --data data/curated --db sqlite:data/catalog.db
--   duckdb analysis.duckdb < sql/split_balance.sql   (views: see sql/triplets_overview.sql)
SELECT
    s.split,
    s.triplets,
    round(CAST(s.triplets AS DOUBLE) / a.total, 4) AS share,
    s.prompt_clusters,
    s.creators,
    s.unique_prompt_rows,
    s.first_dt,
    s.last_dt
FROM (
    SELECT
        split,
        count(*)                                       AS triplets,
        count(DISTINCT prompt_cluster)                 AS prompt_clusters,
        count(DISTINCT creator_id)                     AS creators,
        sum(CASE WHEN unique_prompt THEN 1 ELSE 0 END) AS unique_prompt_rows,
        min(CAST(dt AS VARCHAR))                       AS first_dt,
        max(CAST(dt AS VARCHAR))                       AS last_dt
    FROM triplets
    GROUP BY split
) s
CROSS JOIN (SELECT count(*) AS total FROM triplets) a
ORDER BY s.split;
