"""Bad input never crashes a processor: garbage goes to the dead-letter topic with the reason.

Garbage is produced with a plain producer onto every topic a worker consumes; then a
real run must still play to the end on the same workers.
"""

from __future__ import annotations

import urllib.request
from collections import Counter
from collections.abc import Callable

import pytest

from cli.top import parse
from tests.fixtures.kafka import free_port
from tests.fixtures.processes import Procs, produce, read_until, start_run
from topics import (
    CLOCK_INBOX,
    DECISION_OUTCOMES,
    DECISION_REQUESTS,
    DLQ,
    EVENTS,
    EXPOSURES,
    POSTS,
    RENDER_REQUESTS,
    SHARD_INBOX,
    TICKS,
)
from topics.models import DeadLettered
from worldfeed.metrics import REASON_CLASSES
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# a post that is fine but for what it replies to (so the reason names that field)
BAD_REPLY = (
    b'{"kind": "post_published", "post_id": "p", "request_id": "r", "run_id": "x", '
    b'"event_id": "e", "channel": "feed", "author": "a", "tick": 1, "sim_minute": 15, '
    b'"body": "hi", "source": "llm", "score": 0.5, "reply_to": 7}'
)
GARBAGE = [  # topic, value, the stages that consume it (each must dead-letter it)
    (CLOCK_INBOX, b"not json at all", ("clock",)),
    (CLOCK_INBOX, b'{"kind": "run_commanded", "command": "explode", "run_id": "x"}', ("clock",)),
    (SHARD_INBOX, b'{"kind": "tick_started", "run_id": "x"}', ("world",)),
    (SHARD_INBOX, b"\xff\xfe\x00binary", ("world",)),
    (EVENTS, b'{"kind": "event_happened", "event_id": 5}', ("impact", "sink")),
    (RENDER_REQUESTS, b"[1, 2, 3]", ("render",)),
    (POSTS, b'{"kind": "post_published"}', ("sink",)),
    # NPCs that think (issue 12): requests, decisions in the shard inbox, outcomes
    (DECISION_REQUESTS, b'{"kind": "decision_requested", "npcs": []}', ("deliberate",)),
    (SHARD_INBOX, b'{"kind": "decision_made", "status": "maybe"}', ("world",)),
    (DECISION_OUTCOMES, b'{"kind": "decision_resolved", "outcome": 3}', ("sink",)),
    # the feed loop (issue 18): exposures, stored by the sink
    (EXPOSURES, b'{"kind": "post_seen", "rank": -1}', ("sink",)),
    # replies and reposts: a render request's parent post, a stored post's reply_to
    (RENDER_REQUESTS, b'{"kind": "render_requested", "parent": {"relation": "x"}}', ("render",)),
    (POSTS, BAD_REPLY, ("sink",)),
]


async def test_garbage_is_dead_lettered_and_workers_go_on(
    settings_factory: Callable[..., Settings], procs: Procs, triton_url: str
) -> None:
    settings = settings_factory(triton_grpc_url=triton_url, metrics_port=free_port())
    procs.worker("worker", settings, "clock,world,impact,render,deliberate,sink")
    for spec, value, _stages in GARBAGE:
        await produce(settings, spec, b"garbage", value, 0)
    expected = sorted(
        (stage, settings.topic(spec.name)) for spec, _v, stages in GARBAGE for stage in stages
    )
    letters: list[DeadLettered] = await read_until(
        settings, DLQ, lambda m: len(m) >= len(expected), 90
    )
    procs.assert_alive()
    assert sorted((d.stage, d.topic) for d in letters) == expected
    for letter in letters:
        assert letter.reason and letter.offset >= 0
    reasons = " | ".join(d.reason for d in letters)
    assert "not JSON" in reasons or "invalid" in reasons
    assert "/command" in reasons  # names the field that was wrong
    assert "/parent/relation" in reasons and "/reply_to" in reasons
    # and counted on the worker's /metrics, per stage, by reason class (not the text)
    url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        series = parse(resp.read().decode())
    counted: Counter[str] = Counter()
    for (name, labels), n in series.items():
        if name == "worldfeed_dead_letters_total":
            label = dict(labels)
            assert label["reason"] in REASON_CLASSES
            counted[label["stage"]] += int(n)
    assert counted == Counter(d.stage for d in letters)
    # the same workers still play a run to the end
    await start_run(settings, "after-garbage", seed=3, days=0.25)
    ticks = await read_until(settings, TICKS, lambda m: any(t.last for t in m), 120)
    assert len(ticks) == 24
    procs.assert_alive()
