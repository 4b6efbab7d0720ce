-- 0009: the feed is part of the world (issue 18). Who read which post at which tick (the
-- exposures topic, written by the shards when the catalog's feed loop is on), chosen by
-- which recommender, and what the reader did about it (like, reply, repost, feud or
-- nothing). One row per exposure id (run x tick x reader x post).

CREATE TABLE IF NOT EXISTS {database}.exposures
(
    exposure_id        String,
    run_id             String,
    tick               UInt32,
    sim_minute         UInt32,
    npc_id             String,
    post_key           String,
    post_id            String,
    event_id           String,
    post_tick          UInt32,
    author             String,
    channel            LowCardinality(String),
    recommender        LowCardinality(String),
    rank               UInt16,
    reaction           LowCardinality(Nullable(String)),
    reaction_event_id  Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, tick, npc_id, exposure_id)
SETTINGS non_replicated_deduplication_window = 1000;
