"""The ``worldfeed`` command line.

worldfeed up            start Kafka, Triton, workers and the API; play Day 1; print the feed
worldfeed worker        a stream worker (roles: clock, world, impact, render, deliberate, sink)
worldfeed api           the API (in embedded mode it also runs the ClickHouse sink)
worldfeed run-command   start / pause / resume / stop a run, or change its speed
                        (run-command speed RUN 4: four times real time; 0: as fast as possible)
worldfeed snapshot      write a full-world snapshot of a run (cli/runs.py: replay, branch, diff)
worldfeed topics        create the topics (idempotent)
worldfeed migrate       apply ClickHouse migrations
worldfeed schemas       export topic JSON Schemas to topics/schemas/
worldfeed sql           run a read-only query through the API (--format table|csv|json)
worldfeed top           a live table of the workers' and the API's /metrics (--once: one)
worldfeed check-world   validate a world directory (file, JSON pointer and rule of each problem)
worldfeed new-world     start a new world from a template (the starter town, or synthetic)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldfeed.settings import ROOT, Settings

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fastapi import FastAPI
    from pydantic import BaseModel

    from api.timeline import Timelines
    from streams.app import Streams

SCHEMAS_DIR = ROOT / "topics" / "schemas"


def export_topic_schemas(directory: Path = SCHEMAS_DIR) -> list[Path]:
    """Write one JSON Schema per topic (``<topic>.schema.json``); return the paths."""
    from topics import TOPICS, schema_of

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in TOPICS:
        path = directory / f"{spec.name}.schema.json"
        schema = {
            "title": spec.name,
            "description": spec.description,
            "x-key": spec.key,
            **schema_of(spec),
        }
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def cmd_worker(settings: Settings, roles: list[str]) -> int:
    """Run a faust worker with the given roles until interrupted."""
    import faust

    from bus.admin import ensure_topics
    from streams.worker import create_streams

    asyncio.run(ensure_topics(settings))
    streams = create_streams(settings, roles)
    if settings.metrics_port:
        from worldfeed import metrics

        metrics.serve(settings.metrics_host, settings.metrics_port)
    worker = faust.Worker(streams.app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


def cmd_api(settings: Settings, with_sink: bool) -> int:
    """Serve the API (and, in embedded mode, the ClickHouse sink in the same process)."""
    import uvicorn

    app = api_app(settings, with_sink)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="info")
    return 0


def api_app(settings: Settings, with_sink: bool, **options: Any) -> FastAPI:
    """The API app of ``worldfeed api``: with the sink, its hooks start the sink in the
    app's process, the sink feeds the app's in-memory feed timelines and post index, and
    the index is filled from ClickHouse. ``options`` go to :func:`api.main.create_app`."""
    from api.main import create_app
    from bus.admin import ensure_topics, kafka_health
    from streams.worker import create_streams

    hooks_up: list[Callable[[], Awaitable[None]]] = []
    hooks_down: list[Callable[[], Awaitable[None]]] = []
    if with_sink:
        streams = create_streams(settings, ["sink"])

        async def start_sink() -> None:
            await ensure_topics(settings)
            await streams.app.start()

        async def stop_sink() -> None:
            await streams.app.stop()

        async def start_fill() -> None:  # after the sink: the index takes what it stores
            if settings.api_feed_index_max_posts > 0:
                app.state.feed_tasks.append(fill_index(app))

        async def stop_fill() -> None:  # after the sink: nothing is stored any more
            for task in app.state.feed_tasks:
                task.cancel()
            app.state.post_index.close()

        hooks_up.extend((start_sink, start_fill))
        hooks_down.extend((stop_sink, stop_fill))

    async def kafka() -> str:
        return await kafka_health(settings)

    if with_sink:
        from worldfeed import metrics

        def progress() -> tuple[dict[str, dict[str, int]], int | None]:
            return metrics.current_lag(), metrics.last_completed_tick()

        options.setdefault("progress", progress)
    app = create_app(
        settings,
        health_checks={"kafka": kafka},
        on_startup=hooks_up,
        on_shutdown=hooks_down,
        **options,
    )
    if with_sink:
        # The sink's inserts run in a thread; a request waiting for the GIL behind it
        # waited up to the 5 ms switch interval at each of its awaits.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        app.state.feed_tasks = []  # the tasks that feed and fill the timelines and index
        feed_timelines(app, settings, streams)
    return app


SWITCH_INTERVAL_S = 0.001  # see api_app
STORED_SLICE = 50  # stored posts taken into the timelines and index between yields


def feed_timelines(app: FastAPI, settings: Settings, streams: Streams) -> None:
    """Let the embedded sink feed the API's in-memory timelines (api/timeline.py) and
    post index (api/postindex.py).

    The sink hands over each stored batch (up to ``sink_batch_size`` posts) at once; made
    into bodies in one go, 5,000 posts held the event loop, and every request behind it,
    for about 80 ms. So the batch is queued, and a task of the API's loop takes it a
    slice at a time, in order (a post is in memory within a slice or two of being stored).
    """
    from api.postindex import PostIndex
    from api.timeline import stored_bodies
    from topics.models import PostPublished

    timelines: Timelines = app.state.timelines
    index: PostIndex = app.state.post_index
    use_timelines = settings.api_timeline_posts > 0
    use_index = settings.api_feed_index_max_posts > 0
    queue: list[PostPublished] = []
    arrived = asyncio.Event()

    taking: list[asyncio.Future[None]] = []

    def stored(messages: list[BaseModel]) -> None:  # called in the API's loop
        queue.extend(m for m in messages if isinstance(m, PostPublished))
        arrived.set()
        if not taking:
            taking.append(asyncio.ensure_future(take()))
            app.state.feed_tasks.append(taking[0])

    async def take() -> None:
        while True:
            await arrived.wait()
            arrived.clear()
            while queue:
                slice_ = queue[:STORED_SLICE]
                del queue[:STORED_SLICE]
                try:
                    rows = [m.model_dump() for m in slice_]
                    bodies = stored_bodies(rows)
                except Exception:  # a post the API cannot show: both would miss it
                    log.exception("stored posts: cannot take a slice; dropping the memory")
                    timelines.clear()
                    index.switch_off()
                    continue
                if use_timelines:
                    timelines.stored(rows, bodies)
                if use_index:
                    index.stored(rows, bodies)
                await asyncio.sleep(0)

    streams.on_stored.append(stored)  # before the fill starts: it relies on this
    timelines.live = use_timelines


def fill_index(app: FastAPI) -> asyncio.Future[None]:
    """Fill the app's post index from ClickHouse in a task of the running loop (the sink
    already feeding it); returns its task (also the index's :attr:`~PostIndex.filling`)."""
    from api.postindex import PostIndex
    from storage import queries, run_in_thread

    index: PostIndex = app.state.post_index
    storage = app.state.storage

    async def read_runs() -> list[tuple[str, int, int]]:
        return await run_in_thread(queries.post_runs, storage.client, storage.database)

    async def read_range(run_id: str, lo: int, hi: int) -> list[dict[str, Any]]:
        return await run_in_thread(
            queries.posts_in_ticks, storage.client, storage.database, run_id, lo, hi
        )

    async def fill() -> None:
        await index.fill(read_runs, read_range)
        # What the process holds now lives as long as it does (the imported code, the
        # engine's client, the index's structures). Frozen, the collector stops walking
        # it: a full collection took 80-100 ms, every request waiting behind it.
        gc.collect()
        gc.freeze()

    index.filling = asyncio.ensure_future(fill())
    return index.filling


def start_minute_arg(day: int, time: str) -> int:
    """``--start-day`` / ``--start-time`` as the run's start minute (argparse exits if bad)."""
    from sim.calendar import minute_at
    from topics.models import MAX_START_MINUTE

    try:
        minute = minute_at(day, time)
    except ValueError as exc:
        raise SystemExit(f"worldfeed: bad start: {exc}") from exc
    if minute > MAX_START_MINUTE:
        raise SystemExit(f"worldfeed: bad start: day {day} is too late")
    return minute


def _add_start(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start-day", type=int, default=1, help="simulated day to start on (1..)")
    parser.add_argument("--start-time", default="00:00", help="time of day to start at (HH:MM)")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="worldfeed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    up_cmd = sub.add_parser("up", help="start everything and play a run")
    up_cmd.add_argument("--days", type=float, default=1.0)
    up_cmd.add_argument("--seed", type=int, default=None)
    up_cmd.add_argument("--run-id", default=None)
    up_cmd.add_argument(
        "--exit-when-done",
        action="store_true",
        help="stop every process once the run is played and rendered",
    )
    _add_start(up_cmd)
    w = sub.add_parser("worker", help="run a stream worker")
    w.add_argument(
        "--roles",
        default="clock,world,impact,render",
        help="comma-separated: clock, world, impact, render, deliberate (LLM decisions: "
        "needed when runs deliberate, WORLDFEED_DECIDE_BUDGET), sink",
    )
    a = sub.add_parser("api", help="serve the API")
    a.add_argument("--no-sink", action="store_true", help="do not run the embedded sink")
    rc = sub.add_parser("run-command", help="send a command to the clock")
    rc.add_argument("command", choices=["start", "pause", "resume", "stop", "speed"])
    rc.add_argument("run_id")
    rc.add_argument(
        "value", nargs="?", type=float, default=None, help="speed: the new speed (0 = fastest)"
    )
    rc.add_argument("--seed", type=int, default=1)
    rc.add_argument("--days", type=float, default=1.0)
    rc.add_argument("--world", default="town")
    rc.add_argument("--speed", type=float, default=0.0)
    _add_start(rc)
    from cli import runs

    runs.add_parsers(sub)
    sub.add_parser("topics", help="create topics")
    sub.add_parser("migrate", help="apply ClickHouse migrations")
    sub.add_parser("schemas", help="export topic JSON Schemas")
    q = sub.add_parser("sql", help="run a read-only SQL query through the API")
    q.add_argument("query")
    q.add_argument("--format", choices=["table", "csv", "json"], default="table")
    q.add_argument("--api", default=None, help="API base URL (default: from the settings)")
    t = sub.add_parser("top", help="live view of the metrics of the API and the workers")
    t.add_argument(
        "--target",
        action="append",
        default=None,
        help="a /metrics URL (repeatable; default: the API's and the worker's of the settings)",
    )
    t.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    t.add_argument("--once", action="store_true", help="print one table and exit")
    cw = sub.add_parser("check-world", help="validate a world directory")
    cw.add_argument("directory", type=Path)
    nw = sub.add_parser("new-world", help="start a new world from a template")
    nw.add_argument("name", help="world id: lower-case letters, digits and _")
    nw.add_argument("--dir", type=Path, default=None, help="parent directory (.local/worlds)")
    nw.add_argument("--title", default=None, help="display name (default: from the name)")
    nw.add_argument("--from", dest="template", choices=["town", "synthetic"], default="town")
    nw.add_argument("--npcs", type=int, default=50, help="synthetic: how many NPCs")
    nw.add_argument("--seed", type=int, default=1, help="synthetic: generator seed")
    args = parser.parse_args(argv)
    if args.cmd in ("check-world", "new-world"):
        from cli.worlds import check_world, cmd_new_world

        if args.cmd == "check-world":
            return check_world(args.directory)
        return cmd_new_world(args.name, args.dir, args.title, args.template, args.npcs, args.seed)
    start_minute = 0
    if args.cmd in ("up", "run-command"):
        start_minute = start_minute_arg(args.start_day, args.start_time)
    if args.cmd == "run-command" and args.command == "speed":
        if args.value is None or args.value < 0:
            parser.error("run-command speed RUN X needs a speed X >= 0")
        args.speed = args.value

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings()
    except Exception as exc:  # noqa: BLE001 - show configuration errors without a traceback
        print(f"worldfeed: bad configuration: {exc}", file=sys.stderr)
        return 2
    # the level is ours: the libraries' own loggers stay at INFO (faust's worker logs
    # through the root logger's handlers, which take the level below)
    for name in ("aiokafka", "faust", "mode", "kafka", "asyncio", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger().setLevel(settings.log_level)

    roles = [r.strip() for r in args.roles.split(",") if r.strip()] if args.cmd == "worker" else []
    # refuse a bad catalog before starting anything that reads it (a sink-only worker does not)
    needs_catalog = args.cmd == "up" or bool(set(roles) - {"sink"})
    if needs_catalog:
        from catalog import CatalogError
        from sim.world import check_world as refuse_invalid
        from sim.world import load_world

        try:
            if args.cmd == "up":  # the workers load it; free when its index is cached
                refuse_invalid(settings.catalog_dir)
            else:  # loaded now, before any run: a run's first tick does not wait for it
                load_world(str(settings.catalog_dir))
        except CatalogError as exc:
            print(f"worldfeed: the catalog is invalid, not starting:\n{exc}", file=sys.stderr)
            return 2
    if args.cmd == "up":
        from cli.up import up

        return up(
            settings,
            days=args.days,
            seed=args.seed,
            run_id=args.run_id,
            exit_when_done=args.exit_when_done,
            start_minute=start_minute,
        )
    if args.cmd == "worker":
        return cmd_worker(settings, roles)
    if args.cmd == "api":
        return cmd_api(settings, with_sink=not args.no_sink)
    if args.cmd == "run-command":
        from bus.commands import send_command
        from topics.models import RunCommanded

        command = RunCommanded(
            command=args.command,
            run_id=args.run_id,
            seed=args.seed,
            days=args.days,
            world=args.world,
            speed=args.speed,
            step_minutes=settings.step_minutes,
            start_minute=start_minute,
        )
        if args.command == "start":
            from cli.up import run_deliberation

            command = command.model_copy(update=run_deliberation(settings))
        asyncio.run(send_command(settings, command))
        return 0
    if args.cmd in ("snapshot", "replay", "branch", "diff"):
        return runs.run(settings, args)
    if args.cmd == "topics":
        from bus.admin import ensure_topics

        created = asyncio.run(ensure_topics(settings))
        print(f"created {len(created)} topics")
        return 0
    if args.cmd == "migrate":
        from storage.clickhouse import connect, database_of
        from storage.migrate import migrate

        dsn = settings.clickhouse_dsn
        applied = migrate(connect(dsn), database_of(dsn), cluster=settings.clickhouse_cluster)
        print(f"applied migrations: {applied or 'none (up to date)'}")
        return 0
    if args.cmd == "sql":
        from cli.sql import cmd_sql

        return cmd_sql(settings, args.query, args.format, args.api)
    if args.cmd == "top":
        from cli.top import cmd_top

        return cmd_top(settings, args.target, args.interval, args.once)
    if args.cmd == "schemas":
        for path in export_topic_schemas():
            print(path.relative_to(ROOT))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
