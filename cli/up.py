"""``worldfeed up``: the whole product on one machine, without Docker.

Starts a Kafka broker (KRaft, Maven Central jars), the Triton server on CPU, a stream
worker and the API (with the embedded ClickHouse sink), starts a run, shows progress
(a line per simulated hour) and prints where to read the feed. Ctrl-C stops every
process it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from api.admin_token import usage as admin_usage
from bus.admin import ensure_topics
from bus.commands import send_command
from cli.top import UP_WORKER_METRICS_PORT
from sim.calendar import MINUTES_PER_HOUR, clock_text
from topics import DLQ, EVENTS, POSTS, RENDER_REQUESTS, TICKS
from topics.codec import DecodeError, decode
from topics.models import RunCommanded
from worldfeed.settings import ROOT, Settings

LOGS = ROOT / ".local" / "logs"


def say(text: str) -> None:
    """A progress line for the person at the terminal."""
    print(text, flush=True)


@dataclass
class Supervisor:
    """The processes ``up`` started, stopped in reverse order."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    scripts: list[list[str]] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a process in its own session, its output appended to ``.local/logs/<name>.log``."""
        LOGS.mkdir(parents=True, exist_ok=True)
        log = (LOGS / f"{name}.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603 - our own executable, fixed arguments
            args,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((name, proc))
        return proc

    def check(self) -> None:
        """Raise if a started process has exited."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {LOGS / name}.log")

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 20 s) and the services' scripts.

        Ctrl-C and SIGTERM are ignored while it stops: a second signal (``timeout`` and a
        parent both forwarding one) must not cut it short and leave Triton or Kafka up."""
        with _signals_ignored():
            self._stop()

    def _stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                say(f"stopping {name}")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for cmd in reversed(self.scripts):
            subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True)  # noqa: S603


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored inside (in the main thread; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _port(hostport: str) -> str:
    return hostport.rsplit(":", 1)[1]


def start_services(settings: Settings, sup: Supervisor) -> None:
    """Start Kafka and Triton (both scripts are idempotent) in parallel and wait for both.

    Several Triton URLs start one local server each, on the port of each (HTTP one below,
    metrics one above)."""
    kafka_port = _port(settings.kafka_bootstrap.split(",")[0])
    jobs = {"kafka": ["deploy/local/kafka.sh", "start", kafka_port]}
    urls = settings.triton_grpc_urls
    for url in urls:
        grpc = int(_port(url))
        name = "triton" if len(urls) == 1 else f"triton-{grpc}"
        jobs[name] = ["deploy/local/triton.sh", "start", str(grpc - 1), str(grpc), str(grpc + 1)]
    say("starting Kafka (KRaft) and Triton (CPU, SmolLM2-135M) ...")
    running = {
        n: subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603
        for n, c in jobs.items()
    }
    for name, proc in running.items():
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed to start:\n{out.decode(errors='replace')}")
        line = out.decode(errors="replace").strip().splitlines()[-1]
        say(f"  {line}")
        if "already running" in line:
            continue  # someone else started it; leave it running
        stop = list(jobs[name])
        stop[1] = "stop"
        sup.scripts.append(stop)


def wait_http(url: str, timeout_s: float, sup: Supervisor) -> None:
    """Wait until a URL answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sup.check()
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL
                if resp.status == 200:
                    return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f}s")


async def follow(
    settings: Settings, t0: float, sup: Supervisor, start: RunCommanded
) -> dict[str, object]:
    """Start the run and print progress until it is played and every render request posted."""
    run_id = start.run_id
    names = {settings.topic(s.name): s for s in (TICKS, RENDER_REQUESTS, POSTS)}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(t, p) for t in names for p in (consumer.partitions_for_topic(t) or {0})
        ]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        await send_command(settings, start)
        ticks = events = requests = 0
        posts: Counter[str] = Counter()
        sources: Counter[str] = Counter()
        first_post: float | None = None
        last_done_at: float | None = None
        per_hour = max(1, MINUTES_PER_HOUR // settings.step_minutes)
        while True:
            sup.check()
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                spec = names[tp.topic]
                for m in messages:
                    try:
                        msg = decode(spec, m.value)
                    except DecodeError:
                        continue
                    if msg.run_id != run_id:
                        continue
                    if spec is TICKS:
                        ticks += 1
                        events += msg.events
                        if msg.tick % per_hour == per_hour - 1 or msg.last:
                            end = msg.sim_minute + settings.step_minutes
                            say(
                                f"{clock_text(end)}  tick {msg.tick + 1:>4}  events {events:>5}"
                                f"  render requests {requests:>4}  posts {sum(posts.values()):>4} "
                                f"{dict(posts)}  state {msg.state_hash}"
                            )
                        if msg.last:
                            last_done_at = time.monotonic()
                    elif spec is RENDER_REQUESTS:
                        requests += msg.kind == "render_requested"
                    else:
                        posts[msg.channel] += 1
                        sources[msg.source] += 1
                        if first_post is None:
                            first_post = time.monotonic() - t0
                            say(
                                f"first post after {first_post:.1f}s: [{msg.channel}] "
                                f"{msg.author}: {msg.body[:100]}"
                            )
            if last_done_at is not None and sum(posts.values()) >= requests:
                break
            if last_done_at is not None and time.monotonic() - last_done_at > 1800:
                say("gave up waiting for the last posts after 30 minutes")
                break
        return {
            "ticks": ticks,
            "events": events,
            "requests": requests,
            "posts": dict(posts),
            "sources": dict(sources),
            "first_post_s": first_post,
        }
    finally:
        await consumer.stop()


def run_deliberation(settings: Settings) -> dict[str, int]:
    """The start command's deliberation fields from the settings and the catalog."""
    if settings.decide_budget == 0:
        return {}
    from catalog import load_catalog
    from sim.deliberate import deliberation

    budget, deadline = deliberation(
        load_catalog(settings.catalog_dir).decide,
        settings.decide_budget,
        settings.decide_deadline_ticks,
    )
    return {"decide_budget": budget, "decide_deadline": deadline}


def world_name(settings: Settings) -> str:
    """The run's world: 'town' for the starter world, else the catalog directory's path."""
    default = ROOT / "catalog" / "worlds" / "town"
    return "town" if settings.catalog_dir.resolve() == default else str(settings.catalog_dir)


def worker_metrics_port(settings: Settings) -> int:
    """The worker's /metrics port: the settings', else 9464 when free, else any free one."""
    if settings.metrics_port:
        return settings.metrics_port
    for port in (UP_WORKER_METRICS_PORT, 0):
        with socket.socket() as sock:
            try:
                sock.bind((settings.metrics_host, port))
            except OSError:
                continue
            chosen: int = sock.getsockname()[1]
            return chosen
    raise RuntimeError("no free port for the worker's /metrics")


def next_steps(settings: Settings, run_id: str, metrics_port: int | None = None) -> list[str]:
    """What a user needs once the run is up: where to look, how to act, how to tail topics."""
    api = f"http://{settings.api_host}:{settings.api_port}"
    bootstrap = settings.kafka_bootstrap.split(",")[0]
    top = ".venv/bin/worldfeed top"
    if metrics_port is not None and metrics_port != (
        settings.metrics_port or UP_WORKER_METRICS_PORT
    ):
        worker = f"http://{settings.metrics_host}:{metrics_port}/metrics"
        top += f" --target {api}/metrics --target {worker}"
    return [
        "",
        f"web UI:         {api}/?run_id={run_id}   (dashboard {api}/ui/run?run_id={run_id})",
        f"API docs:       {api}/docs",
        f"read the feed:  curl '{api}/feed?channel=feed&run_id={run_id}'",
        f"news:           curl '{api}/feed?channel=news&run_id={run_id}'",
        f"admin routes:   {admin_usage(settings)}",
        "query it:       .venv/bin/worldfeed sql "  # noqa: S608 - text for the user, not run
        f"\"SELECT channel, count() FROM posts WHERE run_id = '{run_id}' GROUP BY channel\"",
        f"tail a topic:   kcat -b {bootstrap} -t {settings.topic(POSTS.name)} -C -o end"
        f"   (also {', '.join(settings.topic(s.name) for s in (EVENTS, TICKS, DLQ))})",
        f"metrics:        {api}/metrics (API and sink), the worker's on port "
        f"{metrics_port or settings.metrics_port or UP_WORKER_METRICS_PORT}; live: {top}",
    ]


def up(
    settings: Settings,
    days: float,
    seed: int | None,
    run_id: str | None,
    exit_when_done: bool,
    start_minute: int = 0,
) -> int:
    """Run the whole product; return the process exit code."""
    t0 = time.monotonic()
    seed = settings.run_seed if seed is None else seed
    run_id = run_id or f"run-{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    sup = Supervisor()
    env = dict(os.environ)
    exe = str(Path(sys.executable).parent / "worldfeed")

    def terminated(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (kill, a service manager): stop everything, as Ctrl-C

    signal.signal(signal.SIGTERM, terminated)
    try:
        start_services(settings, sup)
        asyncio.run(ensure_topics(settings))
        worker = [exe, "worker"]
        if settings.decide_budget:  # runs deliberate: a worker answers their decisions
            worker += ["--roles", "clock,world,impact,render,deliberate"]
        metrics_port = worker_metrics_port(settings)
        sup.spawn("worker", worker, {**env, "WORLDFEED_METRICS_PORT": str(metrics_port)})
        sup.spawn("api", [exe, "api"], env)
        api = f"http://{settings.api_host}:{settings.api_port}"
        wait_http(f"{api}/health", 120, sup)
        say(f"API up at {api} (docs {api}/docs); playing {days:g} day(s) of run {run_id} ...")
        summary = asyncio.run(
            follow(
                settings,
                t0,
                sup,
                RunCommanded(
                    command="start",
                    run_id=run_id,
                    seed=seed,
                    days=days,
                    speed=settings.speed,
                    step_minutes=settings.step_minutes,
                    world=world_name(settings),
                    start_minute=start_minute,
                    **run_deliberation(settings),
                ),
            )
        )
        say(
            f"\nrun {run_id}: {summary['ticks']} ticks, {summary['events']} events, "
            f"{summary['requests']} render requests, posts per channel {summary['posts']}, "
            f"by source {summary['sources']}; first post after {summary['first_post_s']:.1f}s; "
            f"total {time.monotonic() - t0:.1f}s"
        )
        for line in next_steps(settings, run_id, metrics_port):
            say(line)
        if not exit_when_done:
            say("running; press Ctrl-C to stop everything")
            while True:
                sup.check()
                time.sleep(1)
        return 0
    except KeyboardInterrupt:
        say("\ninterrupted")
        return 130
    except RuntimeError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        sup.stop()
