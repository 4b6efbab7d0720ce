"""Consumer lag: how far this process's consumers are behind their topics.

Per topic, the sum over the partitions a consumer holds of highwater (the broker's end
offset as of the last fetch) minus position (the next offset to fetch), set on
:data:`worldfeed.metrics.CONSUMER_LAG` by consumer group. Both come with the fetch
responses: measuring sends no request to the broker (unless a position is being reset).
Records fetched but not yet handled (faust's buffer) count as read, so a stuck agent
shows as lag only once its buffer is full and the consumer stops fetching.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from worldfeed import metrics

log = logging.getLogger(__name__)

INTERVAL_S = 2.0  # how often the lag is measured
POSITION_WAIT_S = 1.0  # a partition whose position is being reset is left out this time
FAUST_ASSIGNOR = "__assignor-__leader"


async def consumer_lag(consumer: Any) -> dict[str, int]:
    """Messages behind, per topic, of an aiokafka (or faust) consumer's assigned partitions.

    Partitions whose highwater or position is not known yet are left out.
    """
    lag: dict[str, int] = {}
    for tp in list(consumer.assignment()):
        if tp.topic.endswith(FAUST_ASSIGNOR):
            continue  # faust's own leader-election topic, never behind
        try:
            end = consumer.highwater(tp)
            if end is None:
                continue
            position = await asyncio.wait_for(consumer.position(tp), POSITION_WAIT_S)
        except Exception:  # noqa: BLE001, S112 - revoked meanwhile, or not fetched yet: next time
            continue
        if position is None:
            continue
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - position)
    return lag


class LagGauge:
    """The lag series of one consumer group in this process; topics no longer assigned
    are removed, so the page never shows a partition another worker has taken."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.topics: set[str] = set()

    def set(self, lag: dict[str, int]) -> None:
        """Replace the group's series with ``lag`` (topic -> messages)."""
        for topic in self.topics - lag.keys():
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(topic, self.group)
        for topic, n in lag.items():
            metrics.CONSUMER_LAG.labels(topic, self.group).set(n)
        self.topics = set(lag)

    async def watch(self, consumer: Any, interval_s: float = INTERVAL_S) -> None:
        """Measure ``consumer`` every ``interval_s`` until cancelled."""
        try:
            while True:
                try:
                    self.set(await consumer_lag(consumer))
                except Exception as exc:  # noqa: BLE001 - the lag is a report; keep going
                    log.debug("consumer lag of %s not measured: %s", self.group, exc)
                await asyncio.sleep(interval_s)
        finally:
            self.set({})
