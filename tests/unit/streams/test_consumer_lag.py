"""Consumer lag from a consumer's highwater and position (a fake consumer, no broker)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.lag import LagGauge, consumer_lag
from worldfeed.metrics import REGISTRY


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeConsumer:
    """The three calls lag needs: assignment, highwater (sync), position (async)."""

    def __init__(self, offsets: dict[TP, tuple[int | None, int | None]]) -> None:
        self.offsets = offsets

    def assignment(self) -> set[TP]:
        return set(self.offsets)

    def highwater(self, tp: TP) -> int | None:
        return self.offsets[tp][0]

    async def position(self, tp: TP) -> int | None:
        pos = self.offsets[tp][1]
        if pos == -1:
            raise RuntimeError("partition revoked meanwhile")
        return pos


async def test_lag_sums_partitions_per_topic_and_skips_unknown_offsets() -> None:
    consumer = FakeConsumer(
        {
            TP("events", 0): (100, 40),
            TP("events", 1): (50, 50),
            TP("posts", 0): (10, 12),  # position past a stale highwater: 0, never negative
            TP("posts", 1): (None, 0),  # nothing fetched yet
            TP("ticks", 0): (5, -1),  # revoked while measuring
            TP("app-__assignor-__leader", 0): (9, 0),  # faust's own: left out
        }
    )
    assert await consumer_lag(consumer) == {"events": 60, "posts": 0}


def test_lag_gauge_replaces_the_groups_series() -> None:
    gauge = LagGauge("lag-unit")
    gauge.set({"events": 7, "posts": 1})
    labels = {"topic": "events", "group": "lag-unit"}
    assert REGISTRY.get_sample_value("worldfeed_consumer_lag_messages", labels) == 7
    gauge.set({"posts": 0})  # events moved to another worker
    assert REGISTRY.get_sample_value("worldfeed_consumer_lag_messages", labels) is None
    gauge.set({})
    labels["topic"] = "posts"
    assert REGISTRY.get_sample_value("worldfeed_consumer_lag_messages", labels) is None
