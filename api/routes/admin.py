"""Admin: start, pause, resume and stop runs, change their speed, inject events, seed
synthetic worlds.

Every route needs ``Authorization: Bearer <WORLDFEED_ADMIN_TOKEN>`` (401 without, 403
wrong); the app also checks it before reading any ``/admin`` request body. Commands go
to the clock's inbox topic; the clock applies them in order (202 Accepted).
"""

from __future__ import annotations

import asyncio
import math
import pathlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CommandsDep, SettingsDep, StorageDep, require_admin
from api.schemas import CommandAcceptedPublic, WorldCreatedPublic
from api.worlds import CATALOG_WORLDS, WORLD_NAME, UnknownWorld, WorldCatalogs
from catalog import Catalog
from catalog.event_refs import event_problems
from catalog.generate import NEIGHBORHOOD, generate_world, write_world
from sim.calendar import MINUTES_PER_DAY, minute_at
from sim.deliberate import deliberation
from storage import queries, run_in_thread
from topics.models import MAX_START_MINUTE, InjectedEvent, RunCommanded

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

RUN_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
NPC_ID = r"^[A-Za-z0-9_.-]{1,64}$"
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
MAX_SPEED = 100_000
ACCEPTED: dict[int | str, dict[str, Any]] = {
    400: {"description": "A body that is not UTF-8 JSON"},
    401: {"description": "No admin token"},
    403: {"description": "Wrong admin token"},
}
# a command for a run that exists: accepted (202) once the clock's inbox has it
RUN_COMMAND: dict[str, Any] = {
    "status_code": 202,
    "response_model": CommandAcceptedPublic,
    "responses": {
        **ACCEPTED,
        404: {"description": "Unknown run"},
        503: {"description": "Kafka unavailable"},
    },
}


class RunStart(BaseModel):
    """A run to start."""

    model_config = ConfigDict(extra="forbid")

    run_id: str | None = Field(None, pattern=RUN_ID, description="Omit to get a fresh id.")
    seed: int = Field(1, ge=0, le=2**63 - 1, description="Run seed.")
    world: str = Field(
        "town",
        pattern=WORLD_NAME,
        description="World name: one under catalog/worlds, or one made by POST /admin/worlds.",
    )
    days: float = Field(1.0, gt=0, le=3650, description="Simulated days to play.")
    speed: float = Field(0.0, ge=0, le=MAX_SPEED, description="0 = as fast as possible.")
    step_minutes: int = Field(
        15, ge=1, le=MINUTES_PER_DAY, description="Simulated minutes per tick."
    )
    start_day: int = Field(
        1,
        ge=1,
        le=MAX_START_MINUTE // MINUTES_PER_DAY,
        description="Simulated day (1-based) the run starts on.",
    )
    start_time: str = Field(
        "00:00", pattern=HHMM, description="Time of day (HH:MM) the run starts at."
    )


class RunSpeed(BaseModel):
    """A run's new speed, from its next tick on."""

    model_config = ConfigDict(extra="forbid")

    speed: float = Field(ge=0, le=MAX_SPEED, description="0 = as fast as possible, N = N x real.")


class Inject(BaseModel):
    """An event to inject on the run's next tick (checked against the run's catalog)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64, description="Event type id.")
    actor: str = Field(pattern=NPC_ID, description="Acting NPC id.")
    target: str | None = Field(None, pattern=NPC_ID, description="Target NPC id.")
    place: str | None = Field(None, pattern=NPC_ID, description="Place id.")
    summary: str | None = Field(None, min_length=1, max_length=300)


class WorldSeed(BaseModel):
    """A synthetic world to generate."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=WORLD_NAME, description="World name (its directory's name).")
    npcs: int = Field(100, ge=5, le=20_000, description="NPC count.")
    seed: int = Field(1, ge=0, le=2**63 - 1)
    places: int | None = Field(None, ge=8, le=5_000, description="Place count (default npcs/10).")
    relationship_density: float = Field(
        0.05,
        ge=0,
        le=1,
        description=f"Fraction of an NPC's {NEIGHBORHOOD} nearest NPCs it knows; the server caps "
        f"npcs x {NEIGHBORHOOD} x density (WORLDFEED_WORLD_MAX_RELATIONSHIPS).",
    )


def _unprocessable(field: str, message: str, value: Any) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", field), "msg": message, "input": value}]
    )


