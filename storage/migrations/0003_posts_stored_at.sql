-- 0003: when a post row reached ClickHouse, for the live stream of new posts.
-- Posts arrive out of tick order (rendering takes a while), so "new" means "stored
-- since", not "a later tick". The writer never sends the column: the default fills it.
-- A minmax skip index makes "stored in the last seconds" cheap: parts are written in
-- time order, so most are skipped.

ALTER TABLE {database}.posts ADD COLUMN IF NOT EXISTS stored_at DateTime64(3, 'UTC') DEFAULT now64(3);

ALTER TABLE {database}.posts ADD INDEX IF NOT EXISTS idx_stored_at stored_at TYPE minmax GRANULARITY 1;
