-- 0010: replies and reposts are posts (issue 18). A post that answers another carries the
-- parent post's id: reply_to for a reply (a feud included), repost_of for a repost (with
-- the reposter's comment as its body; the original's text stays in the original's row).
-- Null on every other post. Placed before stored_at, which the writer never sends, so
-- the written columns stay first. Bloom filters make "the replies to this post" (the
-- thread API) skip the granules that hold none.

ALTER TABLE {database}.posts ADD COLUMN IF NOT EXISTS reply_to Nullable(String) AFTER latency_ms;

ALTER TABLE {database}.posts ADD COLUMN IF NOT EXISTS repost_of Nullable(String) AFTER reply_to;

ALTER TABLE {database}.posts ADD INDEX IF NOT EXISTS idx_reply_to reply_to TYPE bloom_filter GRANULARITY 1;

ALTER TABLE {database}.posts ADD INDEX IF NOT EXISTS idx_repost_of repost_of TYPE bloom_filter GRANULARITY 1;