def _catalogs(request: Request) -> WorldCatalogs:
    catalogs: WorldCatalogs = request.app.state.catalogs
    return catalogs


async def _known_run(storage: StorageDep, run_id: str) -> dict[str, Any]:
    run = await run_in_thread(queries.run_by_id, storage.client, storage.database, run_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"run {run_id!r} not found")
    return run


async def _send(commands: CommandsDep, command: RunCommanded) -> CommandAcceptedPublic:
    try:
        partition, offset = await commands.send(command)
    except Exception as exc:
        raise HTTPException(
            status_code=503, detail=f"Kafka unavailable: {type(exc).__name__}: {exc}"
        ) from exc
    return CommandAcceptedPublic(
        run_id=command.run_id,
        command=command.command,
        topic=commands.topic,
        partition=partition,
        offset=offset,
    )


@router.post(
    "/runs",
    status_code=202,
    response_model=CommandAcceptedPublic,
    responses={
        **ACCEPTED,
        409: {"description": "Run exists"},
        503: {"description": "Kafka unavailable"},
    },
)
async def start_run(
    body: RunStart,
    request: Request,
    storage: StorageDep,
    commands: CommandsDep,
    settings: SettingsDep,
) -> CommandAcceptedPublic:
    """Start a run on a world by name (under catalog/worlds, or made by POST /admin/worlds).
    It deliberates as ``WORLDFEED_DECIDE_BUDGET`` says (off by default)."""
    catalogs = _catalogs(request)
    try:
        path = await asyncio.to_thread(catalogs.path_of, body.world)
        catalog = await asyncio.to_thread(catalogs.load, path)  # valid, loaded off the loop
    except UnknownWorld as exc:
        raise _unprocessable("world", str(exc), body.world) from exc
    # the world processor finds names under catalog/worlds only: others go as the directory
    world = body.world if path.parent == CATALOG_WORLDS.resolve() else str(path)
    run_id = body.run_id or f"run-{body.seed}-{uuid.uuid4().hex[:8]}"
    if await run_in_thread(queries.run_by_id, storage.client, storage.database, run_id):
        raise HTTPException(status_code=409, detail=f"run {run_id!r} already exists")
    command = RunCommanded(
        command="start",
        run_id=run_id,
        seed=body.seed,
        world=world,
        days=body.days,
        speed=body.speed,
        step_minutes=body.step_minutes,
        start_minute=minute_at(body.start_day, body.start_time),
    )
    if settings.decide_budget:
        budget, deadline = deliberation(
            catalog.decide, settings.decide_budget, settings.decide_deadline_ticks
        )
        command = command.model_copy(update={"decide_budget": budget, "decide_deadline": deadline})
    return await _send(commands, command)


def _control(name: str) -> Any:
    async def control(
        run_id: Annotated[str, Path(pattern=RUN_ID)], storage: StorageDep, commands: CommandsDep
    ) -> CommandAcceptedPublic:
        await _known_run(storage, run_id)
        return await _send(commands, RunCommanded(command=name, run_id=run_id))

    control.__name__ = f"{name}_run"
    control.__doc__ = f"{name.capitalize()} a run; 404 if unknown."
    return control


for _name in ("pause", "resume", "stop"):
    router.post(
        f"/runs/{{run_id}}/{_name}",
        **RUN_COMMAND,
        name=f"{_name}_run",
    )(_control(_name))


