"""Every stored post of every run, in feed order, in memory; post bodies in a log file.

Why: the embedded ClickHouse engine (chDB) runs one query at a time, 7-12 ms each. At 200
feed requests/s, the pages the recent timelines (:mod:`api.timeline`) cannot serve (an
author's posts, a tick range, a page far down a run's feed: about 40 % of readers'
requests) queue behind each other and behind the sink's inserts, and p99 latency reaches
seconds (issue 15). Timeline services keep each feed's order as a list of post ids in
memory and fetch the posts by id from a key-value store; so does this, for a run's feed:

* a **group** is one feed of a run (the run; the run and a channel; the run and an author):
  the ticks and post numbers of its posts, ascending by the feed's sort key
  ``(tick, post_id)``, in two ``array`` columns (8 bytes a post and group);
* a post's **number** indexes its id, channel, author and where its body lies in the
  **log**, an unlinked temporary file, memory-mapped 64 MiB at a time, that holds each
  post's JSON as the API returns it (the OS page cache keeps what is read in memory and
  writes the rest back to the file).

A page is a binary search (the cursor and the tick range) and a walk down one group: the
page ClickHouse would give, byte for byte (``FINAL``: the last stored copy of a post
wins; blocked posts never appear). Feeds across runs are left to the timelines and the
engine (their first pages are the timelines'), as are filters on a place.

Filling: :meth:`PostIndex.put` takes what the sink stores (live); :meth:`PostIndex.fill`
reads every stored post once from ClickHouse, a run and a range of ticks at a time,
while the sink goes on. A live copy always wins over a filled one (it was stored later,
or is the same row); a live *blocked* copy seen while filling is remembered, so that a
fill read before it cannot bring the post back. Pages are served only once the fill is
done (:attr:`PostIndex.ready`); until then the caller reads ClickHouse as before.

Memory: about 110 bytes a post (10M posts: about 1.1 GiB), plus the log on disk.
Past ``max_posts`` stored copies the index switches itself off (and frees its memory):
every page is read from ClickHouse again. Use from one event loop.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import tempfile
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.timeline import page_body, stored_bodies
from storage.queries import encode_cursor

log = logging.getLogger(__name__)

Key = tuple[int, str]  # (tick, post_id), the feed's sort key
GroupKey = tuple[str, ...]  # ("r", run) | ("rc", run, channel) | ("ra", run, author)

EMPTY_PAGE = page_body((), None)
SEGMENT = 64 * 2**20  # bytes of the log mapped at a time
FILL_SLICE = 500  # posts taken between yields to the event loop while filling (~5 ms)


class Group:
    """One feed of a run: its posts' ticks and numbers, ascending by ``(tick, post_id)``."""

    __slots__ = ("refs", "ticks")

    def __init__(self) -> None:
        self.ticks = array("I")
        self.refs = array("I")

    def __len__(self) -> int:
        return len(self.ticks)


@dataclass
class Codes:
    """Small integer codes for names (channels, authors), in order of first use."""

    codes: dict[str, int] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    def code(self, name: str) -> int:
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.names)
            self.names.append(name)
        return code


@dataclass
class IndexStats:
    """How the index was filled and used."""

    filled: int = 0  # posts taken from ClickHouse by the fill
    fill_s: float = 0.0  # how long the fill took
    live: int = 0  # copies taken from the sink


# The stored posts of one run in ticks [lo, hi), each post once (its last stored copy,
# blocked ones included); given run, lo, hi.
ReadRange = Callable[[str, int, int], Awaitable[list[dict[str, Any]]]]
# (run_id, number of stored rows, highest tick) for every run with posts
ReadRuns = Callable[[], Awaitable[list[tuple[str, int, int]]]]


