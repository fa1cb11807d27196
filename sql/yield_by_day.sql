-- Yield by day: per day, the triplets curated (by their `dt` partition), the sessions
-- (creator_id/generation_id pairs) and creators behind them, the images published that day (UTC
-- date of images.published_at), and yield = triplets / images published. A day with images but
-- no triplets yet (its observation window still open) shows 0 triplets and yield 0.
--
--   social-reward query --file sql/yield_by_day.sql --data data/curated --db sqlite:data/catalog.db
--   duckdb analysis.duckdb < sql/yield_by_day.sql   (views: see sql/triplets_overview.sql)
SELECT
    COALESCE(t.dt, i.dt)                AS dt,
    COALESCE(t.triplets, 0)             AS triplets,
    COALESCE(t.sessions, 0)             AS sessions,
    COALESCE(t.creators, 0)             AS creators,
    COALESCE(i.images_published, 0)     AS images_published,
    CASE WHEN i.images_published > 0
         THEN round(CAST(COALESCE(t.triplets, 0) AS DOUBLE) / i.images_published, 4)
    END                                 AS yield
FROM (
    SELECT
        dt,
        count(*)                                           AS triplets,
        count(DISTINCT creator_id || '/' || generation_id) AS sessions,
        count(DISTINCT creator_id)                         AS creators
    FROM (SELECT CAST(dt AS VARCHAR) AS dt, creator_id, generation_id FROM triplets) days
    GROUP BY dt
) t
FULL JOIN (
    SELECT dt, count(*) AS images_published
    FROM (SELECT strftime(published_at, '%Y-%m-%d') AS dt FROM images) days
    GROUP BY dt
) i ON t.dt = i.dt
ORDER BY dt;
