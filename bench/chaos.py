"""Chaos rounds on a real multi-worker run: one fault per round, invariants after each.

    python -m bench.chaos --rounds 50            # make chaos (ROUNDS=50)
    python -m bench.chaos --rounds 6 --ticks 32 --triton-down-s 10

Starts a 3-broker KRaft cluster (deploy/local/kafka-cluster.sh: replication factor 3,
min.insync.replicas 2), Triton (deploy/local/triton.sh), ``--workers`` stream workers
(clock, world, impact, render) and the API with its embedded ClickHouse sink, all on
free loopback ports. Each round starts a run of ``--ticks`` ticks, applies one fault a
third of the way in, and waits for the run to finish. The faults, in turn:

    kill_worker   kill -9 a random worker (a replacement is started at once)
    term_worker   SIGTERM a random worker (it leaves; replaced after the round)
    add_worker    start one more worker (the oldest leaves after the round)
    kill_broker   kill -9 the broker leading the clock's inbox (restarted after the round)
    stop_triton   stop Triton for --triton-down-s seconds, then start it again
    restart_api   SIGTERM the API with its embedded sink mid-run, start it again

After each round: every tick's state hash equals the in-process reference
(sim.local.LocalRun) and the events are the reference's; the render requests are the
reference's (``sim.impact.book_of`` over its events: the impact stage's stories survive
a worker leaving, so later references still re-score them); every render request became
exactly one post, counted in raw ClickHouse rows (not FINAL), except the requests
dead-lettered as over their author's daily quota; ticks and events are stored once
(raw rows: an event's re-scores are rows of their own, with a higher ``score_version``,
until a merge keeps the highest, so an event's row is counted once per version); and the
dead-letter topic holds nothing new that was not sent there on
purpose (over quota, or an LLM answer that failed validation and fell back to the
template). The round's recovery time is measured from the end of the fault until the
run completed a new tick, every render request made before then was answered, and the
API answered /health.

Prints one line per round and, at the end, rounds survived and recovery times per fault
kind. Everything it starts is stopped on exit, Ctrl-C, SIGTERM or ``--timeout-s``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sim.impact import book_of
from sim.local import LocalRun
from sim.world import load_world
from tests.fixtures.kafka import KafkaCluster, free_port_range
from tests.fixtures.processes import EXE, Procs, start_run
from tests.fixtures.triton import _free_ports
from topics import CLOCK_INBOX, DLQ, EVENTS, POSTS, RENDER_REQUESTS, TICKS, TopicSpec
from topics.codec import DecodeError, decode
from worldfeed.settings import ROOT, Settings

FAULTS = ("kill_worker", "term_worker", "add_worker", "kill_broker", "stop_triton", "restart_api")
ROLES = "clock,world,impact,render"
TICKS_PER_DAY = 96
TRITON = ROOT / "deploy" / "local" / "triton.sh"
# dead letters sent on purpose: a request over its author's daily quota, and an LLM
# answer that failed validation (the post is written from the template instead)
ON_PURPOSE = ("rate limited:", "fell back to template: invalid:")


class Stop(BaseException):
    """SIGTERM or the overall timeout: stop everything that was started."""


@dataclass
class Config:
    """What a chaos session does."""

    rounds: int = 50
    faults: tuple[str, ...] = FAULTS
    workers: int = 2
    partitions: int = 4
    # 36 ticks, 32-token posts and 15 minutes a round: sized for a 2-core machine whose CPU
    # LLM writes a post in tens of seconds; after a rebalance the requests in flight are
    # rendered again by their new owner, so a round can wait minutes for its last posts
    ticks: int = 36
    speed: float = 3000.0  # 0.3 s of wall time per 15-minute tick
    triton_down_s: float = 60.0
    round_timeout_s: float = 900.0
    seed: int = 1
    kafka_cluster: int | None = None  # base port of a running cluster to reuse
    triton_grpc: str | None = None  # a running Triton to reuse (then no stop_triton)
    logdir: Path = ROOT / ".local" / "chaos"
    log_level: str = "INFO"
    llm_max_tokens: int = 32


@dataclass
class Round:
    """One round's outcome."""

    number: int
    fault: str
    run_id: str
    detail: str = ""
    recover_s: float | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def survived(self) -> bool:
        """Every invariant held."""
        return not self.problems


async def read_all(settings: Settings, spec: TopicSpec) -> list[Any]:
    """Every message of a topic, from the beginning to its current end (all partitions)."""
    return [value for _, _, value in await read_located(settings, spec)]


