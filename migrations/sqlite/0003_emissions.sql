-- Which output location each curated image was written to. "Already curated" holds for that
-- location only: a second dataset curated into another folder is not taken for the first, and
-- curating again into a new location writes its triplets anew.
CREATE TABLE emissions (
    location   TEXT NOT NULL,
    image_id   TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    emitted_at TEXT NOT NULL,
    PRIMARY KEY (location, image_id)
);
-- Images curated before locations were recorded stay curated wherever curation writes next,
-- as they were: '*' stands for every location.
INSERT INTO emissions (location, image_id, run_id, emitted_at)
SELECT '*', image_id, emitted_run_id, emitted_at FROM images
WHERE emitted_run_id IS NOT NULL AND emitted_at IS NOT NULL;
