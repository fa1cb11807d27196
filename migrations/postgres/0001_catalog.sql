-- The catalog: images and their observation-window counters, consumer offsets, dead letters,
-- the manifest of triplet files, pipeline runs and trained models.

CREATE TABLE images (
    image_id          TEXT PRIMARY KEY,
    creator_id        TEXT NOT NULL,
    generation_id     TEXT NOT NULL,
    prompt            TEXT NOT NULL,
    image_uri         TEXT NOT NULL,
    model             TEXT NOT NULL,
    creator_followers BIGINT NOT NULL,
    published_at      TIMESTAMPTZ NOT NULL,
    publish_event_id  TEXT NOT NULL,
    views             BIGINT NOT NULL DEFAULT 0,
    remixes           BIGINT NOT NULL DEFAULT 0,
    prompt_key        TEXT,
    prompt_cluster    TEXT,
    phash             BIGINT,
    emitted_run_id    TEXT,
    emitted_at        TIMESTAMPTZ
);
CREATE INDEX images_generation ON images (creator_id, generation_id);
CREATE INDEX images_open ON images (published_at) WHERE emitted_run_id IS NULL;

CREATE TABLE consumer_offsets (
    consumer_group TEXT NOT NULL,
    topic          TEXT NOT NULL,
    partition_id   INTEGER NOT NULL,
    next_offset    BIGINT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_id)
);

CREATE TABLE dead_letters (
    id           BIGSERIAL PRIMARY KEY,
    run_id       TEXT,
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    position     TEXT NOT NULL UNIQUE,
    source       TEXT NOT NULL,
    file_path    TEXT,
    line         BIGINT,
    topic        TEXT,
    partition_id INTEGER,
    kafka_offset BIGINT,
    raw          BYTEA NOT NULL,
    raw_len      BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX dead_letters_reason ON dead_letters (reason);

CREATE TABLE triplet_files (
    uri        TEXT PRIMARY KEY,
    rows       BIGINT NOT NULL,
    blake3     TEXT NOT NULL,
    split      TEXT NOT NULL,
    dt         TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE runs (
    run_id      TEXT NOT NULL,
    stage       TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    status      TEXT NOT NULL,
    params      JSONB NOT NULL,
    metrics     JSONB,
    error       TEXT,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (run_id, stage)
);

CREATE TABLE models (
    model_id   TEXT PRIMARY KEY,
    uri        TEXT NOT NULL,
    run_id     TEXT,
    config     JSONB NOT NULL,
    metrics    JSONB,
    created_at TIMESTAMPTZ NOT NULL
);
