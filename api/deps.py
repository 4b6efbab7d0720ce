"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from clickhouse_connect.driver.client import Client
from fastapi import Depends, Query, Request

from storage.queries import MAX_LIMIT
from worldfeed.settings import Settings


@dataclass(frozen=True)
class Storage:
    """The ClickHouse client and database the app reads from (set up in the lifespan)."""

    client: Client
    database: str


def get_storage(request: Request) -> Storage:
    """The app's :class:`Storage`."""
    storage: Storage = request.app.state.storage
    return storage


def get_settings(request: Request) -> Settings:
    """The app's :class:`Settings`."""
    settings: Settings = request.app.state.settings
    return settings


StorageDep = Annotated[Storage, Depends(get_storage)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="`next_cursor` of the previous page; omit for the first."),
]
TickFrom = Annotated[int | None, Query(ge=0, description="First tick, inclusive.")]
TickTo = Annotated[int | None, Query(ge=0, description="Last tick, inclusive.")]
RunId = Annotated[str | None, Query(min_length=1, max_length=64, description="Run id.")]
Channel = Annotated[
    str | None, Query(pattern="^(feed|chat|news)$", description="feed, chat or news.")
]
