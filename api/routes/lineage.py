"""Runs as a log: snapshots, replay, branches and comparisons (issue 11).

Admin routes (bearer token): ``POST /admin/runs/{id}/snapshots`` asks for a full-world
snapshot after the run's next tick; ``POST /admin/runs/{id}/replay`` re-derives the run
from its log and reports the first difference; ``POST /admin/runs/{id}/branch`` starts a
run that continues the world after one of its ticks. ``GET /runs/{a}/diff/{b}`` says
where two runs part.

Replays, branches and comparisons read the runs' logs from Kafka and re-derive ticks
in process, off the event loop. They are bounded: one at a time (409 while another is
running), and runs longer than ``MAX_LOG_TICKS`` are refused (use the CLI for those).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CommandsDep, SettingsDep, require_admin
from api.routes.admin import ACCEPTED, RUN_COMMAND, RUN_ID, _send
from api.schemas import CommandAcceptedPublic
from bus.runlog import UnknownRun, make_branch, read_run, send_branch
from sim.replay import BranchError, RunLog, compare, last_common_tick, replay
from sim.world import WorldIndex, load_world
from topics.models import InjectedEvent, RunCommanded
from worldfeed.settings import Settings

admin = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
public = APIRouter(prefix="/runs", tags=["runs"])

MAX_LOG_TICKS = 20_000  # ticks re-derived per request at most (~7 months at 15 min)
MAX_NPC_TICKS = 20_000_000  # and NPC-ticks (100k NPCs: 200 ticks); beyond: the CLI
MAX_INJECTED = 100
RunId = Annotated[str, Path(pattern=RUN_ID)]
_busy = asyncio.Lock()
T = TypeVar("T")

Responses = dict[int | str, dict[str, Any]]
BUSY: Responses = {
    409: {
        "description": "Another replay, branch or comparison is running; or the run's "
        "world is gone; or (branch) the catalog changed since the run"
    },
    413: {"description": "Too much to re-derive in the API: use the CLI"},
    503: {"description": "Kafka unavailable"},
}
NOT_FOUND: Responses = {404: {"description": "Unknown run"}}


class BranchRequest(BaseModel):
    """A branch of a run: the world after ``at_tick``, optionally changed."""

    model_config = ConfigDict(extra="forbid")

    at_tick: int = Field(ge=0, le=2**32 - 1, description="The parent's tick to continue after.")
    run_id: str | None = Field(
        None, pattern=RUN_ID, description="The branch's id (default: derived from the change)."
    )
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Another seed.")
    inject: list[InjectedEvent] = Field(
        default_factory=list,
        max_length=MAX_INJECTED,
        description="Events the branch's first tick takes.",
    )
    days: float | None = Field(None, gt=0, le=3650, description="Days to play (default: the rest).")
    allow_catalog_change: bool = Field(
        False, description="Branch even if the catalog changed since the parent ran."
    )


class BranchStarted(BaseModel):
    """A branch was planned and its start is in the clock's inbox."""

    run_id: str
    parent_run: str
    branch_tick: int
    restored_from: int = Field(description="The parent's snapshot tick used (-1: its start).")
    replayed: int = Field(description="Logged ticks re-derived after that snapshot.")
    stories: int = Field(description="The parent's open stories copied to the branch.")
    quotas: int = Field(description="Posting quotas the branch inherits for its first day.")
    notes: list[str] = Field(description="Snapshots refused on the way, and why.")


async def _exclusive(work: Callable[[], Awaitable[T]]) -> T:
    if _busy.locked():
        raise HTTPException(status_code=409, detail="another replay, branch or diff is running")
    async with _busy:
        return await work()


async def _log(settings: Settings, run_id: str, *, posts: bool = False) -> RunLog:
    try:
        log = await read_run(settings, run_id, posts=posts)
    except UnknownRun as exc:
        raise HTTPException(status_code=404, detail=f"run {run_id!r} not found") from exc
    except Exception as exc:
        raise HTTPException(status_code=503, detail=f"Kafka unavailable: {exc}") from exc
    if log.last_tick - log.first_tick >= MAX_LOG_TICKS:
        raise HTTPException(
            status_code=413,
            detail=f"run {run_id!r} has more than {MAX_LOG_TICKS} ticks: use the CLI",
        )
    return log


