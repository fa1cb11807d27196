-- An image row is rewritten once per micro-batch that counted views or remixes for it. Room
-- left on each page lets those updates stay on their page (heap-only tuples: no new entry in
-- any of the table's indexes, which had bloated and made every later write slower).
ALTER TABLE images SET (fillfactor = 70);

-- Partition snapshots are large and rewritten as the stream goes; pglz, the default TOAST
-- compression, took about a tenth of the server's time in `bench ingest`; lz4 is several
-- times faster. EXECUTE, so that a server built without lz4 keeps its default instead of
-- failing the migration.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE stream_snapshots ALTER COLUMN state SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'stream_snapshots.state keeps the default compression: %', SQLERRM;
END
$$;
