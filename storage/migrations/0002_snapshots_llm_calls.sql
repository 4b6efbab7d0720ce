-- 0002: fit npc_snapshots and llm_calls to their topic messages.
-- Fame is a static catalog property (the API reads it from the catalog), not NPC state.
-- An LLM call made before a model answered (Triton unavailable) has no model name.

ALTER TABLE {database}.npc_snapshots DROP COLUMN IF EXISTS fame;

ALTER TABLE {database}.llm_calls MODIFY COLUMN model LowCardinality(Nullable(String));

ALTER TABLE {database}.llm_calls MODIFY COLUMN outcome LowCardinality(String)
    COMMENT 'valid | repaired | invalid | error | unavailable | cached';
