-- 0004: projections that give every common /feed filter a read-in-order path.
-- The table's key (run_id, channel, tick, post_id) serves one run's channel tab; a run's
-- all-channel feed, an author's feed in a run and feeds across runs had to sort all of a
-- run's (or all) posts for each page: 20-70 ms over 1M posts. Each projection is a copy
-- of the rows in another order, kept in the same parts by the engine (no second insert
-- path, no consistency window). ClickHouse picks the one whose key prunes the most and
-- reads it newest-first, stopping after one page.
-- Projections are not read under FINAL, so the feed reads without FINAL and collapses
-- duplicates itself (storage/queries.py: feed). A ReplacingMergeTree only accepts
-- projections with deduplicate_merge_projection_mode set: 'rebuild' rebuilds a merged
-- part's projections from its deduplicated rows.

ALTER TABLE {database}.posts MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE {database}.posts ADD PROJECTION IF NOT EXISTS feed_by_run
    (SELECT * ORDER BY run_id, tick, post_id);

ALTER TABLE {database}.posts ADD PROJECTION IF NOT EXISTS feed_by_author
    (SELECT * ORDER BY run_id, author, tick, post_id);

ALTER TABLE {database}.posts ADD PROJECTION IF NOT EXISTS feed_by_channel
    (SELECT * ORDER BY channel, tick, post_id);

ALTER TABLE {database}.posts MATERIALIZE PROJECTION feed_by_run;

ALTER TABLE {database}.posts MATERIALIZE PROJECTION feed_by_author;

ALTER TABLE {database}.posts MATERIALIZE PROJECTION feed_by_channel;
