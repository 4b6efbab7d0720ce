"""FastAPI over ClickHouse: feeds, posts, events, runs, stats. Build it with :func:`api.main.create_app`."""
