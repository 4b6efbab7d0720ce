"""A short-lived cache of response bodies with single-flight loading.

:class:`PageCache` serves ``/feed`` pages. Readers may see a page up to ``ttl_s``
seconds old (the default is one second): a post stored since is missing from a cached
page until it expires. In exchange, the many readers of one tab of one run share one
query per ``ttl_s``, and concurrent requests for a page that is not cached share one
query too (single flight: the first starts the load, the others await its result)
instead of queueing the same query on the engine.

Every page, cursor pages included, gets the same short TTL: posts reach ClickHouse out
of tick order (rendering takes a while), so a page behind a cursor can still gain a
late post, and a longer TTL would hide it for longer.

Bodies are stored serialised (``bytes``), so a hit costs no query, no validation and no
JSON encoding. Loads that fail are not cached; their error goes to every waiter. The
cache holds at most ``max_bytes`` of bodies and keys: a page's size follows its filters
(a long ``author`` or ``cursor``, up to 500 posts of up to 4,000 characters), so a bound
by entries alone would let a few thousand large pages take gigabytes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["hit", "shared", "miss"]
# per-entry bookkeeping beyond the body and the key: the dict slot, the tuple, the float
ENTRY_OVERHEAD = 200


@dataclass
class CacheStats:
    """Counts of how requests were served."""

    hit: int = 0
    shared: int = 0
    miss: int = 0


class PageCache:
    """TTL cache of ``bytes`` keyed by a normalised request, with single-flight loads.

    ``ttl_s <= 0`` disables caching (every request loads; concurrent identical ones
    still share a load). At most ``max_entries`` bodies and ``max_bytes`` of bodies,
    keys and bookkeeping are kept; expired entries go first, then the oldest. A body
    larger than ``max_bytes`` is served but not kept. ``clock`` is the monotonic time
    source (tests pass their own). Use from one event loop.
    """

    def __init__(
        self,
        ttl_s: float = 1.0,
        max_entries: int = 4096,
        max_bytes: int = 64 * 2**20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self.stats = CacheStats()
        self.nbytes = 0
        self._entries: dict[Hashable, tuple[float, bytes, int]] = {}
        self._inflight: dict[Hashable, asyncio.Task[bytes]] = {}

    async def get(
        self, key: Hashable, load: Callable[[], Awaitable[bytes]]
    ) -> tuple[bytes, Outcome]:
        """The body for ``key``: cached, joined to a load in flight, or loaded now."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > self.clock():
                self.stats.hit += 1
                return entry[1], "hit"
            self._drop(key)
        task = self._inflight.get(key)
        outcome: Outcome = "shared"
        if task is None:
            outcome = "miss"
            task = asyncio.ensure_future(load())
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._loaded(key, t))
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        # shield: a client that goes away cancels its own wait, not the shared load
        return await asyncio.shield(task), outcome

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: Hashable) -> None:
        self.nbytes -= self._entries.pop(key)[2]

    def _loaded(self, key: Hashable, task: asyncio.Task[bytes]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None or self.ttl_s <= 0:
            return
        body = task.result()
        size = len(body) + sys.getsizeof(key) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        now = self.clock()
        if len(self._entries) >= self.max_entries or self.nbytes + size > self.max_bytes:
            for k in [k for k, (expires, _, _) in self._entries.items() if expires <= now]:
                self._drop(k)
            while self._entries and (
                len(self._entries) >= self.max_entries or self.nbytes + size > self.max_bytes
            ):
                self._drop(next(iter(self._entries)))
        self._entries[key] = (now + self.ttl_s, body, size)
        self.nbytes += size

    def clear(self) -> None:
        """Forget every cached body (loads in flight still complete)."""
        self._entries.clear()
        self.nbytes = 0
