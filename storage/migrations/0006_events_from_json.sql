-- 0006: the sink hands events to the engine as the JSON it consumed (JSONEachRow), and the
-- engine maps them to rows: parsing 1 KiB of JSON is C++ work that runs beside the Python
-- consumer (the client releases the GIL), where building and encoding rows in Python cost
-- ~10 us per event on the sink's one core. `events_in` stores nothing (Null engine); its
-- view writes each inserted block to `events`, so the insert deduplication token still
-- applies (`deduplicate_blocks_in_dependent_materialized_views`). Column defaults are the
-- message model's defaults (topics/models.py: EventHappened), for fields a producer omits.
-- Fields the table does not keep (kind, world, actor_memories) are skipped at insert.

CREATE TABLE IF NOT EXISTS {database}.events_in
(
    event_id    String,
    run_id      String,
    tick        UInt32,
    sim_minute  UInt32,
    type        String,
    actor       String,
    target      Nullable(String),
    place       Nullable(String),
    witnesses   Array(String),
    summary     String,
    source      String DEFAULT 'npc',
    refs        Array(String),
    effects     String DEFAULT '[]' COMMENT 'the JSON array as sent (input_format_json_read_arrays_as_strings)',
    impact      Tuple(
                    novelty Nullable(Float64),
                    conflict Nullable(Float64),
                    status Nullable(Float64),
                    cascade Nullable(Float64),
                    total Nullable(Float64)
                ) COMMENT 'null before scoring: every component NULL'
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.events_in_mv TO {database}.events AS
SELECT event_id, run_id, tick, sim_minute, type, actor, target, place, witnesses, summary,
       source, refs, effects,
       impact.novelty AS impact_novelty,
       impact.conflict AS impact_conflict,
       impact.status AS impact_status,
       impact.cascade AS impact_cascade,
       impact.total AS impact_total
FROM {database}.events_in;
