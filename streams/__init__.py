"""Stream processors: clock, world shards, impact, render and the ClickHouse sink."""
