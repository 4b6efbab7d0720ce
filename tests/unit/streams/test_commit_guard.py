"""faust's consumer never commits an offset past a message still being processed.

On faust-streaming 0.15.3 alone the first test fails: with the committed offset at 27,
request 27 still rendering and 28-29 acked by other actors, faust commits 30 and request
27 is lost when its partition moves (faust-streaming issue #606).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faust.types import TP, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.app import build_streams
from worldfeed.settings import Settings

TOPIC = "wf-render-requests"


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    state = tmp_path_factory.mktemp("state")
    streams = build_streams(Settings(state_dir=Path(state)), "commit-guard")
    streams.app.topics._acking_topics.add(TOPIC)
    return streams.app.consumer


def reset(consumer: Any, tp: TP, committed: int | None) -> None:
    for book in (consumer._acked, consumer._acked_index, consumer._gap):
        book.pop(tp, None)
    consumer._committed_offset[tp] = committed
    consumer._unacked_messages.clear()


def deliver(consumer: Any, tp: TP, offset: int) -> Message:
    message = Message(tp.topic, tp.partition, offset, 0.0, 0, {}, b"k", b"v", None)
    consumer.track_message(message)
    return message


def test_a_message_in_flight_at_the_committed_offset_holds_the_commit(consumer: Any) -> None:
    tp = TP(TOPIC, 1)
    reset(consumer, tp, 27)
    slow, *fast = [deliver(consumer, tp, offset) for offset in (27, 28, 29)]
    for message in fast:
        assert consumer.ack(message)
    assert consumer._filter_committable_offsets({tp}) == {}
    assert consumer.ack(slow)
    assert consumer._filter_committable_offsets({tp}) == {tp: 30}


def test_offset_zero_in_flight_holds_the_commit(consumer: Any) -> None:
    """faust's guard also skips a committed offset of 0 (it tests it for truth)."""
    tp = TP(TOPIC, 0)
    reset(consumer, tp, 0)
    slow, fast = deliver(consumer, tp, 0), deliver(consumer, tp, 1)
    assert consumer.ack(fast)
    assert consumer._filter_committable_offsets({tp}) == {}
    assert consumer.ack(slow)
    assert consumer._filter_committable_offsets({tp}) == {tp: 2}


def test_a_redelivered_copy_acked_frees_the_offset(consumer: Any) -> None:
    """After a rebalance a message is handed out again; acking either copy is enough."""
    tp = TP(TOPIC, 2)
    reset(consumer, tp, 5)
    stale = deliver(consumer, tp, 5)  # its run was cancelled; the object lingers unacked
    again = deliver(consumer, tp, 5)
    assert consumer.ack(again)
    assert consumer._filter_committable_offsets({tp}) == {tp: 6}
    assert not stale.acked


def test_other_partitions_commit_past_their_own_work(consumer: Any) -> None:
    held, free = TP(TOPIC, 3), TP(TOPIC, 4)
    reset(consumer, held, 10)
    reset(consumer, free, 10)
    # the stream holds what it is processing (faust tracks messages in a WeakSet)
    in_flight = [deliver(consumer, held, 10), deliver(consumer, free, 12)]
    consumer.ack(deliver(consumer, held, 11))
    consumer.ack(deliver(consumer, free, 10))
    consumer.ack(deliver(consumer, free, 11))
    # free's message in flight is above its acked run: 10-11 may be committed
    assert consumer._filter_committable_offsets({held, free}) == {free: 12}
    assert not any(message.acked for message in in_flight)


@settings(max_examples=400, deadline=None)
@given(
    start=st.integers(0, 3),
    count=st.integers(1, 12),
    data=st.data(),
)
def test_never_commits_past_an_unacked_message(
    consumer: Any, start: int, count: int, data: st.DataObject
) -> None:
    """Any order of acks and commits: every committed offset has all below it acked.

    The model of at-least-once: after each commit, no message at or above the previously
    committed offset and below the new one is unacked.
    """
    tp = TP(TOPIC, 5)
    reset(consumer, tp, start)
    messages = [deliver(consumer, tp, start + i) for i in range(count)]
    order = data.draw(st.permutations(range(count)), label="ack order")
    commit_after = data.draw(st.sets(st.integers(0, count - 1)), label="commit after acks")
    committed = start
    for step, index in enumerate(order):
        consumer.ack(messages[index])
        if step in commit_after or step == count - 1:
            offsets = consumer._filter_committable_offsets({tp})
            if tp in offsets:
                new = offsets[tp]
                assert all(m.acked for m in messages[: new - start]), (committed, new)
                assert new > committed
                committed = new
                consumer._committed_offset[tp] = new
    assert committed == start + count  # every message acked: all committed at the end
