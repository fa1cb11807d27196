-- See the SQLite migration of the same name.
CREATE TABLE emissions (
    location   TEXT NOT NULL,
    image_id   TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    emitted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (location, image_id)
);
INSERT INTO emissions (location, image_id, run_id, emitted_at)
SELECT '*', image_id, emitted_run_id, emitted_at FROM images
WHERE emitted_run_id IS NOT NULL AND emitted_at IS NOT NULL;
