"""Several Triton instances behind one :class:`~llm.base.LLM`: spread, eject, probe.

:class:`TritonPool` answers like one client. Each request goes to the instance in
rotation with the fewest requests in flight (ties taken in turn), so a slow or stuck
instance gets less work before it is known to be down. An instance whose call raised
:class:`~llm.base.LLMUnavailable` (its client's own retries spent) is taken out of
rotation, and the request is asked again of the next one: a request fails only when
every instance failed it. An ejected instance is probed with ``ready()`` once its
cool-down has passed, in the background, and comes back when it answers. When no
instance is in rotation and none answers a probe, the pool raises
:class:`~llm.base.LLMUnavailable`, and the caller's outage wait (:mod:`llm.complete`)
applies as it does to one server.

An :class:`~llm.base.LLMError` is the model refusing this request; asking another
instance would not help and the instance is healthy, so it is raised as it is.

:func:`connect` builds the client for a comma-separated list of ``host:port``: one
:class:`~llm.client.TritonLLM` for one URL (unchanged behaviour), a pool for several.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from llm.base import Completion, LLMError, LLMUnavailable
from worldfeed.endpoints import host_ports

if TYPE_CHECKING:
    from llm.client import TritonLLM

log = logging.getLogger(__name__)

#: Seconds an ejected instance stays out before the first probe (then between probes).
COOL_DOWN_S = 5.0
#: Retries a pooled instance's own client makes: one covers a blip; the pool's
#: failover to the next instance covers the rest, without minutes of backoff first.
MEMBER_RETRIES = 1


class Member(Protocol):
    """What the pool needs of one instance's client (:class:`~llm.client.TritonLLM`)."""

    url: str

    @property
    def model(self) -> str:
        """Name of the model."""
        ...

    async def generate(self, prompt: str, sampling: Mapping[str, Any]) -> Completion:
        """One completion; raises LLMUnavailable or LLMError."""
        ...

    async def ready(self) -> bool:
        """True when the server and model are ready; never raises."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...


@dataclass(slots=True)
class _Slot:
    """One instance and what the pool knows of it."""

    member: Member
    in_flight: int = 0
    #: monotonic time before which an ejected instance is not probed; None: in rotation
    out_until: float | None = None
    probe: asyncio.Task[None] | None = field(default=None, repr=False)
    answered: int = 0


def parse_urls(urls: str | Sequence[str]) -> list[str]:
    """The ``host:port`` endpoints of a comma-separated list (or a list), each checked.

    Raises:
        ValueError: An entry is not ``host:port`` (the message names it), or none given.
    """
    return host_ports(urls, "Triton URL")


class TritonPool:
    """An :class:`~llm.base.LLM` over several instances of one model (see the module).

    Args:
        members: One client per instance, all serving the same model.
        cool_down_s: How long an ejected instance stays out before it is probed, and
            between failed probes.
        clock: Monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        members: Sequence[Member],
        cool_down_s: float = COOL_DOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not members:
            raise ValueError("a pool needs at least one member")
        if len({m.model for m in members}) != 1:
            raise ValueError("every member of a pool must serve the same model")
        if cool_down_s < 0:
            raise ValueError("cool_down_s must be >= 0")
        self._slots = [_Slot(m) for m in members]
        self.cool_down_s = cool_down_s
        self._clock = clock
        self._turn = 0

    @property
    def model(self) -> str:
        """Name of the model every member serves."""
        return self._slots[0].member.model

    @property
    def urls(self) -> list[str]:
        """Every member's endpoint, in the order given."""
        return [s.member.url for s in self._slots]

    def in_rotation(self) -> list[str]:
        """Endpoints that get requests now."""
        return [s.member.url for s in self._slots if s.out_until is None]

    def answered(self) -> dict[str, int]:
        """Completions answered per endpoint (for tests and logs)."""
        return {s.member.url: s.answered for s in self._slots}

    async def __aenter__(self) -> TritonPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the probes and close every member."""
        for slot in self._slots:
            if slot.probe is not None:
                slot.probe.cancel()
        await asyncio.gather(
            *(s.probe for s in self._slots if s.probe is not None), return_exceptions=True
        )
        for slot in self._slots:
            slot.probe = None
            await slot.member.close()

    async def ready(self) -> bool:
        """True when at least one member is ready; never raises."""
        answers = await asyncio.gather(*(s.member.ready() for s in self._slots))
        return any(answers)

    async def generate(self, prompt: str, sampling: Mapping[str, Any]) -> Completion:
        """Generate on the least busy instance in rotation; fail over on an outage.

        Raises:
            LLMUnavailable: No instance in rotation answered (each one tried is ejected).
            LLMError: The model refused this request (no instance is ejected for it).
        """
        tried: set[int] = set()
        last: LLMUnavailable | None = None
        while True:
            slot = self._pick(tried)
            if slot is None:
                slot = await self._recover(tried)
            if slot is None:
                down = ", ".join(s.member.url for s in self._slots if s.out_until is not None)
                raise LLMUnavailable(
                    f"no Triton instance of model {self.model!r} answers (out of rotation: "
                    f"{down}); last error: {last}"
                ) from last
            tried.add(id(slot))
            slot.in_flight += 1
            try:
                completion = await slot.member.generate(prompt, sampling)
            except LLMError:
                raise
            except LLMUnavailable as exc:
                last = exc
                self._eject(slot, exc)
                continue
            finally:
                slot.in_flight -= 1
            slot.answered += 1
            return completion

    def _pick(self, tried: set[int]) -> _Slot | None:
        """The in-rotation slot with the fewest in flight, ties in turn; starts due probes."""
        self._start_due_probes()
        n = len(self._slots)
        start, self._turn = self._turn, (self._turn + 1) % n
        best: _Slot | None = None
        for i in range(n):
            slot = self._slots[(start + i) % n]
            if slot.out_until is not None or id(slot) in tried:
                continue
            if best is None or slot.in_flight < best.in_flight:
                best = slot
        return best

    async def _recover(self, tried: set[int]) -> _Slot | None:
        """With nothing in rotation: wait for the probes that are due, take one that passed."""
        self._start_due_probes()
        probes = [s.probe for s in self._slots if s.probe is not None]
        if probes:
            await asyncio.wait(probes)
        return self._pick(tried)

    def _eject(self, slot: _Slot, exc: BaseException) -> None:
        if slot.out_until is None:
            log.warning(
                "triton %s out of rotation for %.0fs: %s", slot.member.url, self.cool_down_s, exc
            )
        slot.out_until = self._clock() + self.cool_down_s

    def _start_due_probes(self) -> None:
        now = self._clock()
        for slot in self._slots:
            if slot.out_until is not None and slot.probe is None and now >= slot.out_until:
                slot.probe = asyncio.create_task(self._probe(slot))

    async def _probe(self, slot: _Slot) -> None:
        try:
            if await slot.member.ready():
                slot.out_until = None
                log.warning("triton %s is back in rotation", slot.member.url)
            else:
                slot.out_until = self._clock() + self.cool_down_s
                if slot.in_flight == 0:
                    # a fresh channel for the next probe: gRPC's own reconnect backoff
                    # grows to two minutes, and would keep a restarted server out as long
                    await slot.member.close()
        finally:
            slot.probe = None


def connect(
    urls: str | Sequence[str],
    model: str = "llm",
    concurrency: int = 4,
    timeout_s: float = 60.0,
    retries: int = 3,
    cool_down_s: float = COOL_DOWN_S,
) -> TritonLLM | TritonPool:
    """The LLM client for ``urls`` (``host:port[,host:port...]``).

    One URL: a :class:`~llm.client.TritonLLM`, as before. Several: a
    :class:`TritonPool` of one client per URL, each with ``concurrency`` requests in
    flight at most and at most :data:`MEMBER_RETRIES` retries of its own.

    Returns:
        A :class:`~llm.client.TritonLLM` or a :class:`TritonPool`; both are async
        context managers with ``model``, ``generate``, ``ready`` and ``close``.
    """
    from llm.client import TritonLLM  # the gRPC stack, only when a client is built

    endpoints = parse_urls(urls)
    if len(endpoints) == 1:
        return TritonLLM(endpoints[0], model, concurrency, timeout_s, retries)
    members = [
        TritonLLM(url, model, concurrency, timeout_s, min(retries, MEMBER_RETRIES))
        for url in endpoints
    ]
    return TritonPool(members, cool_down_s)
