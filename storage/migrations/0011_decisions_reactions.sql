-- 0011: reactions decided by the LLM are counted (issue 18). A focal NPC's reaction to a
-- post is left to its LLM decision: its exposure row carries no reaction, and the
-- reaction is the accepted decision. The decision row names the post reacted to and what
-- the reaction is, so a post's reach and the feed's stats count both. Null on every other
-- decision. Placed before stored_at, which the writer never sends.

ALTER TABLE {database}.decisions ADD COLUMN IF NOT EXISTS post_id Nullable(String) AFTER event_id;

ALTER TABLE {database}.decisions ADD COLUMN IF NOT EXISTS reaction LowCardinality(Nullable(String)) AFTER post_id;
