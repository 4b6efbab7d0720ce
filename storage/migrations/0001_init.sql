-- 0001: the initial schema. `{database}` is replaced by the (validated) database name.
-- Every table is a ReplacingMergeTree whose ORDER BY ends in (or is) the row's derived
-- id, so a row delivered twice collapses to one on merge; exact reads use FINAL.
-- non_replicated_deduplication_window makes the insert_deduplication_token that the
-- writer sends effective on a single (non-replicated) server / chDB too.

CREATE TABLE IF NOT EXISTS {database}.runs
(
    run_id       String,
    seed         Int64,
    world        LowCardinality(String),
    days         Float64,
    speed        Float64,
    step_minutes UInt32,
    created_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY run_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.ticks
(
    run_id     String,
    tick       UInt32,
    sim_minute UInt32,
    state_hash String,
    npcs       UInt32,
    events     UInt32,
    effects    UInt32,
    wall_ms    Float64,
    last       Bool
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, tick)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.events
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
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_actor actor TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, tick, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.posts
(
    post_id           String,
    request_id        String,
    run_id            String,
    event_id          String,
    channel           LowCardinality(String),
    author            String,
    tick              UInt32,
    sim_minute        UInt32,
    title             Nullable(String),
    body              String,
    source            LowCardinality(String),
    moderation        LowCardinality(String),
    moderation_reason Nullable(String),
    score             Float64,
    model             LowCardinality(Nullable(String)),
    tokens_in         UInt32,
    tokens_out        UInt32,
    latency_ms        Float64,
    INDEX idx_post_id post_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_author author TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, channel, tick, post_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.npc_snapshots
(
    run_id     String,
    tick       UInt32,
    npc_id     String,
    place      LowCardinality(Nullable(String)),
    reputation Float64,
    fame       Float64,
    state      String COMMENT 'JSON of the full NPC state',
    state_hash String
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, npc_id, tick)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.relationship_snapshots
(
    run_id      String,
    tick        UInt32,
    npc_id      String,
    other_id    String,
    affinity    Float64,
    trust       Float64,
    familiarity Float64,
    tags        Array(LowCardinality(String))
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, npc_id, other_id, tick)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.llm_calls
(
    call_id     String,
    run_id      String,
    request_id  String,
    attempt     UInt8,
    prompt_hash String,
    model       LowCardinality(String),
    tokens_in   UInt32,
    tokens_out  UInt32,
    latency_ms  Float64,
    cache_hit   Bool,
    outcome     LowCardinality(String) COMMENT 'ok | repaired | fallback | invalid | timeout | error',
    error       Nullable(String),
    at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, request_id, call_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.dead_letters
(
    dl_id     String,
    stage     LowCardinality(String),
    topic     LowCardinality(String),
    partition Int32,
    offset    Int64,
    key       Nullable(String),
    value     String,
    reason    String,
    at        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (stage, topic, partition, offset, dl_id)
SETTINGS non_replicated_deduplication_window = 1000;
