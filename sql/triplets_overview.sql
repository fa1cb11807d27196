-- Curated triplets by split and day: rows, creators, sessions, prompt clusters, held-out prompts,
-- how decisive the community was, and how much of the day one prompt cluster takes.
--
--   social-reward query --file sql/triplets_overview.sql --data data/curated --db sqlite:data/catalog.db
--   duckdb analysis.duckdb < sql/triplets_overview.sql
--
-- Every sql/*.sql names only `query`'s tables (triplets, images, dead_letters, triplet_files, runs,
-- models, consumer_offsets, emissions) and runs unchanged in polars SQL (`query`) and in DuckDB
-- (scripts/check_analysts.py compares the two). For DuckDB, make analysis.duckdb once, from the
-- repository root, with views of those names:
--   for t in images dead_letters triplet_files runs models consumer_offsets emissions; do
--     social-reward query "SELECT * FROM $t" --data data/curated --db sqlite:data/catalog.db \
--       --format parquet --out data/$t.parquet
--     duckdb analysis.duckdb -c "CREATE OR REPLACE VIEW $t AS SELECT * FROM 'data/$t.parquet'"
--   done
--   duckdb analysis.duckdb -c "CREATE OR REPLACE VIEW triplets AS
--     SELECT * EXCLUDE (split, dt), split, dt FROM read_parquet(
--       'data/curated/triplets/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)"
-- (columns in `query`'s order, `dt` as text as in `query`; times are UTC, without a zone.)
-- Portable SQL, checked in both: no window functions, no JSON functions, DESC on a column that
-- may be null says NULLS LAST (polars puts nulls first there, DuckDB last), ratios CAST to
-- DOUBLE and rounded to 4 decimals.
SELECT
    d.split,
    d.dt,
    d.triplets,
    d.creators,
    d.sessions,
    d.prompt_clusters,
    d.unique_prompt_rows,
    d.mean_confidence,
    d.mean_rate_ratio,
    round(CAST(c.largest_cluster_rows AS DOUBLE) / d.triplets, 4) AS largest_cluster_share
FROM (
    SELECT
        split,
        dt,
        count(*)                                         AS triplets,
        count(DISTINCT creator_id)                       AS creators,
        count(DISTINCT creator_id || '/' || generation_id) AS sessions,
        count(DISTINCT prompt_cluster)                   AS prompt_clusters,
        sum(CASE WHEN unique_prompt THEN 1 ELSE 0 END)   AS unique_prompt_rows,
        round(avg(confidence), 4)                        AS mean_confidence,
        round(avg(CASE WHEN neg_rate > 0 THEN pos_rate / neg_rate END), 4) AS mean_rate_ratio
    FROM triplets
    GROUP BY split, dt
) d
JOIN (
    SELECT split, dt, max(rows_in_cluster) AS largest_cluster_rows
    FROM (
        SELECT split, dt, prompt_cluster, count(*) AS rows_in_cluster
        FROM triplets
        GROUP BY split, dt, prompt_cluster
    ) per_cluster
    GROUP BY split, dt
) c ON d.split = c.split AND d.dt = c.dt
ORDER BY d.split, d.dt;
