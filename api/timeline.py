"""Recent feed timelines in memory, fed by the embedded sink as it stores posts.

Why: the embedded ClickHouse engine (chDB) runs one query at a time. At 200 feed
requests/s, with about half of them missing the one-second page cache, the queries
queue behind each other and p99 latency reaches seconds (issue 15). Large feeds keep
recent timelines in memory and use the analytical store for deep pages; so does this.

What: a :class:`Timelines` holds, per feed filter (a run, a channel, both, or neither;
no author, place or tick range), a *window* of that feed's newest posts, as the JSON bodies the API
returns. A window is filled once from ClickHouse (its newest ``capacity`` posts) on
first use, then kept up to date by :meth:`Timelines.stored`, which the embedded sink
calls after every successful insert with the posts it just stored. A page is served
from the window when the window provably holds it; otherwise the caller reads
ClickHouse as before.

The invariant that makes a window exact: it holds *every* matching post whose sort key
``(tick, post_id)`` is at or above its ``floor`` (or every matching post at all, when
``complete``). A post that arrives below the floor (posts are rendered out of tick
order) is left to ClickHouse; when a window grows past its capacity the oldest post
leaves and the floor rises. A page whose posts are all at or above the floor, or any
page of a complete window, is the page ClickHouse would give (blocked posts hidden, the
last stored copy of a post winning, as ``FINAL`` decides).

Filling does not race the sink: a window is registered (collecting what the sink
stores meanwhile) *before* its ClickHouse read starts, so a post is either in that
read (stored before it) or reported to the window afterwards (stored after the
registration), or both (kept once, by post id).

Only where the sink runs in this process (``worldfeed api``, embedded mode) are the
windows fed; elsewhere (:attr:`Timelines.live` false) every page is read from
ClickHouse, which, as a server, runs queries concurrently. Memory is bounded by
``max_bytes`` (bodies counted per window) and ``max_windows``, least recently used
windows go first. Use from one event loop.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from api.schemas import PostPublic
from storage.queries import encode_cursor

log = logging.getLogger(__name__)

Filter = tuple[str | None, str | None, str | None]  # (run_id, channel, author)
Key = tuple[int, str]  # (tick, post_id), the feed's sort key
ENTRY_OVERHEAD = 150  # per post and window: the key tuple, list slot and dict entry


def post_body(row: dict[str, Any]) -> bytes:
    """A post as the API serialises it (the same bytes as a page read from ClickHouse)."""
    return PostPublic.model_validate(row).model_dump_json().encode()


def stored_bodies(rows: Iterable[dict[str, Any]]) -> list[bytes | None]:
    """Each stored post's body, None for a blocked one (never shown)."""
    return [None if row.get("moderation") == "blocked" else post_body(row) for row in rows]


def page_body(bodies: Iterable[bytes], next_cursor: str | None) -> bytes:
    """A page's JSON, as ``PostPagePublic.model_dump_json()`` writes it."""
    return b'{"items":[%b],"next_cursor":%b}' % (b",".join(bodies), orjson.dumps(next_cursor))


@dataclass
class Window:
    """The newest posts of one feed filter, ascending by sort key."""

    keys: list[Key] = field(default_factory=list)
    bodies: dict[str, bytes] = field(default_factory=dict)  # post_id -> body
    ticks: dict[str, int] = field(default_factory=dict)  # post_id -> tick (its key)
    complete: bool = False  # every matching post is here
    nbytes: int = 0
    pending: list[tuple[Key, bytes | None]] | None = None  # while filling: stored meanwhile

    @property
    def floor(self) -> Key | None:
        """The lowest key held: every matching post at or above it is here."""
        return self.keys[0] if self.keys else None

    def put(self, key: Key, body: bytes | None, capacity: int) -> int:
        """Take a stored post (``body`` None: blocked, so hidden); returns the change in bytes."""
        if self.pending is not None:
            self.pending.append((key, body))
            return 0
        before = self.nbytes
        post_id = key[1]
        if post_id in self.bodies:  # a later copy of a post: it replaces the earlier one
            self._drop(self.ticks[post_id], post_id)
        if body is not None and (self.complete or (self.keys and key >= self.keys[0])):
            self.add(key, body)
        # below the floor of a partial window, or a window with nothing yet: ClickHouse has it
        while len(self.keys) > capacity:
            self._drop(*self.keys[0])
            self.complete = False
        return self.nbytes - before

    def add(self, key: Key, body: bytes) -> None:
        """Hold a post (its key not held yet)."""
        bisect.insort(self.keys, key)
        self.bodies[key[1]] = body
        self.ticks[key[1]] = key[0]
        self.nbytes += len(body) + ENTRY_OVERHEAD

    def _drop(self, tick: int, post_id: str) -> None:
        del self.keys[bisect.bisect_left(self.keys, (tick, post_id))]
        self.nbytes -= len(self.bodies.pop(post_id)) + ENTRY_OVERHEAD
        del self.ticks[post_id]

    def page(self, limit: int, cursor: Key | None, kind: str) -> bytes | None:
        """The page of ``limit`` posts after ``cursor`` (newest first), or None if this
        window cannot prove it holds that page."""
        end = len(self.keys) if cursor is None else bisect.bisect_left(self.keys, cursor)
        if end > limit:  # limit posts and one more: all at or above the floor
            keys = self.keys[end - limit : end][::-1]
            last = keys[-1]
            return page_body((self.bodies[k[1]] for k in keys), encode_cursor(kind, *last))
        if self.complete:
            keys = self.keys[:end][::-1]
            return page_body((self.bodies[k[1]] for k in keys), None)
        return None


