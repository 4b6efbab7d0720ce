"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from clickhouse_connect.driver.client import Client
from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bus.commands import CommandSender
from storage.queries import MAX_LIMIT
from worldfeed.settings import Settings


@dataclass(frozen=True)
class Storage:
    """The ClickHouse client and database the app reads from (set up in the lifespan)."""

    client: Client
    database: str


# The getters are ``async def`` though they never wait: FastAPI runs a plain ``def``
# dependency in its thread pool, a hop to another thread and back for every request
# (milliseconds each while the embedded sink's insert thread holds the GIL).


async def get_storage(request: Request) -> Storage:
    """The app's :class:`Storage`."""
    storage: Storage = request.app.state.storage
    return storage


async def get_settings(request: Request) -> Settings:
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
# Ticks are UInt32 columns: a bound beyond them would wrap in the query, so it is a 422.
MAX_TICK = 2**32 - 1
TickFrom = Annotated[int | None, Query(ge=0, le=MAX_TICK, description="First tick, inclusive.")]
TickTo = Annotated[int | None, Query(ge=0, le=MAX_TICK, description="Last tick, inclusive.")]
RunId = Annotated[str | None, Query(min_length=1, max_length=64, description="Run id.")]
Channel = Annotated[
    str | None, Query(pattern="^(feed|chat|news)$", description="feed, chat or news.")
]


async def get_commands(request: Request) -> CommandSender:
    """The app's :class:`~bus.commands.CommandSender`."""
    commands: CommandSender = request.app.state.commands
    return commands


CommandsDep = Annotated[CommandSender, Depends(get_commands)]

_bearer = HTTPBearer(auto_error=False, description="The admin token (WORLDFEED_ADMIN_TOKEN).")


def check_admin_token(settings: Settings, authorization: str | None) -> None:
    """Raise 401 without a bearer token, 403 with a wrong one."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status_code=401,
            detail="admin routes need 'Authorization: Bearer <admin token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = settings.admin_token.get_secret_value().encode()
    if not secrets.compare_digest(token.strip().encode(), expected):
        raise HTTPException(status_code=403, detail="wrong admin token")


async def require_admin(
    request: Request,
    settings: SettingsDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The request carries the admin bearer token (401 missing, 403 wrong)."""
    check_admin_token(settings, request.headers.get("authorization"))