async def _world(*logs: RunLog) -> WorldIndex:
    """The runs' world, loaded off the loop; 413 if re-deriving them is too much work here."""
    try:
        index = await asyncio.to_thread(load_world, logs[0].start.world)
    except Exception as exc:
        raise HTTPException(status_code=409, detail=f"the run's world: {exc}") from exc
    work = sum(len(index.npc_ids) * (log.last_tick - log.first_tick + 1) for log in logs)
    if work > MAX_NPC_TICKS:
        raise HTTPException(
            status_code=413,
            detail=f"{work:,} NPC-ticks to re-derive, more than {MAX_NPC_TICKS:,}: use the CLI",
        )
    return index


def _loaded(index: WorldIndex | None) -> WorldIndex:
    assert index is not None  # noqa: S101 - compare asks for it only when the runs share a tick
    return index


@admin.post(
    "/runs/{run_id}/snapshots",
    **{**RUN_COMMAND, "responses": {**RUN_COMMAND["responses"], **BUSY}},
)
async def take_snapshot(
    run_id: RunId, settings: SettingsDep, commands: CommandsDep
) -> CommandAcceptedPublic:
    """Write a full-world snapshot after the run's next tick; 404 if the log has no such run."""
    await _log(settings, run_id)
    return await _send(commands, RunCommanded(command="snapshot", run_id=run_id))


@admin.post("/runs/{run_id}/replay", responses={**ACCEPTED, **NOT_FOUND, **BUSY})
async def replay_run(run_id: RunId, settings: SettingsDep) -> dict[str, Any]:
    """Re-derive the run from its log and compare every tick's state hash and events."""

    async def work() -> dict[str, Any]:
        log = await _log(settings, run_id)
        index = await _world(log)
        report = await asyncio.to_thread(replay, index, log)
        return dataclasses.asdict(report) | {"speedup": report.speedup}

    return await _exclusive(work)


@admin.post(
    "/runs/{run_id}/branch",
    status_code=202,
    response_model=BranchStarted,
    responses={
        **ACCEPTED,
        **NOT_FOUND,
        **BUSY,
        422: {"description": "A tick beyond the run, or bad input"},
    },
)
async def branch_run(run_id: RunId, body: BranchRequest, settings: SettingsDep) -> BranchStarted:
    """Start a run that continues ``run_id``'s world after ``at_tick`` (nearest snapshot,
    then the log), with another seed or injected events if asked. 409 when the catalog
    changed since the parent ran (both digests named), unless ``allow_catalog_change``."""

    async def work() -> BranchStarted:
        parent = await _log(settings, run_id)
        index = await _world(parent)
        try:
            plan = await asyncio.to_thread(
                lambda: make_branch(
                    index,
                    parent,
                    body.at_tick,
                    n_shards=settings.world_partitions,
                    run_id=body.run_id,
                    seed=body.seed,
                    injected=body.inject,
                    days=body.days,
                    allow_catalog_change=body.allow_catalog_change,
                )
            )
        except BranchError as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from exc
        try:
            await send_branch(settings, plan)
        except Exception as exc:
            raise HTTPException(status_code=503, detail=f"Kafka unavailable: {exc}") from exc
        return BranchStarted(
            run_id=plan.run_id,
            parent_run=run_id,
            branch_tick=body.at_tick,
            restored_from=plan.restored_from,
            replayed=plan.replayed,
            stories=len(plan.stories),
            quotas=len(plan.quotas),
            notes=plan.notes,
        )

    return await _exclusive(work)


@public.get("/{run_a}/diff/{run_b}", responses={**NOT_FOUND, **BUSY})
async def diff_runs(run_a: RunId, run_b: RunId, settings: SettingsDep) -> dict[str, Any]:
    """Where two runs part: the first tick whose state hash differs, the events only in
    one of them, posts per channel from there, the relationships that differ most."""

    async def work() -> dict[str, Any]:
        a = await _log(settings, run_a, posts=True)
        b = await _log(settings, run_b, posts=True)
        # the world (loaded off the loop, bounded) only when the runs share a tick
        index = await _world(a, b) if last_common_tick(a, b) is not None else None
        result = await asyncio.to_thread(compare, a, b, lambda: _loaded(index))
        return dataclasses.asdict(result)

    return await _exclusive(work)
