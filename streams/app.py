"""The faust app and the runtime every agent shares.

One :class:`faust.App` per process, built by :func:`build_streams` from
:class:`~worldfeed.settings.Settings`. Topic names come from :mod:`topics` plus the
settings' prefix, so tests run side by side on one broker. Which agents a process
runs (its roles) is decided in :mod:`streams.worker`, which the processors never
import: they import only :class:`Streams` from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faust
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from pydantic import BaseModel

from streams.changelog import ChangelogTable
from streams.outbox import Outbox
from topics import DLQ, TOPICS, TopicSpec
from topics.codec import DecodeError, decode, encode, printable
from topics.models import DeadLettered
from worldfeed import metrics
from worldfeed.settings import Settings

if TYPE_CHECKING:
    from storage.writer import ClickHouseWriter

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 50


def _shorten_fetch_wait() -> None:
    """Make faust's consumers long-poll the broker for 50 ms instead of 1.5 s.

    faust hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. aiokafka leaves
    a partition whose fetched records are still being processed out of the next fetch
    request; when that request finds no data on the other partitions (faust's own
    assignor topic, a quiet inbox), it waits at the broker for the full 1.5 s before the
    busy partition can be fetched again. Measured: the impact stage stalled 1.4 s in
    the middle of a 3,000-event burst, capping it at ~1,600 events/s.
    """
    thread = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread, "_worldfeed_fetch_wait", None) == FETCH_MAX_WAIT_MS:
        return
    create = thread._create_worker_consumer  # noqa: SLF001

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # noqa: SLF001 - read at start()
        return consumer

    thread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]  # noqa: SLF001
    thread._worldfeed_fetch_wait = FETCH_MAX_WAIT_MS  # type: ignore[attr-defined]  # noqa: SLF001 - our marker on the class


def _idempotent_producer() -> None:
    """Make faust's producer idempotent (``enable_idempotence``, which implies acks=all).

    faust turns idempotence on only for its exactly-once (transactional) mode. Without
    it a produce request retried after a lost ack (a broker killed between writing a
    batch and answering) is written twice; with it the broker drops the retry by its
    sequence number. The outbox's ``send_batch`` goes through the same producer.
    """
    producer = faust_aiokafka.Producer
    if getattr(producer, "_worldfeed_idempotent", False):
        return
    extra = producer._settings_extra  # noqa: SLF001

    def settings_extra(self: Any) -> Any:
        return {**extra(self), "acks": "all", "enable_idempotence": True}

    producer._settings_extra = settings_extra  # type: ignore[method-assign]  # noqa: SLF001
    producer._worldfeed_idempotent = True  # type: ignore[attr-defined]  # noqa: SLF001 - our marker on the class


def _never_commit_past_in_flight() -> None:
    """Make faust's consumers never commit an offset past a message still being processed.

    faust commits the first run of consecutive acked offsets. Its guard against a message
    missing at the head of that run lets a gap of exactly one through (meant for an offset
    that was never delivered, such as a compacted record): with the committed offset at
    27, request 27 still rendering and 28 answered by another actor, it commits 29
    (faust-streaming issue #606, open upstream; 0.15.3 has it). Request 27 is then lost if
    the partition moves or the worker dies before it is answered: its new owner starts
    from 29. Measured in ``make chaos``: an ``add_worker`` round whose news request never
    reached the LLM. Here a partition whose lowest acked offset is above a message handed
    to a stream and not acked yet commits nothing until that message is acked.
    """
    consumer = faust_consumer.Consumer
    if getattr(consumer, "_worldfeed_in_flight_guard", False):
        return
    committable = consumer._filter_committable_offsets  # noqa: SLF001

    def filter_committable_offsets(self: Any, tps: Any) -> Any:
        held = _lowest_in_flight(self)
        acked = self._acked
        safe = [tp for tp in tps if tp not in held or not acked[tp] or min(acked[tp]) < held[tp]]
        return committable(self, safe)

    consumer._filter_committable_offsets = filter_committable_offsets  # type: ignore[method-assign]  # noqa: SLF001
    consumer._worldfeed_in_flight_guard = True  # type: ignore[attr-defined]  # noqa: SLF001 - our marker on the class


def _no_empty_commit() -> None:
    """Make a commit whose every partition was revoked while it waited do nothing.

    faust checks a commit's partitions against the assignment, then awaits the producer's
    flush, then keeps the partitions still assigned (its fix of faust-streaming issue
    #94) and hands aiokafka the rest. When a rebalance took all of them during the flush
    that rest is empty, aiokafka refuses it (``ValueError({})``) and faust crashes the
    worker. Seen in ``make bench``: a second worker joining at the start of a run killed
    the first. A commit of nothing is skipped here, as faust skips one that was empty
    before the flush; the offsets are committed by their partitions' new owners.
    """
    thread = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread, "_worldfeed_no_empty_commit", False):
        return
    commit = thread._commit  # noqa: SLF001

    async def commit_assigned(self: Any, offsets: Any) -> bool:
        assigned = self.assignment()  # the same check faust makes next, with no await between
        if not any(tp in assigned for tp in offsets):
            return False
        return bool(await commit(self, offsets))

    thread._commit = commit_assigned  # type: ignore[method-assign]  # noqa: SLF001
    thread._worldfeed_no_empty_commit = True  # type: ignore[attr-defined]  # noqa: SLF001 - our marker on the class


def _lowest_in_flight(consumer: Any) -> dict[Any, int]:
    """Per partition, the lowest offset handed to a stream and neither acked nor committed.

    A message re-delivered after a rebalance is in flight once per copy; an offset acked
    through any copy (or below the committed offset) is not in flight.
    """
    committed = consumer._committed_offset  # noqa: SLF001
    acked = consumer._acked_index  # noqa: SLF001
    low: dict[Any, int] = {}
    for message in list(consumer._unacked_messages):  # noqa: SLF001 - a WeakSet
        tp, offset = message.tp, message.offset
        if message.acked or offset in acked.get(tp, ()):
            continue
        done = committed.get(tp)
        if done is not None and offset < done:
            continue
        if offset < low.get(tp, offset + 1):
            low[tp] = offset
    return low


def broker_urls(bootstrap: str) -> str:
    """faust's broker setting for a ``host:port[,host:port...]`` bootstrap list."""
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


@dataclass
class Streams:
    """A faust app plus what its agents share: settings, topics and helpers."""

    settings: Settings
    app: faust.App
    topics: dict[str, faust.TopicT] = field(default_factory=dict)
    # rows the sink stored, or found stored already, per table
    stored: dict[str, int] = field(default_factory=dict)
    writer: ClickHouseWriter | None = None  # the sink's, created on first use
    # called with the messages the sink has just stored, once they are, each once and not
    # those stored before (the API's timelines; the messages of the tables the engine fills
    # from JSON are not decoded, so not passed)
    on_stored: list[Callable[[list[BaseModel]], None]] = field(default_factory=list)
    _outbox: Outbox | None = None

    def changelog_table(
        self, name: str, source: TopicSpec, keep_values: bool = True
    ) -> ChangelogTable:
        """A :class:`~streams.changelog.ChangelogTable` partitioned like ``source``, whose
        agent awaits ``table.ready(partition)`` before handling a message of it."""
        table = ChangelogTable(
            self.app,
            name,
            self.settings.topic(source.name),
            source.partition_count(self.settings.world_partitions),
            self.settings.kafka_bootstrap,
            self.settings.kafka_replication,
            lambda topic, partition, key, value: self.outbox.add(topic, partition, key, value),
            self.flush,
            keep_values,
        )
        table.attach(self.app)
        return table

    @staticmethod
    async def events(stream: Any) -> AsyncIterator[Any]:
        """A faust stream's events, each acked only when the agent's loop body is done with it.

        faust acks an event in a ``finally``: an agent cancelled half-way through one (a
        worker stopping on SIGTERM, with ``stream_wait_empty`` off) acks it all the same, and
        the offset is committed on the way out. Measured in ``make chaos``: a render request
        in flight when its worker was stopped became neither a post nor a dead letter. Here
        the ack comes after the body, which a cancellation never reaches.
        """
        manual = stream.noack()
        async for event in manual.events():
            yield event
            await manual.ack(event)

    @staticmethod
    async def event_batches(stream: Any, max_: int, within: float) -> AsyncIterator[Sequence[Any]]:
        """:meth:`events` for ``take_events``: a batch is acked once the body is done with it."""
        manual = stream.noack()
        async for batch in manual.take_events(max_, within=within):
            yield batch
            for event in batch:
                await manual.ack(event)

    def topic(self, spec: TopicSpec) -> faust.TopicT:
        """The faust topic for a declared topic."""
        return self.topics[spec.name]

    async def send(
        self, spec: TopicSpec, key: str, value: BaseModel, partition: int | None = None
    ) -> None:
        """Produce one message (buffered; see :meth:`flush`).

        Goes straight to the app's producer rather than through faust's channel
        machinery: the topics are declared and created up front, and the shards send
        thousands of messages per tick, where faust's per-message wrapping dominates.
        The topic is tracked by the producer's metadata first (:meth:`Outbox.track`).
        """
        topic = self.settings.topic(spec.name)
        await self.outbox.track(topic)
        await self.app.producer.send(topic, key.encode(), encode(value), partition, None, None)

    @property
    def outbox(self) -> Outbox:
        """The process's :class:`~streams.outbox.Outbox` on the app's own aiokafka producer.

        faust has no batch-produce API, so this reaches its aiokafka producer (started
        with the app): one connection, and :meth:`flush` covers both paths.
        """
        producer = self.app.producer._producer  # type: ignore[attr-defined]  # noqa: SLF001 - see the docstring
        if producer is None:
            raise RuntimeError("the app's producer is not started yet")
        if self._outbox is None or self._outbox.producer is not producer:  # (re)started app
            counts = {
                self.settings.topic(spec.name): spec.partition_count(self.settings.world_partitions)
                for spec in TOPICS
            }
            self._outbox = Outbox(producer, counts)
        return self._outbox

    def send_batched(self, spec: TopicSpec, key: str, value: BaseModel) -> None:
        """Queue a keyed message in the outbox (sent by ``outbox.send``/``flush``)."""
        self.outbox.add_keyed(self.settings.topic(spec.name), key.encode(), encode(value))

    async def flush(self) -> None:
        """Send what the outbox holds; wait until the broker acknowledged every message."""
        if self._outbox is not None:
            await self._outbox.delivered()
        await self.app.producer.flush()

    async def decode_or_dead_letter(self, stage: str, spec: TopicSpec, event: Any) -> Any | None:
        """Decode an event's value; on failure dead-letter it with the reason and return None."""
        try:
            return decode(spec, event.value)
        except DecodeError as exc:
            await self.dead_letter(stage, event, str(exc))
            return None

    async def dead_letter(self, stage: str, event: Any, reason: str) -> None:
        """Send a message a stage could not process to the DLQ topic, with the reason."""
        await self.dead_letter_record(stage, event.message, reason, event.value)

    async def dead_letter_record(
        self, stage: str, msg: Any, reason: str, value: Any = None
    ) -> None:
        """The same for a record (faust ``Message`` or aiokafka ``ConsumerRecord``)."""
        key = msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else msg.key
        letter = DeadLettered(
            stage=stage,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=key,
            value=printable(msg.value if value is None else value),
            reason=reason[:2000],
            at_ms=int(time.time() * 1000),
        )
        log.warning(
            "dead-lettered %s[%s]@%s from %s: %s",
            msg.topic,
            msg.partition,
            msg.offset,
            stage,
            reason[:300],
        )
        await self.send(DLQ, stage, letter)
        metrics.dead_lettered(stage, reason)


def build_streams(settings: Settings, app_id: str) -> Streams:
    """The faust app of ``app_id`` with every declared topic, no agents yet (see
    :func:`streams.worker.create_streams`, which registers the roles' agents)."""
    _shorten_fetch_wait()
    _idempotent_producer()
    _never_commit_past_in_flight()
    _no_empty_commit()
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    app = faust.App(
        app_id,
        broker=broker_urls(settings.kafka_bootstrap),
        store=settings.store,
        datadir=str(settings.state_dir / "{conf.name}"),
        web_enabled=False,
        autodiscover=False,
        topic_replication_factor=settings.kafka_replication,
        topic_partitions=settings.world_partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        # no linger: the outbox hands the producer whole batches already, and a tick's
        # critical path crosses the broker three times (its start, a shard's own effect
        # batch, the report): 5 ms of linger at each was ~1 % of a 100k-NPC tick
        producer_linger_ms=0,
        producer_max_batch_size=512 * 1024,  # whole-tick batches (streams/outbox.py)
        producer_acks=-1,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_session_timeout_s / 5,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        table_cleanup_interval=3600.0,
    )
    streams = Streams(settings=settings, app=app)
    for spec in TOPICS:
        streams.topics[spec.name] = app.topic(
            settings.topic(spec.name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partition_count(settings.world_partitions),
            internal=False,
        )
    return streams
