"""World benchmark on a real broker: NPC-updates/s, seconds per tick, peak memory, and
events/s into ClickHouse rows next to a raw aiokafka passthrough (see :func:`pipeline`).

    python -m bench.world                       # 1k, 10k, 100k NPCs, 8 daytime ticks each;
                                                # pipeline: the events of 8 ticks of 100k NPCs
    python -m bench.world --sizes 1000 --ticks 4 --partitions 2 --workers 2 --skip-pipeline

Uses the broker at WORLDFEED_KAFKA_BOOTSTRAP if one answers, else starts one with
deploy/local/kafka.sh on a free port. Each world is generated once (seeded) and cached
under .local/worlds/. Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from statistics import mean
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupCoordinatorNotAvailableError, GroupLoadInProgressError

from bus.admin import ensure_topics
from bus.commands import send_command
from catalog.generate import write_generated_world
from sim import worldcache
from sim.calendar import MINUTES_PER_HOUR, ticks_to_days
from sim.local import LocalRun
from sim.world import WorldIndex, load_index, load_world
from streams.outbox import Outbox
from topics import EVENTS, TICKS
from topics.codec import decode, encode
from topics.models import RunCommanded, TickCompleted
from worldfeed.gcpause import gc_paused
from worldfeed.settings import ROOT, Settings

START_MINUTE = 10 * MINUTES_PER_HOUR  # 10:00, when most NPCs are awake and about
EXE = str(Path(sys.executable).parent / "worldfeed")


def out(text: str) -> None:
    print(text, flush=True)


def world_dir(n: int) -> Path:
    """A generated world of n NPCs, written once and reused."""
    path = ROOT / ".local" / "worlds" / f"bench-{n}"
    if not (path / "npcs.json").exists():
        t = time.perf_counter()
        write_generated_world(path, n, seed=7)
        out(f"  generated world of {n:,} NPCs in {time.perf_counter() - t:.1f}s")
    return path


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def broker():
    """Bootstrap address of a running broker, or of one started for the benchmark."""
    given = os.environ.get("WORLDFEED_KAFKA_BOOTSTRAP")
    if given:
        host, port = given.split(",")[0].rsplit(":", 1)
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 1):
            yield given
            return
    port = free_port()
    script = str(ROOT / "deploy" / "local" / "kafka.sh")
    subprocess.run([script, "start", str(port)], check=True)  # noqa: S603
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([script, "stop", str(port)], check=False)  # noqa: S603


def env_for(settings: Settings) -> dict[str, str]:
    """The environment that makes a subprocess build the same Settings, and read the
    index cache this process wrote (the ``worldfeed`` executable may run another
    checkout's code, whose default cache directory is its own)."""
    where = worldcache.cache_dir()
    return {
        **os.environ,
        **settings.to_env(),
        "WORLDFEED_INDEX_CACHE": str(where) if where is not None else "off",
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def memory_mib(pid: int, fields: tuple[str, ...] = ("VmHWM",)) -> dict[str, float]:
    """Memory figures of a live process from ``/proc/<pid>/status``, MiB (``VmHWM``: peak
    resident; ``RssAnon``, ``RssFile``: resident now, its own and mapped files' pages);
    empty where unreadable."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in fields:
                out[name] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def peak_rss_mib(pid: int) -> float:
    return memory_mib(pid).get("VmHWM", 0.0)


async def send_start(settings: Settings, run_id: str, ticks: int) -> None:
    """Start a run of ``ticks`` ticks from 10:00 on the benchmark's world."""
    cmd = RunCommanded(
        command="start",
        run_id=run_id,
        seed=1,
        world=str(settings.catalog_dir),
        days=ticks_to_days(ticks, settings.step_minutes),
        start_minute=START_MINUTE,
    )
    await send_command(settings, cmd)


async def read_ticks(
    settings: Settings,
    n: int,
    timeout_s: float,
    procs: list | None = None,
    arrived: dict[int, float] | None = None,
) -> list[TickCompleted]:
    """The first ``n`` completed ticks; ``arrived``: filled with each tick's Kafka timestamp
    (epoch seconds: when the clock wrote it)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tp = TopicPartition(settings.topic(TICKS.name), 0)
        consumer.assign([tp])
        ticks: dict[tuple[str, int], TickCompleted] = {}
        deadline = time.monotonic() + timeout_s
        while len(ticks) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(ticks)} of {n} ticks after {timeout_s}s")
            dead = [p.args for p in procs or () if p.poll() is not None]
            if dead:
                raise RuntimeError(f"worker exited (see .local/bench/worker*.log): {dead}")
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for m in msgs:
                    t = decode(TICKS, m.value)
                    ticks[(t.run_id, t.tick)] = t
                    if arrived is not None:
                        arrived[t.tick] = m.timestamp / 1000
        return [ticks[k] for k in sorted(ticks)]
    finally:
        await consumer.stop()


async def group_stable(
    bootstrap: str, app_id: str, members: int, timeout_s: float, procs: list
) -> None:
    """Wait until the app's consumer group is stable with ``members`` members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = [p.args for p in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"worker exited (see .local/bench/worker*.log): {dead}")
            try:
                listed = await admin.list_consumer_groups()
            except (GroupLoadInProgressError, GroupCoordinatorNotAvailableError):
                await asyncio.sleep(0.5)  # a broker just started loads its groups: ask again
                continue
            groups = [g[0] for g in listed if g[0].startswith(app_id)]
            if groups:
                for response in await admin.describe_consumer_groups(groups):
                    for group in response.groups:
                        state, group_members = group[2], group[5]
                        if state == "Stable" and len(group_members) == members:
                            return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{members} workers not in a stable group after {timeout_s}s")
    finally:
        await admin.close()


async def seeds_ready(ports: list[int], shards: int, timeout_s: float, procs: list) -> None:
    """Wait until the workers' /metrics say every shard has made its seed states."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker exited (see .local/bench/worker*.log)")
        ready = 0
        for port in ports:
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    page = resp.read().decode()
                ready += sum(
                    line.startswith("worldfeed_shard_seeds_ready{") and line.endswith(" 1.0")
                    for line in page.splitlines()
                )
        if ready >= shards:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"seed states of {shards} shards not made after {timeout_s}s")


def start_workers(
    settings: Settings,
    workers: int,
    roles: str,
    logdir: Path,
    name: str = "worker",
    metrics_ports: list[int] | None = None,
) -> list:
    procs = []
    for i in range(workers):
        log = (logdir / f"{name}{i}.log").open("wb")
        env = env_for(settings)
        if metrics_ports:
            env["WORLDFEED_METRICS_PORT"] = str(metrics_ports[i])
        procs.append(
            subprocess.Popen(  # noqa: S603 - our own executable
                [EXE, "worker", "--roles", roles],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return procs


def stop_workers(procs: list) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def settings_for(bootstrap: str, world: Path, partitions: int, **extra: object) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(
        env="test",
        kafka_bootstrap=bootstrap,
        topic_prefix=f"bench{tag}.",
        app_id=f"bench-{tag}",
        world_partitions=partitions,
        catalog_dir=world,
        snapshot_every_ticks=0,
        tick_timeout_s=120,
        **extra,
    )


async def world_throughput(
    bootstrap: str, n: int, ticks: int, partitions: int, workers: int
) -> dict[str, float]:
    """NPC-updates/s and seconds per tick for one world size (clock + shards only)."""
    world = world_dir(n)
    # in a process of its own: what it built and freed would stay in this one's memory
    # (10 GiB at a million NPCs) while the workers run beside it
    timed = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "bench.world", "--index-times", str(world), str(n)],
        check=True,
        capture_output=True,
        text=True,
    )
    cold_s, cached_s, build_rss = orjson.loads(timed.stdout.strip().splitlines()[-1])
    settings = settings_for(bootstrap, world, partitions)
    await ensure_topics(settings)
    logdir = ROOT / ".local" / "bench"
    logdir.mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(workers)]
    procs = start_workers(settings, workers, "clock,world", logdir, metrics_ports=ports)
    try:
        # every worker in the group first: a worker joining during tick 0 moves shards
        # mid-tick, and the run then waits for the clock's tick timeout (a rebalance,
        # measured by make chaos, not the world's speed); then every shard's seed
        # states made, as on workers that were up before a run starts
        await group_stable(settings.kafka_bootstrap, settings.app_id, workers, 300, procs)
        await seeds_ready(ports, partitions, 600, procs)
        t0, started = time.perf_counter(), time.time()
        await send_start(settings, "bench", ticks + 1)
        arrived: dict[int, float] = {}
        done = await read_ticks(settings, ticks + 1, 600, procs, arrived)
        total = time.perf_counter() - t0
        steady = done[1:]  # tick 0 also loads and seeds the world
        per_tick = mean(t.wall_ms for t in steady) / 1000
        peak = max(peak_rss_mib(p.pid) for p in procs)
    finally:
        stop_workers(procs)
    # the same ticks computed in-process, without Kafka: the compute-only baseline
    index = load_world(str(world))
    ref = LocalRun(index, "bench", 1, n_shards=partitions, start_minute=START_MINUTE)
    ref.step()
    t = time.perf_counter()
    for _ in range(ticks):
        ref.step()
    local = (time.perf_counter() - t) / ticks
    if ref.hashes[-1] != done[-1].state_hash:
        raise RuntimeError("the streamed run diverged from the in-process reference")
    return {
        "npcs": n,
        "s_per_tick": per_tick,
        "updates_per_s": n / per_tick,
        "first_tick_s": done[0].wall_ms / 1000,
        # from the start command (every worker started, its world loaded, in the group)
        # to tick 0 written: the clock's start, seeding every state and the tick itself
        "start_to_first_s": arrived[0] - started,
        "index_cold_s": cold_s,
        "index_build_peak_mib": build_rss,
        "index_cached_s": cached_s,
        "events_per_tick": mean(t.events for t in steady),
        "peak_rss_mib": peak,
        "local_s_per_tick": local,
        "wall_s": total,
    }


def index_load_times(world: Path, n: int) -> tuple[float | None, float]:
    """Seconds to load the world's index in this process: validating and indexing every
    file, streamed (a worker's start with a changed world or code) and from the cache
    (every start after the first). Leaves the cache written for the workers.

    The validated load is timed where the cache was missing (the first load is then
    that), or for worlds of up to :data:`COLD_TIMED_NPCS` (None otherwise: five minutes
    at a million NPCs, timed once when the cache is built)."""
    directory = worldcache.cache_dir()
    missing = directory is None or not (directory / f"{worldcache.files_key(world)}.idx").exists()
    with gc_paused():
        t = time.perf_counter()
        load_index(world)  # written if it was not
        cold: float | None = time.perf_counter() - t if missing else None
        t = time.perf_counter()
        load_index(world)
        cached = time.perf_counter() - t
        if cold is None and n <= COLD_TIMED_NPCS:
            t = time.perf_counter()
            WorldIndex.streamed(world)  # what a worker does when the cache misses
            cold = time.perf_counter() - t
    return cold, cached


COLD_TIMED_NPCS = 100_000


PIPELINE_BATCH = 512 * 1024  # the app's producer_max_batch_size (streams/app.py)


async def passthrough(
    bootstrap: str, values: list[bytes], partitions: int, max_batch_size: int = 16384
) -> float:
    """Raw aiokafka: produce the messages to a fresh topic while consuming them all; msgs/s.

    ``max_batch_size`` 16384 is aiokafka's default; the pipeline's producer uses
    ``PIPELINE_BATCH``, so the benchmark measures both for like-for-like ratios.
    """
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, partitions, 1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, acks="all", max_batch_size=max_batch_size
    )
    # assigned, not subscribed: a group join (seconds) must not fall inside the timing, as
    # the pipeline's sink is assigned and warm before its clock starts
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    try:
        t = time.perf_counter()

        async def produce() -> None:
            for i, v in enumerate(values):
                await producer.send(topic, v, key=str(i).encode())
            await producer.flush()

        task = asyncio.ensure_future(produce())
        got = 0
        while got < len(values):
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                got += len(msgs)
        await task
        return len(values) / (time.perf_counter() - t)
    finally:
        await producer.stop()
        await consumer.stop()


async def read_events(settings: Settings, partitions: int) -> dict[str, list[bytes]]:
    """Every message of the run's events topic, by run id (the key), in order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    runs: dict[str, list[bytes]] = {}
    try:
        tps = [TopicPartition(settings.topic(EVENTS.name), p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        got = 0
        while got < sum(ends.values()):
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for m in msgs:
                    runs.setdefault(m.key.decode(), []).append(m.value)
                got += len(msgs)
    finally:
        await consumer.stop()
    return runs


def rows_stored(client: Any, db: str, run_id: str) -> int:
    """Distinct events of a run stored in ``db`` (0 when the table is not there)."""
    with contextlib.suppress(Exception):
        return int(
            client.query(
                f"SELECT uniqExact(event_id) FROM {db}.events WHERE run_id = {{r:String}}",  # noqa: S608 - db is validated
                parameters={"r": run_id},
            ).result_rows[0][0]
        )
    return 0


class SinkWatch:
    """Sees, from outside the sink worker, when every event produced so far is a row.

    The sink commits a batch's offsets only after its rows are stored (chDB is in the
    sink's process). The clients are started before a stage's clock starts, so a wait
    costs one end-offsets and one committed-offsets request per 20 ms poll.
    """

    def __init__(self, settings: Settings, partitions: int, procs: list) -> None:
        from streams.sink import group_id
        from streams.worker import app_id_for

        self.tps = [TopicPartition(settings.topic(EVENTS.name), p) for p in range(partitions)]
        self.group = group_id(app_id_for(settings, ["sink"]))
        self.procs = procs
        self.consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
        self.admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)

    async def __aenter__(self) -> SinkWatch:
        await self.consumer.start()
        await self.admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.admin.close()
        await self.consumer.stop()

    async def wait_stored(self, timeout_s: float = 600, group: str | None = None) -> None:
        """Return once the sink's committed offsets reach the events topic's end offsets
        (or another consumer group's: ``group``)."""
        group = group or self.group
        ends = await self.consumer.end_offsets(self.tps)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                committed = await self.admin.list_consumer_group_offsets(group, partitions=self.tps)
            except GroupCoordinatorNotAvailableError:  # a fresh broker: offsets topic not up
                committed = {}
            if all(tp in committed and committed[tp].offset >= ends[tp] for tp in self.tps):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group} committed {committed} of {ends} after {timeout_s}s")
            dead = [p.args for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"worker exited (see .local/bench/*.log): {dead}")
            await asyncio.sleep(0.02)


async def produce_events(
    producer: AIOKafkaProducer,
    topic: str,
    partitions: int,
    run_id: str,
    events: dict[str, list[bytes]],
    stage: str,
) -> None:
    """A run's events onto the events topic: per message, or in record batches."""
    key = run_id.encode()
    if stage == "path_send":
        for v in events[run_id]:
            await producer.send(topic, v, key=key)
        await producer.flush()
        return
    box = Outbox(producer, {topic: partitions})
    for v in events[run_id]:
        box.add_keyed(topic, key, v)
    await box.delivered()


def reference_events(world: Path, ticks: int, partitions: int) -> dict[str, list[bytes]]:
    """The events the streamed runs ``warm`` (1 tick) and ``pipe`` (``ticks``) produce, computed
    in-process (the determinism tests hold the streamed runs to this reference)."""
    cache = world / f"events-{ticks}t-{partitions}p.json"  # written once, like the world
    if cache.exists():
        cached = orjson.loads(cache.read_bytes())
        return {run: [v.encode() for v in vs] for run, vs in cached.items()}
    index = WorldIndex.build(load_world(str(world)).catalog)
    events: dict[str, list[bytes]] = {}
    for run_id, n_ticks in (("warm", 1), ("pipe", ticks)):
        ref = LocalRun(index, run_id, 1, n_shards=partitions, start_minute=START_MINUTE)
        batch = [e for _ in range(n_ticks) for e in ref.step()]
        for e in batch:
            e.world = str(world)  # a streamed run names its world as it was started: the path
        events[run_id] = [encode(e) for e in batch]
    cache.write_bytes(orjson.dumps({run: [v.decode() for v in vs] for run, vs in events.items()}))
    return events


STAGES = ("e2e", "path", "path_send", "impact")


async def event_path(
    settings: Settings,
    stage: str,
    partitions: int,
    events: dict[str, list[bytes]],
    watch: SinkWatch,
) -> float:
    """Events/s from the first produce to the last row stored, after a warm-up run."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        linger_ms=5,
        acks="all",
        max_batch_size=16384 if stage == "path_send" else PIPELINE_BATCH,
    )
    await producer.start()
    topic = settings.topic(EVENTS.name)
    try:
        # warm-up: the sink (and impact) assigned, connected, tables made
        await produce_events(producer, topic, partitions, "warm", events, stage)
        await watch.wait_stored()
        if stage == "impact":  # impact has loaded its world and consumed the warm-up
            from streams.worker import app_id_for

            await watch.wait_stored(group=app_id_for(settings, ["impact"]))  # faust's group
        t0 = time.perf_counter()
        await produce_events(producer, topic, partitions, "pipe", events, stage)
        await watch.wait_stored()
        return len(events["pipe"]) / (time.perf_counter() - t0)
    finally:
        await producer.stop()


async def pipeline(
    bootstrap: str, n: int, ticks: int, partitions: int, stages: tuple[str, ...] = STAGES
) -> dict[str, float]:
    """Events/s into ClickHouse, next to a raw aiokafka passthrough of the same messages.

    The sink runs as deployed (deploy/docker-compose.yml): a worker process of its own
    (``worldfeed worker --roles sink``), with the embedded engine in it. A stage ends
    when the sink has committed the events topic to its end, which it does only after
    the rows are stored; the rows are counted once every worker has stopped.

    * end to end: from the start command to the run's last row, with clock, world and
      impact in a worker process; bounded by the world's compute (events/tick / s per
      tick);
    * event path (Kafka -> sink -> ClickHouse): the same events produced into a fresh
      events topic by this process, standing in for the world workers, from the first
      produce to the last row stored (the sink is started and warmed up first, as the
      passthrough's clients are). ``path`` produces them as the world shards do (record
      batches, streams/outbox.py), ``path_send`` with one ``send`` per message as the
      passthrough does, and ``impact`` as ``path`` with an impact worker consuming the
      topic alongside, as in a real run, on the same cores.
    """
    from storage.clickhouse import close_all, connect

    world = world_dir(n)
    # one engine path for every stage (a database each): a process may open one, and
    # this one opens it at the end, after the sink workers
    chdb = ROOT / ".local" / "bench" / f"chdb-{uuid.uuid4().hex[:6]}"
    logdir = ROOT / ".local" / "bench"
    result: dict[str, float] = {}
    roles_of = {"e2e": "clock,world,impact", "path": "", "path_send": "", "impact": "impact"}
    if "e2e" not in stages:
        events = reference_events(world, ticks, partitions)
        result["events"] = len(events["pipe"])
    for stage in stages:
        roles = roles_of[stage]
        settings = settings_for(
            bootstrap,
            world,
            partitions,
            clickhouse_dsn=f"chdb://{chdb}?database=bench_{stage}",
            sink_flush_s=0.25,
        )
        await ensure_topics(settings)
        procs = start_workers(settings, 1, "sink", logdir, name=f"sink-{stage}")
        if roles:
            procs += start_workers(settings, 1, roles, logdir)
        try:
            async with SinkWatch(settings, partitions, procs) as watch:
                if stage == "e2e":
                    await send_start(settings, "warm", 1)  # the worker loads the world
                    await read_ticks(settings, 1, 600, procs)
                    await watch.wait_stored()
                    t0 = time.perf_counter()
                    await send_start(settings, "pipe", ticks)
                    done = [
                        t
                        for t in await read_ticks(settings, ticks + 1, 600, procs)
                        if t.run_id == "pipe"
                    ]
                    await watch.wait_stored()
                    total = sum(t.events for t in done)
                    result["e2e_per_s"] = total / (time.perf_counter() - t0)
                    result["events"] = total
                    events = await read_events(settings, partitions)
                else:
                    result[f"{stage}_per_s"] = await event_path(
                        settings, stage, partitions, events, watch
                    )
        finally:
            stop_workers(procs)
    client = connect(f"chdb://{chdb}")
    try:
        for stage in stages:
            stored = rows_stored(client, f"bench_{stage}", "pipe")
            if stored != len(events["pipe"]):
                raise RuntimeError(f"{stage}: {stored} rows stored of {len(events['pipe'])}")
    finally:
        close_all()
        shutil.rmtree(chdb, ignore_errors=True)
    result["raw_per_s"] = await passthrough(bootstrap, events["pipe"], partitions)
    result["raw_batched_per_s"] = await passthrough(
        bootstrap, events["pipe"], partitions, PIPELINE_BATCH
    )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--ticks", type=int, default=8)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pipeline-npcs", type=int, default=100_000)
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--index-times", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help="pipeline stages to run (without e2e, the events come from the in-process run)",
    )
    args = parser.parse_args()
    # SIGTERM (timeout, kill) unwinds like Ctrl-C: the workers and the broker are stopped
    signal.signal(signal.SIGTERM, _interrupt)
    if args.index_times:
        world, n = Path(args.index_times[0]), int(args.index_times[1])
        cold, cached = index_load_times(world, n)
        print(orjson.dumps([cold, cached, peak_rss_mib(os.getpid())]).decode(), flush=True)
        return
    with broker() as bootstrap:
        out(
            f"broker {bootstrap}; {args.ticks} ticks from day 1 10:00; partitions "
            f"{args.partitions}, workers {args.workers}"
        )
        out(
            f"{'NPCs':>8} {'s/tick':>8} {'NPC-upd/s':>11} {'events/tick':>12} "
            f"{'first tick s':>12} {'peak MiB':>9} {'in-process s/tick':>18} {'Kafka/in-proc':>13} "
            f"{'start->tick 0 s':>15} {'index validated s':>17} {'index cached s':>14} "
            f"{'index build MiB':>15}"
        )
        rows = []
        for n in [int(x) for x in args.sizes.split(",") if x]:
            r = await world_throughput(bootstrap, n, args.ticks, args.partitions, args.workers)
            rows.append(r)
            out(
                f"{n:>8,} {r['s_per_tick']:>8.3f} {r['updates_per_s']:>11,.0f} "
                f"{r['events_per_tick']:>12,.0f} {r['first_tick_s']:>12.2f} "
                f"{r['peak_rss_mib']:>9.0f} {r['local_s_per_tick']:>18.3f} "
                f"{r['s_per_tick'] / r['local_s_per_tick']:>13.2f} "
                f"{r['start_to_first_s']:>15.2f} {_secs(r['index_cold_s']):>17} "
                f"{r['index_cached_s']:>14.2f} {r['index_build_peak_mib']:>15.0f}"
            )
        if len(rows) > 1:
            a, b = rows[0], rows[-1]
            out(
                f"scaling: {b['npcs'] / a['npcs']:.0f}x NPCs -> "
                f"{b['s_per_tick'] / a['s_per_tick']:.1f}x time per tick"
            )
        if not args.skip_pipeline:
            stages = tuple(args.stages.split(","))
            unknown = set(stages) - set(STAGES)
            if unknown:
                parser.error(f"unknown stages {sorted(unknown)}; choose from {STAGES}")
            p = await pipeline(bootstrap, args.pipeline_npcs, args.ticks, args.partitions, stages)
            raw, raw_b = p["raw_per_s"], p["raw_batched_per_s"]
            rows = [
                ("end to end: start command -> rows (world-bound)", "e2e_per_s", raw),
                ("events -> sink -> rows, one send per message", "path_send_per_s", raw),
                ("events -> sink -> rows, produced as the shards do", "path_per_s", raw_b),
                ("the same, impact consuming the topic alongside", "impact_per_s", raw_b),
            ]
            out(
                f"pipeline ({args.pipeline_npcs:,} NPCs, {p['events']:,.0f} events), raw aiokafka "
                f"produce->consume of the same messages: {raw:,.0f}/s with aiokafka's default "
                f"16 KiB batches, {raw_b:,.0f}/s with the pipeline's 512 KiB batches"
            )
            for label, key, base in rows:
                if key not in p:
                    continue
                out(
                    f"  {label:<52} {p[key]:>8,.0f} events/s  ratio {p[key] / base:.2f} "
                    f"(against raw, {'512 KiB' if base is raw_b else 'default'} batches)"
                )


if __name__ == "__main__":
    asyncio.run(main())
