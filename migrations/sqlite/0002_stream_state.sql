-- See the PostgreSQL migration of the same name.
CREATE TABLE stream_snapshots (
    consumer_group TEXT NOT NULL,
    topic          TEXT NOT NULL,
    partition_id   INTEGER NOT NULL,
    next_offset    INTEGER NOT NULL,
    state          BLOB NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_id)
);