async def read_located(settings: Settings, spec: TopicSpec) -> list[tuple[int, int, Any]]:
    """(partition, offset, decoded value or None) of every message of a topic, from the
    beginning to its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        request_timeout_ms=20_000,
    )
    await consumer.start()
    try:
        name = settings.topic(spec.name)
        parts = [
            TopicPartition(name, p) for p in range(spec.partition_count(settings.world_partitions))
        ]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        for tp in parts:
            consumer.seek(tp, starts[tp])
        out: list[tuple[int, int, Any]] = []
        left = {tp for tp in parts if ends[tp] > starts[tp]}
        while left:
            for tp, messages in (await consumer.getmany(*left, timeout_ms=500)).items():
                for m in messages:
                    if m.offset < ends[tp]:
                        try:
                            value = decode(spec, m.value)
                        except DecodeError:
                            value = None  # garbage on a topic: the stage's DLQ names it
                        out.append((tp.partition, m.offset, value))
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
        return out
    finally:
        await consumer.stop()


class Rig:
    """The services of a chaos session; :meth:`close` stops whatever it started."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        cfg.logdir.mkdir(parents=True, exist_ok=True)
        self.procs = Procs(cfg.logdir)
        self.rng = random.Random(cfg.seed)
        self.own_cluster = cfg.kafka_cluster is None
        self.cluster = KafkaCluster(cfg.kafka_cluster or free_port_range(6))
        ports = _free_ports(3)
        self.triton_ports = None if cfg.triton_grpc else (ports[0], ports[1], ports[2])
        tag = f"{int(time.time())}-{os.getpid()}"
        self.settings = Settings(
            env="dev",
            log_level=cfg.log_level,
            kafka_bootstrap=self.cluster.bootstrap,
            kafka_replication=3,
            topic_prefix=f"chaos{tag}.",
            app_id=f"wf-chaos-{tag}",
            world_partitions=cfg.partitions,
            clickhouse_dsn=f"chdb://{cfg.logdir / f'chdb-{tag}'}",
            triton_grpc_url=cfg.triton_grpc or f"127.0.0.1:{ports[1]}",
            tick_timeout_s=3.0,
            llm_outage_s=max(600.0, cfg.triton_down_s * 5),
            # the faults are the subject, not the prose: short posts keep Triton on a
            # shared CPU from being the bottleneck (a 1,000-token post took ~45 s here)
            llm_max_tokens=cfg.llm_max_tokens,
            llm_timeout_s=120.0,
            llm_concurrency=2,
            sink_flush_s=0.3,
            api_port=_free_ports(1)[0],
            state_dir=cfg.logdir / f"faust-{tag}",
        )
        self.workers: list[str] = []
        self.n_started = 0
        self.down_broker: int | None = None
        self.triton_up = False
        self.dlq_seen = 0

    # ------------------------------------------------------------------ services

    def start(self) -> None:
        """Start the cluster, Triton, the workers and the API."""
        say(f"kafka cluster on base port {self.cluster.base}; logs in {self.cfg.logdir}")
        self.cluster.start()
        if self.triton_ports is not None:
            self.triton("start")
        subprocess.run([EXE, "topics"], env=self.env(), check=True, timeout=120)  # noqa: S603
        self.start_api()
        for _ in range(self.cfg.workers):
            self.add_worker()

    def env(self) -> dict[str, str]:
        """The environment of a worldfeed subprocess."""
        return {**os.environ, **self.settings.to_env(), "PYTHONPATH": str(ROOT)}

    def triton(self, what: str) -> None:
        """``deploy/local/triton.sh start|stop`` on our ports."""
        if self.triton_ports is None:
            raise RuntimeError("Triton was not started by this session")
        http, grpc, metrics = (str(p) for p in self.triton_ports)
        args = [str(TRITON), what, http, grpc] + ([metrics] if what == "start" else [])
        proc = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
        if proc.returncode != 0:
            raise RuntimeError(f"triton {what} failed:\n{proc.stdout}\n{proc.stderr}")
        self.triton_up = what == "start"

    def add_worker(self) -> str:
        """Start one more stream worker."""
        name = f"worker{self.n_started}"
        self.n_started += 1
        self.procs.worker(name, self.settings, ROLES)
        self.workers.append(name)
        return name

    def remove_worker(self, name: str, sig: int) -> None:
        """Signal one worker and wait for it to exit."""
        self.procs.kill(name, sig)
        self.procs.running = [(n, p) for n, p in self.procs.running if n != name]
        self.workers.remove(name)

    def start_api(self) -> None:
        """The API with its embedded sink; returns once /health answers 200."""
        self.procs.start("api", self.settings, "api")
        self.wait_health(120)

    def stop_api(self) -> None:
        """SIGTERM the API (its sink flushes and stops) and wait for it."""
        self.procs.kill("api", signal.SIGTERM)
        self.procs.running = [(n, p) for n, p in self.procs.running if n != "api"]

    def health(self) -> bool:
        """Whether the API answers /health with 200."""
        url = f"http://127.0.0.1:{self.settings.api_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_health(self, timeout_s: float) -> None:
        """Wait until /health answers 200."""
        deadline = time.monotonic() + timeout_s
        while not self.health():
            self.procs.assert_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"the API did not become healthy in {timeout_s:.0f}s")
            time.sleep(0.3)

    def stats(self, run_id: str) -> dict[str, int]:
        """Rows per table for a run, as the API counts them (FINAL)."""
        url = f"http://127.0.0.1:{self.settings.api_port}/stats?run_id={run_id}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return dict(json.loads(resp.read())["tables"])

    def raw_counts(self, run_id: str) -> dict[str, list[int]]:
        """Raw rows (count, distinct ids, distinct row versions) per table for a run, read
        with the API stopped
        (chDB: one engine per process, so a short subprocess of our own)."""
        dsn = self.settings.clickhouse_dsn
        out = subprocess.run(  # noqa: S603 - our own module
            [sys.executable, "-m", "bench.chaos", "--raw-counts", dsn, run_id],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    async def broker_to_kill(self) -> int:
        """The broker that leads the clock inbox (the clock's only partition)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([self.settings.topic(CLOCK_INBOX.name)])
            leader = int(described[0]["partitions"][0]["leader"])
        finally:
            await admin.close()
        return leader if leader in (1, 2, 3) else self.rng.choice((1, 2, 3))

    async def wait_replicated(self, timeout_s: float = 180) -> None:
        """Wait until every partition of the session's topics has all 3 replicas in sync."""
        deadline = time.monotonic() + timeout_s
        prefixes = (self.settings.topic_prefix, self.settings.app_id)
        while True:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
            try:
                await admin.start()
                names = [t for t in await admin.list_topics() if t.startswith(prefixes)]
                short = [
                    (t["topic"], p["partition"])
                    for t in await admin.describe_topics(names)
                    for p in t["partitions"]
                    if len(p["isr"]) < 3
                ]
            except Exception as exc:  # noqa: BLE001 - a cluster coming back: ask again
                short = [("?", str(exc))]
            finally:
                await admin.close()
            if not short:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"partitions still under-replicated: {short[:5]}")
            await asyncio.sleep(1.0)

    def close(self) -> None:
        """Stop everything this session started."""
        self.procs.stop_all()
        if self.triton_ports is not None:
            with contextlib.suppress(Exception):
                self.triton("stop")
        if self.own_cluster:
            self.cluster.stop()
        elif self.down_broker is not None:
            self.cluster.start_node(self.down_broker)


