-- Curated triplets by split and day: rows, creators, sessions, prompt clusters, held-out prompts,
-- and how decisive the community was. Runs in DuckDB over the Parquet files curation writes
-- (hive partitions split=/dt= become columns):
--   duckdb -c "SET VARIABLE root = 'data/curated'; .read sql/triplets_overview.sql"
SELECT
    split,
    dt,
    count(*)                                    AS triplets,
    count(DISTINCT creator_id)                  AS creators,
    count(DISTINCT generation_id)               AS sessions,
    count(DISTINCT prompt_cluster)              AS prompt_clusters,
    sum(CASE WHEN unique_prompt THEN 1 ELSE 0 END) AS unique_prompt_rows,
    round(avg(confidence), 4)                   AS mean_confidence,
    round(avg(pos_rate / neg_rate), 2)          AS mean_rate_ratio,
    round(max(cluster_rows) / count(*), 4)      AS largest_cluster_share
FROM (
    SELECT *, count(*) OVER (PARTITION BY split, dt, prompt_cluster) AS cluster_rows
    FROM read_parquet(getvariable('root') || '/triplets/*/*/*.parquet', hive_partitioning = true)
)
GROUP BY split, dt
ORDER BY split, dt;
