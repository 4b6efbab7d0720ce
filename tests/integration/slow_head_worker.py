"""A faust worker for ``test_commit_in_flight``: one agent of concurrency 2, built by
:func:`streams.app.build_streams` (so with its consumer patches), on a test topic.

A message ``slow`` is never finished; any other is answered at once. Each prints
``<what> <partition>@<offset>`` when it starts. Settings come from the environment.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import faust

from streams.app import build_streams
from worldfeed.settings import Settings


def main(topic_name: str) -> None:
    settings = Settings()
    streams = build_streams(settings, settings.app_id)
    topic = streams.app.topic(
        topic_name, key_type=bytes, value_type=bytes, key_serializer="raw",
        value_serializer="raw", partitions=2, internal=False,
    )  # fmt: skip

    @streams.app.agent(topic, name="slow_head", concurrency=2)
    async def work(stream: Any) -> None:
        async for event in streams.events(stream):
            m = event.message
            print(f"{event.value.decode()} {m.partition}@{m.offset}", flush=True)
            if event.value == b"slow":
                await asyncio.sleep(3600)

    faust.Worker(streams.app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1])
