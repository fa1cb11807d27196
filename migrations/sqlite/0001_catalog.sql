-- The catalog: images and their observation-window counters, consumer offsets, dead letters,
-- the manifest of triplet files, pipeline runs and trained models.

CREATE TABLE images (
    image_id          TEXT PRIMARY KEY,
    creator_id        TEXT NOT NULL,
    generation_id     TEXT NOT NULL,
    prompt            TEXT NOT NULL,
    image_uri         TEXT NOT NULL,
    model             TEXT NOT NULL,
    creator_followers INTEGER NOT NULL,
    published_at      TEXT NOT NULL,
    publish_event_id  TEXT NOT NULL,
    views             INTEGER NOT NULL DEFAULT 0,
    remixes           INTEGER NOT NULL DEFAULT 0,
    prompt_key        TEXT,
    prompt_cluster    TEXT,
    phash             INTEGER,
    emitted_run_id    TEXT,
    emitted_at        TEXT
);
CREATE INDEX images_generation ON images (creator_id, generation_id);
CREATE INDEX images_open ON images (published_at) WHERE emitted_run_id IS NULL;

CREATE TABLE consumer_offsets (
    consumer_group TEXT NOT NULL,
    topic          TEXT NOT NULL,
    partition_id   INTEGER NOT NULL,
    next_offset    INTEGER NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_id)
);

CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT,
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    position     TEXT NOT NULL UNIQUE,
    source       TEXT NOT NULL,
    file_path    TEXT,
    line         INTEGER,
    topic        TEXT,
    partition_id INTEGER,
    kafka_offset INTEGER,
    raw          BLOB NOT NULL,
    raw_len      INTEGER NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX dead_letters_reason ON dead_letters (reason);

CREATE TABLE triplet_files (
    uri        TEXT PRIMARY KEY,
    rows       INTEGER NOT NULL,
    blake3     TEXT NOT NULL,
    split      TEXT NOT NULL,
    dt         TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE runs (
    run_id      TEXT NOT NULL,
    stage       TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    status      TEXT NOT NULL,
    params      TEXT NOT NULL,
    metrics     TEXT,
    error       TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (run_id, stage)
);

CREATE TABLE models (
    model_id   TEXT PRIMARY KEY,
    uri        TEXT NOT NULL,
    run_id     TEXT,
    config     TEXT NOT NULL,
    metrics    TEXT,
    created_at TEXT NOT NULL
);
