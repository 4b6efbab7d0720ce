"""streams.world.SentBatches: a batch read back with the bytes it was sent with is that
batch; anything else is decoded; what is never read back does not pile up."""

from __future__ import annotations

from streams.world import SentBatches
from topics import SHARD_INBOX
from topics.codec import decode, encode
from topics.models import EffectsBatched


def batch(tick: int, shard: int = 0) -> EffectsBatched:
    return EffectsBatched(run_id="r", tick=tick, shard=shard, from_shard=0, n_shards=2)


def test_a_batch_read_back_is_the_one_sent_and_is_taken_once() -> None:
    sent = SentBatches()
    b = batch(3)
    raw = encode(b)
    sent.add(raw, b)
    assert sent.take(bytes(raw)) is b  # equal bytes, another object (as read from Kafka)
    assert decode(SHARD_INBOX, raw) == b  # what decoding would have given
    assert sent.take(raw) is None  # a redelivery is decoded as any other
    assert sent.take(encode(batch(4))) is None  # never sent from here


def test_batches_never_read_back_leave_oldest_first() -> None:
    raws = [encode(batch(t, shard=1)) for t in range(10)]
    sent = SentBatches(max_bytes=3 * len(raws[0]))
    for t, raw in enumerate(raws):
        sent.add(raw, batch(t, shard=1))
    assert [sent.take(r) is not None for r in raws] == [False] * 7 + [True] * 3
    sent.add(raws[0], batch(0, shard=1))
    sent.clear()  # a revocation: the shards may be another worker's now
    assert sent.take(raws[0]) is None
