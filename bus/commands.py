"""Run commands to the clock's inbox topic: the one sender, for the admin API and the CLI.

Commands go to partition 0 of the clock inbox with the run id as key, so the clock sees
them in the order they were accepted. The aiokafka producer is started on the first
command (the API serves reads without Kafka) and stopped by :meth:`CommandSender.close`.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer

from topics import CLOCK_INBOX
from topics.codec import encode
from topics.models import RunCommanded
from worldfeed.settings import Settings

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 15.0


class CommandSender:
    """Produces :class:`RunCommanded` messages with one lazily started producer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic(CLOCK_INBOX.name)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    acks="all",
                    enable_idempotence=True,
                    request_timeout_ms=int(SEND_TIMEOUT_S * 1000),
                )
                try:
                    await asyncio.wait_for(producer.start(), SEND_TIMEOUT_S)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def send(self, command: RunCommanded) -> tuple[int, int]:
        """Write one command and wait for the broker's ack; returns (partition, offset)."""
        producer = await self._started()
        meta = await asyncio.wait_for(
            producer.send_and_wait(
                self.topic, encode(command), key=command.run_id.encode(), partition=0
            ),
            SEND_TIMEOUT_S,
        )
        log.info("run command %s for %s at offset %s", command.command, command.run_id, meta.offset)
        return meta.partition, meta.offset

    async def close(self) -> None:
        """Stop the producer if it was started."""
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None


async def send_command(settings: Settings, command: RunCommanded) -> tuple[int, int]:
    """Send one command with a producer of its own (a CLI process); returns (partition, offset)."""
    sender = CommandSender(settings)
    try:
        return await sender.send(command)
    finally:
        await sender.close()