def say(text: str) -> None:
    """One line of progress."""
    print(text, flush=True)


async def ticks_of(settings: Settings, run_id: str) -> dict[int, Any]:
    """The completed ticks of a run so far, by tick (checking re-reports agree)."""
    out: dict[int, Any] = {}
    for t in await read_all(settings, TICKS):
        if t is None or t.run_id != run_id:
            continue
        if t.tick in out and out[t.tick].state_hash != t.state_hash:
            raise AssertionError(f"tick {t.tick} reported with two hashes")
        out[t.tick] = t
    return out


async def answered(settings: Settings, run_id: str) -> tuple[set[str], set[str], set[str]]:
    """Render requests of a run, those posted, and those dead-lettered on purpose."""
    requests = {
        r.request_id for r in await read_all(settings, RENDER_REQUESTS) if r and r.run_id == run_id
    }
    posted = {p.request_id for p in await read_all(settings, POSTS) if p and p.run_id == run_id}
    limited = set()
    for letter in await read_all(settings, DLQ):
        if (
            letter is None
            or letter.stage != "render"
            or not letter.reason.startswith("rate limited")
        ):
            continue
        with contextlib.suppress(ValueError, TypeError, KeyError):
            value = json.loads(letter.value)
            if value.get("run_id") == run_id:
                limited.add(value["request_id"])
    return requests, posted, limited