@dataclass
class PostIndex:
    """See the module docstring."""

    max_posts: int = 20_000_000
    fill_rows: int = 20_000  # posts per ClickHouse read while filling
    segment_bytes: int = SEGMENT  # bytes of the log mapped at a time
    ready: bool = False  # filled: every stored post is here
    off: bool = False  # switched off (too many posts, or an error): never ready again
    stats: IndexStats = field(default_factory=IndexStats)
    filling: asyncio.Future[None] | None = field(default=None, repr=False)  # the fill's task

    def __post_init__(self) -> None:
        if self.segment_bytes % mmap.ALLOCATIONGRANULARITY:
            raise ValueError(f"segment_bytes: a multiple of {mmap.ALLOCATIONGRANULARITY}")
        self._file = tempfile.TemporaryFile(prefix="worldfeed-posts-")  # in TMPDIR
        self._segments: list[mmap.mmap] = []  # the log, mapped SEGMENT bytes at a time
        self._end = 0  # where the next body goes in the log
        self._offsets = array("Q")  # number -> where its body starts in the log
        self._lengths = array("I")  # number -> its body's length
        self._ids: list[str] = []  # number -> post id
        self._channels = bytearray()  # number -> channel code
        self._authors = array("I")  # number -> author code
        self._channel_codes = Codes()  # channel <-> code (a byte: at most 256 channels)
        self._author_codes = Codes()  # author <-> code
        self._groups: dict[GroupKey, Group] = {}
        self._blocked: set[str] | None = None  # while filling: post ids blocked live

    # ---- taking posts ----------------------------------------------------------------

    def stored(
        self, rows: Sequence[dict[str, Any]], bodies: Sequence[bytes | None] | None = None
    ) -> None:
        """Posts the sink has just stored, in insert order (rows as ``PostPublished``
        dumps them), with their bodies if made already (:func:`api.timeline.stored_bodies`).
        Never raises into the sink: on an error the index switches off."""
        if self.off:
            return
        try:
            for row, body in zip(rows, bodies or stored_bodies(rows), strict=True):
                self.put(row, body, live=True)
                self.stats.live += 1
        except Exception:
            log.exception("post index: could not take stored posts; switching it off")
            self.switch_off()

    def put(self, row: dict[str, Any], body: bytes | None, live: bool) -> None:
        """Take one stored copy of a post (``body`` None: blocked, so hidden).

        A live copy replaces the one held; a filled copy never replaces anything (the
        held one came live, stored after or as the same row), nor brings back a post
        blocked live while filling.
        """
        post_id, run, tick = row["post_id"], row["run_id"], row["tick"]
        held = self._held(run, tick, post_id)
        if held is not None:
            if not live:
                return
            self._drop(run, tick, held)
        elif not live and self._blocked is not None and post_id in self._blocked:
            return
        if body is None:
            if live and self._blocked is not None:
                self._blocked.add(post_id)
            return
        if len(self._ids) >= self.max_posts:
            log.warning(
                "post index: more than %d stored posts; switching it off (raise "
                "WORLDFEED_API_FEED_INDEX_MAX_POSTS for more)",
                self.max_posts,
            )
            self.switch_off()
            return
        number = self._append(post_id, row["channel"], row["author"], body)
        for key in self._keys(run, row["channel"], row["author"]):
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = Group()
            at = self._position(group, tick, post_id)
            if at == len(group):
                group.ticks.append(tick)
                group.refs.append(number)
            else:
                group.ticks.insert(at, tick)
                group.refs.insert(at, number)

    @staticmethod
    def _keys(run: str, channel: str, author: str) -> tuple[GroupKey, GroupKey, GroupKey]:
        return ("r", run), ("rc", run, channel), ("ra", run, author)

    def _append(self, post_id: str, channel: str, author: str, body: bytes) -> int:
        number = len(self._ids)
        self._offsets.append(self._write(body))
        self._lengths.append(len(body))
        self._ids.append(post_id)
        self._channels.append(self._channel_codes.code(channel))  # over 255: ValueError
        self._authors.append(self._author_codes.code(author))
        return number

    def _write(self, body: bytes) -> int:
        """Put a body in the log; returns where it starts. A body never straddles two
        segments (one that does not fit starts the next), so a read is one slice."""
        n, size = len(body), self.segment_bytes
        if n > size:
            raise ValueError(f"a post body of {n} bytes (the log holds at most {size})")
        segment, at = divmod(self._end, size)
        if at + n > size:
            segment, at = segment + 1, 0
        while segment >= len(self._segments):  # a new segment: the file grows, sparse
            os.ftruncate(self._file.fileno(), (len(self._segments) + 1) * size)
            self._segments.append(
                mmap.mmap(self._file.fileno(), size, offset=len(self._segments) * size)
            )
        self._segments[segment][at : at + n] = body
        self._end = segment * size + at + n
        return segment * size + at

    def _position(self, group: Group, tick: int, post_id: str) -> int:
        """Where ``(tick, post_id)`` is or would go in ``group``."""
        n = len(group)
        if n == 0 or group.ticks[n - 1] < tick:  # the common case: a newer tick
            return n
        lo = bisect_left(group.ticks, tick)
        hi = bisect_right(group.ticks, tick, lo)
        ids = self._ids
        return bisect_left(group.refs, post_id, lo, hi, key=ids.__getitem__)

    def _held(self, run: str, tick: int, post_id: str) -> int | None:
        group = self._groups.get(("r", run))
        if group is None:
            return None
        at = self._position(group, tick, post_id)
        if at < len(group) and group.ticks[at] == tick:
            number = group.refs[at]
            if self._ids[number] == post_id:
                return number
        return None

    def _drop(self, run: str, tick: int, number: int) -> None:
        post_id = self._ids[number]
        channel = self._channel_codes.names[self._channels[number]]
        author = self._author_codes.names[self._authors[number]]
        for key in self._keys(run, channel, author):
            group = self._groups[key]
            at = self._position(group, tick, post_id)
            del group.ticks[at]
            del group.refs[at]
        # the number's body stays in the log (copies are rare: a redelivered batch)

    def switch_off(self) -> None:
        """Forget everything and serve nothing again (pages go to ClickHouse)."""
        self.off, self.ready = True, False
        self._groups.clear()
        self._ids.clear()
        self._offsets, self._lengths, self._authors = array("Q"), array("I"), array("I")
        self._channels = bytearray()
        self._blocked = None
        self._release()

    def close(self) -> None:
        """Stop the fill, if any, and release the log file."""
        if self.filling is not None:
            self.filling.cancel()
        self.ready = False
        self._release()

    def _release(self) -> None:
        for segment in self._segments:
            segment.close()
        self._segments.clear()
        if not self._file.closed:
            self._file.close()

    @property
    def posts(self) -> int:
        """Posts visible in the index (every run's feed)."""
        return sum(len(g) for k, g in self._groups.items() if k[0] == "r")

    # ---- filling ---------------------------------------------------------------------

    async def fill(self, read_runs: ReadRuns, read_range: ReadRange) -> None:
        """Take every post stored so far from ClickHouse; then the index is ready.

        The sink feeds :meth:`stored` meanwhile (it must do so from before this starts:
        a post stored after a range was read comes live). A failure switches the index
        off (logged): pages go on being read from ClickHouse.
        """
        t0 = time.perf_counter()
        self._blocked = set()
        try:
            for run, stored, top in await read_runs():
                width = max(1, self.fill_rows * (top + 1) // max(stored, 1))
                for lo in range(0, top + 1, width):
                    if self.off:
                        return
                    posts = await read_range(run, lo, lo + width)
                    for at in range(0, len(posts), FILL_SLICE):
                        rows = posts[at : at + FILL_SLICE]
                        for row, body in zip(rows, stored_bodies(rows), strict=True):
                            self.put(row, body, live=False)
                        self.stats.filled += len(rows)
                        await asyncio.sleep(0)  # let the requests and the sink in
        except Exception:
            log.exception("post index: the fill failed; switching it off")
            self.switch_off()
            return
        self._blocked = None
        if not self.off:
            self.ready = True
            self.stats.fill_s = time.perf_counter() - t0
            log.info(
                "post index: %d posts filled in %.1f s (%d stored live meanwhile)",
                self.stats.filled,
                self.stats.fill_s,
                self.stats.live,
            )

    # ---- reading ---------------------------------------------------------------------

    def page(
        self,
        run_id: str | None,
        channel: str | None,
        author: str | None,
        tick_from: int | None,
        tick_to: int | None,
        cursor: Key | None,
        limit: int,
    ) -> bytes | None:
        """The newest-first page of a run's feed (``limit`` posts after ``cursor``, ticks
        in ``[tick_from, tick_to]``) as ``/feed`` returns it, or None: the caller reads
        ClickHouse (not filled yet, switched off, no run given, or an empty tick range,
        which the engine's path rejects)."""
        if not self.ready or run_id is None:
            return None
        if tick_from is not None and tick_to is not None and tick_from > tick_to:
            return None
        want: int | None = None  # a channel to check post by post
        if author is not None:
            group = self._groups.get(("ra", run_id, author))
            if channel is not None:
                want = self._channel_codes.codes.get(channel, -1)
        elif channel is not None:
            group = self._groups.get(("rc", run_id, channel))
        else:
            group = self._groups.get(("r", run_id))
        if group is None:
            return EMPTY_PAGE
        end = len(group) if tick_to is None else bisect_right(group.ticks, tick_to)
        if cursor is not None:
            tick, post_id = cursor
            lo = bisect_left(group.ticks, tick, 0, end)
            hi = bisect_right(group.ticks, tick, lo, end)
            end = bisect_left(group.refs, post_id, lo, hi, key=self._ids.__getitem__)
        start = 0 if tick_from is None else bisect_left(group.ticks, tick_from, 0, end)
        picked: list[int] = []  # positions in the group
        refs, channels = group.refs, self._channels
        at = end - 1
        while at >= start and len(picked) <= limit:
            if want is None or channels[refs[at]] == want:
                picked.append(at)
            at -= 1
        shown = picked[:limit]
        next_cursor = None
        if len(picked) > limit:
            last = shown[-1]
            next_cursor = encode_cursor("feed", group.ticks[last], self._ids[refs[last]])
        return page_body(self._bodies([refs[at] for at in shown]), next_cursor)

    def _bodies(self, numbers: Sequence[int]) -> list[bytes]:
        # slices of the mapped log, not a read() each: a system call releases the GIL,
        # and getting it back behind the sink's insert thread cost milliseconds a body
        segments, offsets, lengths = self._segments, self._offsets, self._lengths
        size = self.segment_bytes
        out = []
        for n in numbers:
            segment, at = divmod(offsets[n], size)
            out.append(segments[segment][at : at + lengths[n]])
        return out
