-- The 20 prompt clusters with the most triplets: their share of all triplets, how many creators
-- and sessions they come from, and in how many splits they occur (1: the cluster stays in one).
--
--   social-reward query --file sql/top_prompt_clusters.sql --data data/curated --db sqlite:data/catalog.db
--   duckdb analysis.duckdb < sql/top_prompt_clusters.sql   (views: see sql/triplets_overview.sql)
SELECT
    c.prompt_cluster,
    c.triplets,
    round(CAST(c.triplets AS DOUBLE) / a.total, 4) AS share,
    c.creators,
    c.sessions,
    c.splits
FROM (
    SELECT
        prompt_cluster,
        count(*)                                           AS triplets,
        count(DISTINCT creator_id)                         AS creators,
        count(DISTINCT creator_id || '/' || generation_id) AS sessions,
        count(DISTINCT split)                              AS splits
    FROM triplets
    GROUP BY prompt_cluster
) c
CROSS JOIN (SELECT count(*) AS total FROM triplets) a
ORDER BY c.triplets DESC, c.prompt_cluster NULLS LAST
LIMIT 20;
