-- The streaming consumer's curation state per partition: a snapshot of its windows and
-- memories, taken at `next_offset`. Messages from there up to consumer_offsets.next_offset are
-- replayed into memory only (their effects are already in the catalog) after a restart or a
-- rebalance.
CREATE TABLE stream_snapshots (
    consumer_group TEXT NOT NULL,
    topic          TEXT NOT NULL,
    partition_id   INTEGER NOT NULL,
    next_offset    BIGINT NOT NULL,
    state          BYTEA NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_id)
);