@router.post(
    "/runs/{run_id}/speed",
    **RUN_COMMAND,
)
async def set_speed(
    run_id: Annotated[str, Path(pattern=RUN_ID)],
    body: RunSpeed,
    storage: StorageDep,
    commands: CommandsDep,
) -> CommandAcceptedPublic:
    """Change a run's speed (0 = as fast as possible) from its next tick on; 404 if unknown."""
    await _known_run(storage, run_id)
    return await _send(commands, RunCommanded(command="speed", run_id=run_id, speed=body.speed))


@router.post(
    "/runs/{run_id}/inject",
    **{
        **RUN_COMMAND,
        "responses": {**RUN_COMMAND["responses"], 409: {"description": "The run's world is gone"}},
    },
)
async def inject_event(
    run_id: Annotated[str, Path(pattern=RUN_ID)],
    body: Inject,
    request: Request,
    storage: StorageDep,
    settings: SettingsDep,
    commands: CommandsDep,
) -> CommandAcceptedPublic:
    """Inject an event into a run; one its world cannot have: 422 naming the field."""
    run = await _known_run(storage, run_id)
    try:
        catalog = await _catalogs(request).of_run(run.get("world"), settings.catalog_dir)
    except UnknownWorld as exc:
        raise HTTPException(status_code=409, detail=f"the run's world is gone: {exc}") from exc
    problems = event_problems(catalog, body.type, body.actor, body.target, body.place)
    if problems:
        first = problems[0]
        raise _unprocessable(first.field, first.message, first.value)
    event = InjectedEvent(**body.model_dump())
    return await _send(commands, RunCommanded(command="inject", run_id=run_id, event=event))


@router.post(
    "/worlds",
    status_code=201,
    response_model=WorldCreatedPublic,
    responses={
        **ACCEPTED,
        409: {"description": "World exists"},
        429: {"description": "Another world is being generated; retry after `Retry-After`"},
    },
)
async def seed_world(
    body: WorldSeed, request: Request, settings: SettingsDep
) -> WorldCreatedPublic:
    """Generate a synthetic world (one at a time, bounded); start runs on it by its ``name``."""
    # each NPC knows about density x its neighborhood (the NEIGHBORHOOD nearest NPCs)
    neighborhood = min(NEIGHBORHOOD, body.npcs - 1)
    relationships = math.ceil(body.npcs * neighborhood * body.relationship_density)
    if relationships > settings.world_max_relationships:
        raise _unprocessable(
            "relationship_density",
            f"{body.npcs} NPCs x {neighborhood} neighbors x {body.relationship_density:g} = "
            f"{relationships} relationships, more than this server makes "
            f"({settings.world_max_relationships})",
            body.relationship_density,
        )
    state = request.app.state
    busy: asyncio.Future[Catalog] | None = state.seeding
    if busy is not None and not busy.done():
        raise HTTPException(
            status_code=429,
            detail="another world is being generated; one at a time",
            headers={"Retry-After": "10"},
        )
    worlds_dir: pathlib.Path = state.worlds_dir
    directory = worlds_dir / body.name
    if directory.exists() or (CATALOG_WORLDS / body.name).exists():
        raise HTTPException(status_code=409, detail=f"world {body.name!r} already exists")
    loop = asyncio.get_running_loop()
    # the job owns the slot until its thread ends, even if this request is cancelled
    job = loop.run_in_executor(None, _make_world, body, directory)
    state.seeding = job
    try:
        catalog = await asyncio.shield(job)
    except ValueError as exc:
        raise _unprocessable("places", str(exc), body.places) from exc
    return WorldCreatedPublic(
        name=body.name,
        npcs=len(catalog.npcs),
        places=len(catalog.places),
        relationships=len(catalog.relationships),
    )


def _make_world(body: WorldSeed, directory: pathlib.Path) -> Catalog:
    """Generate and write a world (blocking: runs in a worker thread)."""
    catalog = generate_world(body.npcs, body.seed, body.places, body.relationship_density)
    write_world(catalog, directory)
    return catalog
