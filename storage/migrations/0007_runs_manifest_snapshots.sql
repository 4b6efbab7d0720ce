-- 0007: runs as a log (issue 11). A run's manifest: what decides its results besides the
-- seed and world already stored (the catalog digest, the start minute) and its lineage
-- (the run it branched from, and at which tick). And the full-world snapshots written to
-- the `snapshots` topic: one row per part, with its size and checksum; the NPC states
-- themselves are queryable in npc_snapshots (argMax over tick <= T: "the world as of T").

ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS start_minute UInt32 DEFAULT 0;
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS catalog_digest String DEFAULT '';
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS parent_run Nullable(String);
ALTER TABLE {database}.runs ADD COLUMN IF NOT EXISTS branch_tick Nullable(UInt32);

CREATE TABLE IF NOT EXISTS {database}.snapshots
(
    run_id      String,
    tick        UInt32,
    source      LowCardinality(String),
    shard       UInt32,
    part        UInt32,
    parts       UInt32,
    npcs        UInt32,
    bytes       UInt64,
    sha256      String,
    stored_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, tick, source, shard, part)
SETTINGS non_replicated_deduplication_window = 1000;
