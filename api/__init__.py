"""FastAPI over ClickHouse: feeds, posts, events, runs, stats (see :func:`api.main.create_app`)."""
