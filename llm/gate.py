"""The LLM budget: how many calls may be in flight and how many tokens per second.

One gate per process is shared by every stage that asks the LLM, so the budget is
global; when requests queue, the most important (highest priority) goes first.
"""

from __future__ import annotations

import asyncio
import heapq
import time


class OverBudget(Exception):
    """The LLM budget did not admit a request within its wait limit."""


class LLMGate:
    """A global LLM budget with a priority queue.

    At most ``concurrency`` calls are in flight, and at most ``tokens_per_s`` prompt +
    output tokens are spent per second (a token bucket holding ``burst_s`` seconds of
    budget; 0 = no token limit). Waiting requests are admitted highest priority first,
    ties in arrival order.

    :meth:`acquire` raises :class:`OverBudget` after ``wait_s``; the caller must count
    and dead-letter that request, never drop it silently. Every successful
    :meth:`acquire` is paired with one :meth:`release`, which corrects the token bucket
    by the difference between the actual and the estimated cost.

    Args:
        concurrency: Maximum calls in flight (>= 1).
        tokens_per_s: Token budget per second; 0 or less = unlimited.
        burst_s: Seconds of budget the bucket holds when full.

    Example:
        >>> gate = LLMGate(concurrency=2, tokens_per_s=500)
        >>> await gate.acquire(priority=0.8, cost=300, wait_s=60)  # doctest: +SKIP
        >>> await gate.release(cost_correction=actual - 300)  # doctest: +SKIP
    """

    def __init__(self, concurrency: int, tokens_per_s: float = 0.0, burst_s: float = 2.0) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.concurrency = concurrency
        self.rate = float(tokens_per_s)
        self.capacity = self.rate * burst_s if self.rate > 0 else 0.0
        self.tokens = self.capacity
        self.in_use = 0
        self.admitted: list[float] = []  # priorities in admission order (tests, metrics)
        self._heap: list[tuple[float, int]] = []
        self._seq = 0
        self._last = time.monotonic()
        self._cond: asyncio.Condition | None = None

    @property
    def waiting(self) -> int:
        """Requests waiting to be admitted (the budget's queue)."""
        return len(self._heap)

    def _condition(self) -> asyncio.Condition:
        # made on first use, inside the event loop that waits on it
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def _refill(self) -> None:
        now = time.monotonic()
        if self.rate > 0:
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self, priority: float, cost: int, wait_s: float) -> None:
        """Wait for a slot and ``cost`` tokens; raise OverBudget after ``wait_s``."""
        cond = self._condition()
        self._seq += 1
        entry = (-priority, self._seq)
        deadline = time.monotonic() + wait_s
        async with cond:
            heapq.heappush(self._heap, entry)
            try:
                while True:
                    self._refill()
                    need = min(float(cost), self.capacity)
                    first = self._heap[0] == entry
                    has_slot = self.in_use < self.concurrency
                    if first and has_slot and (self.rate <= 0 or self.tokens >= need):
                        heapq.heappop(self._heap)
                        self.in_use += 1
                        self.tokens -= cost if self.rate > 0 else 0
                        self.admitted.append(priority)
                        cond.notify_all()
                        return
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise OverBudget(
                            f"LLM budget: not admitted within {wait_s:g}s "
                            f"({self.in_use}/{self.concurrency} in flight, "
                            f"{len(self._heap)} waiting, {self.tokens:.0f} tokens left)"
                        )
                    if first and has_slot and self.rate > 0:
                        left = min(left, (need - self.tokens) / self.rate + 0.001)
                    try:
                        await asyncio.wait_for(cond.wait(), left)
                    except TimeoutError:
                        pass
            except BaseException:
                if entry in self._heap:
                    self._heap.remove(entry)
                    heapq.heapify(self._heap)
                    cond.notify_all()
                raise

    async def release(self, cost_correction: int = 0) -> None:
        """Free a slot; ``cost_correction`` = actual tokens minus the estimate acquired."""
        cond = self._condition()
        async with cond:
            self.in_use -= 1
            if self.rate > 0:
                self.tokens -= cost_correction
            cond.notify_all()