Fill = Callable[[Filter, int], Awaitable[list[dict[str, Any]]]]


@dataclass
class TimelineStats:
    """How pages were served."""

    memory: int = 0  # from a window
    fallback: int = 0  # the window could not prove the page: ClickHouse
    filled: int = 0  # windows filled from ClickHouse
    evicted: int = 0  # windows dropped for memory


class Timelines:
    """Windows of recent posts per feed filter (see the module docstring)."""

    def __init__(
        self,
        fill: Fill,
        capacity: int = 500,
        max_windows: int = 4096,
        max_bytes: int = 128 * 2**20,
    ) -> None:
        self.fill = fill  # the newest ``capacity`` posts of a filter, newest first
        self.capacity = capacity
        self.max_windows = max_windows
        self.max_bytes = max_bytes
        self.live = False  # set once a sink in this process feeds :meth:`stored`
        self.nbytes = 0
        self.stats = TimelineStats()
        self._windows: OrderedDict[Filter, Window] = OrderedDict()
        self._filling: dict[Filter, asyncio.Task[Window]] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def stored(
        self, rows: Sequence[dict[str, Any]], bodies: Sequence[bytes | None] | None = None
    ) -> None:
        """Posts the sink has just stored (in insert order; any run or channel), with their
        bodies if made already (:func:`stored_bodies`).

        Never raises into the sink: on an error every window is dropped (a window that
        missed a post must not serve again) and refilled from ClickHouse when next asked.
        """
        if not self._windows:
            return
        try:
            self._store(rows, bodies or stored_bodies(rows))
        except Exception:
            log.exception("feed timelines: could not take stored posts; dropping every window")
            self.clear()

    def clear(self) -> None:
        """Forget every window (each is refilled from ClickHouse on its next use)."""
        self._windows.clear()
        self.nbytes = 0

    def _store(self, rows: Sequence[dict[str, Any]], bodies: Sequence[bytes | None]) -> None:
        for row, body in zip(rows, bodies, strict=True):
            key: Key = (row["tick"], row["post_id"])
            run, channel = row["run_id"], row["channel"]
            for f in (
                (None, None, None),
                (run, None, None),
                (run, channel, None),
                (None, channel, None),
            ):
                window = self._windows.get(f)
                if window is not None:
                    self.nbytes += window.put(key, body, self.capacity)
        self._shrink()

    async def page(
        self, f: Filter, limit: int, cursor: Key | None, kind: str = "feed"
    ) -> bytes | None:
        """A page from memory, or None: the caller reads ClickHouse.

        Feeds of one author are not kept: there are thousands, each read rarely, and a
        window's fill (``capacity`` posts) costs more than the page it would serve
        (measured: author pages got slower). They go to the page cache and the engine.
        """
        if not self.live or limit > self.capacity or f[2] is not None:
            return None
        window = self._windows.get(f)
        if window is None or window.pending is not None:
            window = await self._filled(f)
        if self._windows.get(f) is window:
            self._windows.move_to_end(f, last=True)
        body = window.page(limit, cursor, kind)
        if body is None:
            self.stats.fallback += 1
        else:
            self.stats.memory += 1
        return body

    async def _filled(self, f: Filter) -> Window:
        task = self._filling.get(f)
        if task is None:
            task = asyncio.ensure_future(self._fill(f))
            self._filling[f] = task
            task.add_done_callback(lambda _: self._filling.pop(f, None))
        # shield: a client that goes away does not cancel the fill others wait for
        return await asyncio.shield(task)

    async def _fill(self, f: Filter) -> Window:
        window = Window(pending=[])
        self._windows[f] = window  # registered first: what the sink stores now is kept
        try:
            rows = await self.fill(f, self.capacity)
        except BaseException:
            self._windows.pop(f, None)
            raise
        pending, window.pending = window.pending or [], None
        window.complete = len(rows) < self.capacity
        for row in rows:
            window.add((row["tick"], row["post_id"]), post_body(row))
        for key, body in pending:
            window.put(key, body, self.capacity)
        self.stats.filled += 1
        if self._windows.get(f) is window:  # not evicted while it was filled
            self.nbytes += window.nbytes
            self._shrink()
        return window

    def _shrink(self) -> None:
        while self._windows and (
            self.nbytes > self.max_bytes or len(self._windows) > self.max_windows
        ):
            _, window = self._windows.popitem(last=False)
            if window.pending is None:  # a window being filled is not counted yet
                self.nbytes -= window.nbytes
            self.stats.evicted += 1
