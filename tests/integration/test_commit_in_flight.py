"""A message still in flight when its worker dies is answered by the next owner.

On a real broker, with a real faust worker of concurrency 2: partition 0 holds a message
that is never finished, then three that are answered at once. Once the worker has
committed (observed on partition 1), it is killed with SIGKILL and a second worker
starts. faust 0.15.3 alone commits partition 0 past the unfinished message (issue #606),
and the second worker never sees it; with :func:`streams.app._never_commit_past_in_flight`
it starts from it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.fixtures.kafka import create_topic
from tests.fixtures.processes import Procs
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WORKER = str(Path(__file__).with_name("slow_head_worker.py"))


async def _produce(bootstrap: str, topic: str, values: list[bytes], partition: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k", partition=partition)
    finally:
        await producer.stop()


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(tp)
    finally:
        await consumer.stop()


def _wait_log(procs: Procs, name: str, lines: list[str], timeout_s: float) -> None:
    proc = dict(procs.running)[name]
    deadline = time.monotonic() + timeout_s
    while not all(line in procs.log(name) for line in lines):
        assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{procs.log(name)[-3000:]}"
        assert time.monotonic() < deadline, (
            f"{name} never printed {lines}:\n{procs.log(name)[-3000:]}"
        )
        time.sleep(0.2)


def test_a_worker_killed_mid_message_leaves_it_to_the_next(settings_factory, procs: Procs) -> None:
    settings: Settings = settings_factory()
    topic = settings.topic("slow-head")
    bootstrap = settings.kafka_bootstrap

    asyncio.run(create_topic(bootstrap, topic, 2))
    asyncio.run(_produce(bootstrap, topic, [b"slow", b"fast", b"fast", b"fast"], 0))
    procs.start_command("first", settings, sys.executable, WORKER, topic)
    _wait_log(procs, "first", ["slow 0@0", "fast 0@1", "fast 0@2", "fast 0@3"], 120)

    # a commit made after partition 0's acks: partition 1's message committed
    asyncio.run(_produce(bootstrap, topic, [b"fast"], 1))
    _wait_log(procs, "first", ["fast 1@0"], 60)
    deadline = time.monotonic() + 60
    while asyncio.run(_committed(bootstrap, settings.app_id, TopicPartition(topic, 1))) != 1:
        assert time.monotonic() < deadline, "partition 1 was never committed"
        time.sleep(0.5)
    head = asyncio.run(_committed(bootstrap, settings.app_id, TopicPartition(topic, 0)))
    assert head in (None, 0), f"partition 0 committed at {head}, past its message in flight"

    procs.kill("first", signal.SIGKILL)
    procs.start_command("second", settings, sys.executable, WORKER, topic)
    _wait_log(procs, "second", ["slow 0@0"], 180)