async def where_unanswered(settings: Settings, missing: set[str]) -> str:
    """Where each unanswered render request is (partition@offset) and the offsets the
    workers' consumer groups committed on those partitions: a request below its group's
    committed offset was skipped, one above it is still in flight (or stuck)."""
    located = {
        v.request_id: (p, o)
        for p, o, v in await read_located(settings, RENDER_REQUESTS)
        if v is not None and getattr(v, "request_id", None) in missing
    }
    parts = sorted({p for p, _ in located.values()})
    topic = settings.topic(RENDER_REQUESTS.name)
    committed: list[str] = []
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        for group, *_ in await admin.list_consumer_groups():
            if not str(group).startswith(settings.app_id):
                continue
            offsets = await admin.list_consumer_group_offsets(group)
            for tp, meta in sorted(offsets.items()):
                if tp.topic == topic and tp.partition in parts:
                    committed.append(f"{group} committed [{tp.partition}]@{meta.offset}")
    finally:
        await admin.close()
    where = [f"{rid} at [{p}]@{o}" for rid, (p, o) in sorted(located.items())]
    return "; ".join(where + committed) or "not found on the topic"


REQUESTS_WAIT_S = 120.0  # for the impact stage to catch up once every event is logged


async def wait_for(
    what: str, check: Any, timeout_s: float, rig: Rig, every_s: float = 0.5
) -> float:
    """Poll ``await check()`` until true; return when (monotonic); fail after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        rig.procs.assert_alive()
        if await check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(every_s)


async def apply_fault(rig: Rig, fault: str) -> str:
    """Apply one fault; return what was done. Returns once the fault is over."""
    if fault == "kill_worker":
        victim = rig.rng.choice(rig.workers)
        rig.remove_worker(victim, signal.SIGKILL)
        return f"killed {victim}, started {rig.add_worker()}"
    if fault == "term_worker":
        victim = rig.rng.choice(rig.workers)
        rig.remove_worker(victim, signal.SIGTERM)
        return f"stopped {victim}"
    if fault == "add_worker":
        return f"added {rig.add_worker()}"
    if fault == "kill_broker":
        node = await rig.broker_to_kill()
        rig.cluster.kill(node)
        rig.down_broker = node
        return f"killed broker {node}"
    if fault == "stop_triton":
        rig.triton("stop")
        await asyncio.sleep(rig.cfg.triton_down_s)  # the outage itself, not a wait for a state
        rig.triton("start")
        return f"triton down {rig.cfg.triton_down_s:.0f}s"
    if fault == "restart_api":
        rig.stop_api()
        rig.start_api()
        return "api restarted"
    raise ValueError(f"unknown fault {fault!r}")


async def after_round(rig: Rig) -> None:
    """Back to the configured topology: the broker up and in sync, the worker count."""
    if rig.down_broker is not None:
        rig.cluster.start_node(rig.down_broker)
        rig.down_broker = None
        await rig.wait_replicated()
    while len(rig.workers) < rig.cfg.workers:
        rig.add_worker()
    while len(rig.workers) > rig.cfg.workers:
        rig.remove_worker(rig.workers[0], signal.SIGTERM)


async def play_round(rig: Rig, number: int, fault: str) -> Round:
    """One run with one fault; the invariants checked after it."""
    settings = rig.settings
    cfg = rig.cfg
    t_start = time.monotonic()
    run_id = f"chaos-{number}"
    seed = cfg.seed * 1000 + number
    rnd = Round(number, fault, run_id)
    n = cfg.ticks
    reference = LocalRun(load_world("town"), run_id, seed)
    for _ in range(n):
        reference.step()

    await start_run(settings, run_id, seed, days=n / TICKS_PER_DAY, speed=cfg.speed)

    async def reached(k: int) -> bool:
        return len(await ticks_of(settings, run_id)) >= k

    await wait_for(f"tick {n // 3} of {run_id}", lambda: reached(n // 3), 180, rig)
    rnd.detail = await apply_fault(rig, fault)
    t_fault = time.monotonic()
    at_fault = await ticks_of(settings, run_id)
    requests_at_fault, _, _ = await answered(settings, run_id)

    async def recovered() -> bool:
        ticks = await ticks_of(settings, run_id)
        progressed = len(ticks) > len(at_fault) or len(ticks) == n
        if not progressed:
            return False
        _, posted, limited = await answered(settings, run_id)
        return requests_at_fault <= posted | limited and rig.health()

    t_ok = await wait_for(f"{run_id} to recover from {fault}", recovered, cfg.round_timeout_s, rig)
    rnd.recover_s = t_ok - t_fault

    ticks = await ticks_of(settings, run_id)
    await wait_for(f"the last tick of {run_id}", lambda: reached(n), cfg.round_timeout_s, rig, 1.0)
    ticks = await ticks_of(settings, run_id)
    if sorted(ticks) != list(range(n)):
        rnd.problems.append(f"ticks {sorted(set(range(n)) - set(ticks))} missing")
    hashes = [ticks[i].state_hash for i in sorted(ticks)]
    if hashes != reference.hashes:
        first = next(
            i for i, (a, b) in enumerate(zip(hashes, reference.hashes, strict=False)) if a != b
        )
        rnd.problems.append(f"state hash differs from the reference from tick {first}")
    events = {e.event_id for e in await read_all(settings, EVENTS) if e and e.run_id == run_id}
    if events != {e.event_id for e in reference.events}:
        rnd.problems.append(
            f"events differ from the reference ({len(events)} vs {len(reference.events)})"
        )

    # the impact stage's stories outlive a worker: the render requests are the reference's
    # (a new owner of the events partition that forgot the stories before it would not
    # re-score them when later events refer to them)
    want = {r.request_id for r in book_of(reference.index, reference.events)[1]}

    async def requested() -> bool:
        made, _, _ = await answered(settings, run_id)
        return made == want

    try:
        await wait_for(f"the render requests of {run_id}", requested, REQUESTS_WAIT_S, rig, 1.0)
    except AssertionError:
        made, _, _ = await answered(settings, run_id)
        rnd.problems.append(
            f"render requests differ from the reference: {len(made - want)} not in it, "
            f"{len(want - made)} missing"
        )

    async def all_answered() -> bool:
        requests, posted, limited = await answered(settings, run_id)
        return requests <= posted | limited

    try:
        await wait_for(
            f"every render request of {run_id} answered",
            all_answered,
            cfg.round_timeout_s,
            rig,
            1.0,
        )
    except AssertionError as exc:  # say where the unanswered requests are, for the logs
        requests, posted, limited = await answered(settings, run_id)
        raise AssertionError(
            f"{exc}: {await where_unanswered(settings, requests - posted - limited)}"
        ) from None
    requests, posted, limited = await answered(settings, run_id)
    if posted & limited:
        rnd.problems.append(f"{len(posted & limited)} requests both posted and rate limited")
    expected = {"posts": len(requests - limited), "events": len(events), "ticks": n}

    async def stored() -> bool:
        counts = await asyncio.to_thread(rig.stats, run_id)
        return all(counts.get(t, 0) >= k for t, k in expected.items())

    await wait_for(f"{run_id} stored", stored, cfg.round_timeout_s, rig, 1.0)
    rig.stop_api()
    try:
        raw = rig.raw_counts(run_id)
    finally:
        rig.start_api()
    for table, k in expected.items():
        rows, distinct, versions = raw[table]
        if rows != versions or distinct != k:
            rnd.problems.append(
                f"{table}: {rows} raw rows, {distinct} distinct, {versions} distinct versions, "
                f"expected {k} (a row stored twice: raw rows above versions)"
            )

    letters = await read_all(settings, DLQ)
    new, rig.dlq_seen = letters[rig.dlq_seen :], len(letters)
    for letter in new:
        if letter is None or not (
            letter.stage == "render" and letter.reason.startswith(ON_PURPOSE)
        ):
            what = "unreadable" if letter is None else f"{letter.stage}: {letter.reason[:160]}"
            rnd.problems.append(f"dead letter not sent on purpose: {what}")
    await after_round(rig)
    rnd.seconds = time.monotonic() - t_start
    return rnd


def summary(rounds: list[Round]) -> str:
    """Rounds survived, and recovery times per fault kind."""
    lines = [f"rounds survived: {sum(r.survived for r in rounds)} of {len(rounds)}"]
    by_kind: dict[str, list[Round]] = defaultdict(list)
    for r in rounds:
        by_kind[r.fault].append(r)
    for kind in FAULTS:
        rs = by_kind.get(kind)
        if not rs:
            continue
        times = [r.recover_s for r in rs if r.recover_s is not None]
        span = (
            f"recover median {statistics.median(times):.1f}s, max {max(times):.1f}s"
            if times
            else "no recovery"
        )
        lines.append(f"  {kind:<12} {sum(r.survived for r in rs)}/{len(rs)} survived, {span}")
    return "\n".join(lines)


async def chaos(rig: Rig, rounds: list[Round]) -> None:
    """Start the services and play the rounds, appending each to ``rounds``; stops at the
    first round that could not finish (the caller closes ``rig``)."""
    cfg = rig.cfg
    await asyncio.to_thread(rig.start)
    faults = [f for f in cfg.faults if f != "stop_triton" or rig.triton_ports is not None]
    for i in range(cfg.rounds):
        fault = faults[i % len(faults)]
        try:
            rnd = await play_round(rig, i, fault)
        except Exception as exc:  # noqa: BLE001 - a round that could not finish is a failed round
            rounds.append(Round(i, fault, f"chaos-{i}", problems=[str(exc)[:500]]))
            say(f"round {i:>3} {fault:<12} FAILED: {exc}")
            return  # the pipeline is stuck or a process died: later rounds would not tell
        rounds.append(rnd)
        state = "ok" if rnd.survived else "FAILED: " + "; ".join(rnd.problems)
        say(
            f"round {i:>3} {fault:<12} {rnd.detail:<32} recovered in {rnd.recover_s or 0:5.1f}s "
            f"(round {rnd.seconds:5.1f}s) {state}"
        )


def raw_counts(dsn: str, run_id: str) -> dict[str, list[int]]:
    """(raw rows, distinct ids, distinct row versions) of a run's posts, events and ticks:
    no FINAL. An event re-scored has a row per score (``score_version``, the table's
    ReplacingMergeTree version) until a merge; a row stored twice has the same version."""
    from storage import connect, database_of

    client = connect(dsn)
    db = database_of(dsn)
    keys = {
        "posts": ("post_id", "post_id"),
        "events": ("event_id", "event_id, score_version"),
        "ticks": ("tick", "tick"),
    }
    out = {}
    for table, (key, version) in keys.items():
        row = client.query(
            f"SELECT count(), uniqExact({key}), uniqExact({version}) FROM {db}.{table} "  # noqa: S608 - fixed identifiers
            "WHERE run_id = {r:String}",
            parameters={"r": run_id},
        ).result_rows[0]
        out[table] = [int(row[0]), int(row[1]), int(row[2])]
    return out


def main(argv: list[str] | None = None) -> int:
    """The CLI."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = Config()
    parser.add_argument("--rounds", type=int, default=d.rounds)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated fault kinds")
    parser.add_argument("--workers", type=int, default=d.workers)
    parser.add_argument("--partitions", type=int, default=d.partitions)
    parser.add_argument("--ticks", type=int, default=d.ticks, help="ticks per round's run")
    parser.add_argument("--speed", type=float, default=d.speed)
    parser.add_argument("--triton-down-s", type=float, default=d.triton_down_s)
    parser.add_argument("--round-timeout-s", type=float, default=d.round_timeout_s)
    parser.add_argument("--timeout-s", type=float, default=6 * 3600.0, help="the whole session")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--kafka-cluster", type=int, help="base port of a running cluster")
    parser.add_argument("--triton", help="gRPC host:port of a running Triton (no stop_triton)")
    parser.add_argument("--logdir", type=Path, default=d.logdir)
    parser.add_argument("--log-level", default=d.log_level, help="of the workers and the API")
    parser.add_argument(
        "--llm-max-tokens", type=int, default=d.llm_max_tokens, help="cap on a post's tokens"
    )
    parser.add_argument("--raw-counts", nargs=2, metavar=("DSN", "RUN_ID"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_counts:
        print(json.dumps(raw_counts(*args.raw_counts)))
        return 0
    faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    cfg = Config(
        rounds=args.rounds,
        faults=faults,
        workers=args.workers,
        partitions=args.partitions,
        ticks=args.ticks,
        speed=args.speed,
        triton_down_s=args.triton_down_s,
        round_timeout_s=args.round_timeout_s,
        seed=args.seed,
        kafka_cluster=args.kafka_cluster,
        triton_grpc=args.triton,
        logdir=args.logdir,
        log_level=args.log_level,
        llm_max_tokens=args.llm_max_tokens,
    )

    def terminated(signum: int, frame: object) -> None:
        raise Stop(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    rig = Rig(cfg)
    rounds: list[Round] = []
    try:
        asyncio.run(asyncio.wait_for(chaos(rig, rounds), args.timeout_s))
    except (Stop, KeyboardInterrupt, TimeoutError) as exc:
        say(f"stopped: {type(exc).__name__} {exc}")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stopping: let the cleanup finish
        rig.close()
    say(summary(rounds))
    return 0 if len(rounds) == cfg.rounds and all(r.survived for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
