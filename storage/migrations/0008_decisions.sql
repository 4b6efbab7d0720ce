-- 0008: NPCs that think (issue 12). What the engine did with each LLM decision at its due
-- tick (the decision-outcomes topic): accepted, rejected with a reason code, or a
-- fallback (timeout, invalid, error, missing), the action chosen, the model's reason and
-- the event the NPC caused. One row per decision id (request x NPC).

CREATE TABLE IF NOT EXISTS {database}.decisions
(
    decision_id   String,
    request_id    String,
    run_id        String,
    tick          UInt32,
    asked_tick    UInt32,
    sim_minute    UInt32,
    npc_id        String,
    cohort        Bool,
    prompt_hash   String,
    status        LowCardinality(String),
    outcome       LowCardinality(String),
    reason_code   LowCardinality(Nullable(String)),
    action        LowCardinality(Nullable(String)),
    event_type    LowCardinality(Nullable(String)),
    target        Nullable(String),
    model_reason  Nullable(String),
    event_id      Nullable(String),
    stored_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, tick, npc_id, decision_id)
SETTINGS non_replicated_deduplication_window = 1000;
