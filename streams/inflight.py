"""Work in flight per message key: one run per key, cancelled when its partition moves.

After a rebalance, faust re-delivers every message whose offset was not committed to the
worker that owns its partition now, this one included. A render request can take minutes
on a CPU LLM, so each rebalance used to start the same request again next to the run
still in flight (another actor of the same worker), while the previous owner went on
rendering what was no longer its own. A live rebalance multiplied the LLM load by the
number of copies, and requests were dropped over the LLM budget (a chaos round of issue
13, on a loaded machine). With :class:`InFlight`, a re-delivered message joins the run
already in flight for its key, and the runs of partitions assigned elsewhere are
cancelled: their new owner does them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from streams.app import Streams
from topics import TopicSpec

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Run(Generic[T]):
    partition: int
    task: asyncio.Future[T]
    waiters: int = 0


@dataclass
class InFlight(Generic[T]):
    """The runs in flight, by key (a message key: all its copies are on one partition)."""

    _runs: dict[str, _Run[T]] = field(default_factory=dict)
    moved: int = 0  # runs cancelled because their partition moved

    def __len__(self) -> int:
        return len(self._runs)

    async def run(self, key: str, partition: int, work: Callable[[], Awaitable[T]]) -> T | None:
        """The result of ``work`` for ``key``, started now or joined if already in flight.

        None when the run was cancelled because its partition was assigned elsewhere (the
        new owner answers the message). A caller cancelled itself (the worker stopping)
        cancels the run when nobody else waits for it.
        """
        entry = self._runs.get(key)
        if entry is None:
            entry = self._start(key, partition, work)
        entry.waiters += 1
        try:
            await asyncio.wait({entry.task})
        except asyncio.CancelledError:
            if entry.waiters == 1:
                entry.task.cancel()
            raise
        finally:
            entry.waiters -= 1
        if entry.task.cancelled():
            return None
        return entry.task.result()

    def keep_only(self, partitions: Collection[int]) -> int:
        """Cancel the runs of partitions not in ``partitions``; how many were cancelled."""
        gone = [run for run in self._runs.values() if run.partition not in partitions]
        for run in gone:
            run.task.cancel()
        self.moved += len(gone)
        return len(gone)

    def _start(self, key: str, partition: int, work: Callable[[], Awaitable[T]]) -> _Run[T]:
        run = _Run(partition, asyncio.ensure_future(work()))
        self._runs[key] = run

        def forget(_task: asyncio.Future[T]) -> None:
            if self._runs.get(key) is run:
                del self._runs[key]

        run.task.add_done_callback(forget)
        return run


def in_flight_on(streams: Streams, spec: TopicSpec, stage: str) -> InFlight[None]:
    """The runs in flight of a stage that consumes ``spec``: on every assignment, those of
    its partitions this worker no longer holds are cancelled (their new owner gets them
    again, re-delivered from the committed offset)."""
    inflight: InFlight[None] = InFlight()
    source = streams.settings.topic(spec.name)

    @streams.app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types only sender/signal
    async def cancel_moved(app: Any, assigned: Any, **kwargs: Any) -> None:
        moved = inflight.keep_only({tp.partition for tp in assigned if tp.topic == source})
        if moved:
            log.info("%s: %d request(s) in flight moved to another worker", stage, moved)

    return inflight
