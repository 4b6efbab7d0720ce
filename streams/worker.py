"""A stream worker: the faust app of :mod:`streams.app` with the agents of its roles.

A process runs the roles it is asked for: ``clock``, ``world`` (the shards), ``impact``,
``render``, ``deliberate`` (decisions with the LLM) and ``sink`` (the ClickHouse writer;
in embedded mode it runs inside the API process, because chDB allows one engine per
process). The processors import only :class:`~streams.app.Streams`; this module, which
imports every processor, is imported by none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from streams import clock, deliberate, impact, render, sink, world
from streams.app import Streams, build_streams
from worldfeed.settings import Settings

REGISTER: dict[str, Callable[[Streams], None]] = {
    "clock": clock.register,
    "world": world.register,
    "impact": impact.register,
    "render": render.register,
    "deliberate": deliberate.register,
    "sink": sink.register,
}
ROLES = tuple(REGISTER)


def app_id_for(settings: Settings, roles: Iterable[str]) -> str:
    """The faust app id (and consumer group) of a worker with these roles."""
    return f"{settings.app_id}-{settings.topic_prefix.strip('.')}-{'-'.join(roles)}"


def create_streams(
    settings: Settings,
    roles: Iterable[str] = ROLES,
    app_id: str | None = None,
) -> Streams:
    """Build the faust app for the given roles and register their agents."""
    roles = tuple(roles)
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; known: {ROLES}")
    streams = build_streams(settings, app_id or app_id_for(settings, roles))
    for role in roles:
        REGISTER[role](streams)
    return streams
