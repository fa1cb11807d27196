-- Trained models, oldest first: when each was made, its validation accuracy and the untrained
-- baseline's on the same rows (from models.metrics, the JSON `train` records), and the gain.
--
--   social-reward query --file sql/model_accuracy.sql --data data/curated --db sqlite:data/catalog.db
--   duckdb analysis.duckdb < sql/model_accuracy.sql   (views: see sql/triplets_overview.sql)
--
-- polars SQL (Rust polars 0.55) has no JSON extraction function at all (its `json` feature adds
-- only CAST(x AS JSON)), so DuckDB's json_extract / ->> cannot be shared: the numbers are cut out
-- of the text with string functions both engines have: the text after `"val_accuracy":` (SQLite
-- stores `"k":v`, PostgreSQL's JSONB text `"k": v`, hence ltrim), up to `,` or `}`. A missing
-- key or null gives NULL. With one engine only, prefer its own function:
--   DuckDB:   CAST(json_extract(metrics, '$.val_accuracy') AS DOUBLE)  (or metrics->>'$.val_accuracy')
--   polars (Python): pl.col("metrics").str.json_path_match("$.val_accuracy").cast(pl.Float64)
SELECT
    model_id,
    created_at,
    run_id,
    val_accuracy,
    val_baseline_accuracy,
    round(val_accuracy - val_baseline_accuracy, 4) AS gain
FROM (
    SELECT
        model_id,
        created_at,
        run_id,
        round(TRY_CAST(split_part(split_part(ltrim(split_part(metrics, '"val_accuracy":', 2)),
            ',', 1), '}', 1) AS DOUBLE), 4) AS val_accuracy,
        round(TRY_CAST(split_part(split_part(ltrim(split_part(metrics, '"val_baseline_accuracy":', 2)),
            ',', 1), '}', 1) AS DOUBLE), 4) AS val_baseline_accuracy
    FROM models
) m
ORDER BY created_at, model_id;
