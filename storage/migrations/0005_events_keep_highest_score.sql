-- 0005: the sink stores each event straight from the `events` topic (its base impact)
-- and every re-score that impact publishes on `scored-events`; the two topics are
-- stored independently, so a re-score may be written before its base row. The table
-- now keeps, per event, the row with the highest cascade: re-scoring only ever raises
-- it (a capped cascade leaves the whole row unchanged), so the newest score wins
-- whatever the order of the inserts. score_version is computed from the row itself.

CREATE TABLE IF NOT EXISTS {database}.events_0005
(
    event_id         String,
    run_id           String,
    tick             UInt32,
    sim_minute       UInt32,
    type             LowCardinality(String),
    actor            String,
    target           Nullable(String),
    place            LowCardinality(Nullable(String)),
    witnesses        Array(String),
    summary          String,
    source           LowCardinality(String),
    refs             Array(String),
    effects          String COMMENT 'JSON array of Effect objects',
    impact_novelty   Nullable(Float64),
    impact_conflict  Nullable(Float64),
    impact_status    Nullable(Float64),
    impact_cascade   Nullable(Float64),
    impact_total     Nullable(Float64),
    score_version    UInt32 MATERIALIZED toUInt32(round(ifNull(impact_cascade, 0) * 10000)),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_actor actor TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(score_version)
ORDER BY (run_id, tick, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

INSERT INTO {database}.events_0005
SELECT event_id, run_id, tick, sim_minute, type, actor, target, place, witnesses, summary,
       source, refs, effects, impact_novelty, impact_conflict, impact_status,
       impact_cascade, impact_total
FROM {database}.events;

RENAME TABLE {database}.events TO {database}.events_0004, {database}.events_0005 TO {database}.events;

DROP TABLE {database}.events_0004;
