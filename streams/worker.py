"""A stream worker: the faust app of :mod:`streams.app` with the agents of its roles.

A process runs the roles it is asked for: ``clock``, ``world`` (the shards), ``impact``,
``render``, ``deliberate`` (decisions with the LLM) and ``sink`` (the ClickHouse writer;
in embedded mode it runs inside the API process, because chDB allows one engine per
process). The processors import only :class:`~streams.app.Streams`; this module, which
imports every processor, is imported by none of them.
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from collections.abc import Callable, Iterable
from typing import Any

from streams import clock, deliberate, impact, render, sink, world
from streams.app import Streams, build_streams
from streams.lag import LagGauge
from worldfeed.settings import Settings

log = logging.getLogger(__name__)

REGISTER: dict[str, Callable[[Streams], None]] = {
    "clock": clock.register,
    "world": world.register,
    "impact": impact.register,
    "render": render.register,
    "deliberate": deliberate.register,
    "sink": sink.register,
}
ROLES = tuple(REGISTER)


def app_id_for(settings: Settings, roles: Iterable[str]) -> str:
    """The faust app id (and consumer group) of a worker with these roles."""
    return f"{settings.app_id}-{settings.topic_prefix.strip('.')}-{'-'.join(roles)}"


def create_streams(
    settings: Settings,
    roles: Iterable[str] = ROLES,
    app_id: str | None = None,
) -> Streams:
    """Build the faust app for the given roles and register their agents."""
    roles = tuple(roles)
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; known: {ROLES}")
    streams = build_streams(settings, app_id or app_id_for(settings, roles))
    for role in roles:
        REGISTER[role](streams)
    _dump_tasks_on_sigusr1(streams)
    _watch_lag(streams)
    return streams


def _watch_lag(streams: Streams) -> None:
    """Report the lag of the app's own consumer (its agents' topics) while it runs."""
    gauge = LagGauge(streams.app.conf.id)

    @streams.app.task  # type: ignore[untyped-decorator]  # faust: untyped
    async def watch_consumer_lag() -> None:
        await gauge.watch(streams.app.consumer)


def _dump_tasks_on_sigusr1(streams: Streams) -> None:
    """``kill -USR1 <worker>`` logs where every asyncio task of the worker is waiting.

    A stalled worker (an agent that waits for something that never comes) shows no error;
    its tasks' stacks say what it waits for.
    """

    def dump() -> None:
        out = io.StringIO()
        for task in asyncio.all_tasks():
            out.write(f"{task.get_name()}:\n")
            for where in _awaiting(task.get_coro()):
                out.write(f"    {where}\n")
        out.write(_producer_state(streams))
        log.warning("asyncio tasks on SIGUSR1:\n%s", out.getvalue())

    @streams.app.task  # type: ignore[untyped-decorator]  # faust: untyped
    async def install_task_dump() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)


def _producer_state(streams: Streams) -> str:
    """What the app's producer holds: the topics its metadata tracks, and each partition
    with queued batches and its leader (``None``: the metadata does not know the topic)."""
    producer = getattr(streams.app.producer, "_producer", None)
    if producer is None:
        return "producer: not started\n"
    client = producer.client
    lines = [f"producer: metadata tracks {sorted(client._topics)}"]  # noqa: SLF001 - diagnostics
    queued = producer._message_accumulator._batches  # noqa: SLF001 - diagnostics
    for tp, batches in queued.items():
        if batches:
            leader = client.cluster.leader_for_partition(tp)
            lines.append(f"    {tp.topic}[{tp.partition}]: {len(batches)} batches, leader {leader}")
    return "\n".join(lines) + "\n"


def _awaiting(coro: Any) -> list[str]:
    """The chain of coroutines (file:line function) a task's coroutine is waiting in."""
    chain = []
    while coro is not None:
        frame = (
            getattr(coro, "cr_frame", None)
            or getattr(coro, "ag_frame", None)
            or getattr(coro, "gi_frame", None)
        )
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
        if awaited is None and frame is None:
            chain.append(repr(coro)[:200])
        coro = awaited
    return chain
