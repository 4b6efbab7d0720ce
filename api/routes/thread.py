"""A post's thread: its root, the reply chains and the repost tree (issue 18)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from api.deps import StorageDep
from api.schemas import PostPublic, ThreadNodePublic, ThreadPublic
from storage import queries, run_in_thread

router = APIRouter(prefix="/posts", tags=["posts"])

MAX_DEPTH = 32
MAX_NODES = 1000
NO_REACTIONS = {"seen": 0, "likes": 0, "reposts": 0, "replies": 0}


def parent_of(post: dict[str, Any]) -> str | None:
    """The post a post answers: what it replies to, or reposts; None for a root."""
    parent = post.get("reply_to") or post.get("repost_of")
    return str(parent) if parent else None


def relation_of(post: dict[str, Any]) -> Literal["root", "reply", "repost"]:
    """``reply``, ``repost`` or ``root``."""
    return "reply" if post.get("reply_to") else "repost" if post.get("repost_of") else "root"


@router.get(
    "/{post_id}/thread",
    response_model=ThreadPublic,
    responses={404: {"description": "Unknown"}},
)
async def read_thread(
    storage: StorageDep,
    post_id: Annotated[str, Path(min_length=1, max_length=64)],
    depth: Annotated[
        int, Query(ge=1, le=MAX_DEPTH, description="Levels of replies and reposts shown.")
    ] = 8,
    limit: Annotated[int, Query(ge=1, le=MAX_NODES, description="Posts shown at most.")] = 200,
) -> ThreadPublic:
    """The thread of a post: up to its root (at most ``depth`` steps), then the replies to
    and reposts of the root, level by level, oldest first, at most ``depth`` levels and
    ``limit`` posts (the path from the root to the post asked about is always shown);
    each post with its readers, likes, reposts and replies. 404 if the post is unknown."""
    db, client = storage.database, storage.client
    asked = await run_in_thread(queries.post_by_id, client, db, post_id)
    if asked is None:
        raise HTTPException(status_code=404, detail=f"post {post_id!r} not found")
    path = [asked]
    truncated = False
    while (up := parent_of(path[0])) is not None:
        if len(path) > depth or up in {p["post_id"] for p in path}:
            truncated = True  # ancestors past the depth (or a cycle in bad data)
            break
        parent = await run_in_thread(queries.post_by_id, client, db, up)
        if parent is None:  # not stored (yet), or blocked: the highest known is the root
            break
        path.insert(0, parent)
    limit = max(limit, len(path))
    nodes: dict[str, tuple[dict[str, Any], int]] = {
        p["post_id"]: (p, level) for level, p in enumerate(path)
    }
    level_ids = [path[0]["post_id"]]
    for level in range(1, depth + 1):
        room = limit - len(nodes)
        found = await run_in_thread(queries.posts_answering, client, db, level_ids, room + 1)
        fresh = [p for p in found if p["post_id"] not in nodes]
        if len(fresh) > room:
            truncated, fresh = True, fresh[:room]
        for p in fresh:
            nodes[p["post_id"]] = (p, level)
        level_ids = [pid for pid, (_, at) in nodes.items() if at == level]
        if not level_ids:
            break
        if len(nodes) >= limit:  # full: is there more below?
            if await run_in_thread(queries.posts_answering, client, db, level_ids, 1):
                truncated = True
            break
    else:  # the depth ran out: is there more below?
        if level_ids and await run_in_thread(queries.posts_answering, client, db, level_ids, 1):
            truncated = True
    counts = await run_in_thread(queries.reactions_by_post, client, db, list(nodes))
    ordered = sorted(nodes.values(), key=lambda n: (n[1], n[0]["tick"], n[0]["post_id"]))
    return ThreadPublic(
        post_id=post_id,
        root_id=path[0]["post_id"],
        path=[p["post_id"] for p in path],
        nodes=[
            ThreadNodePublic(
                post=PostPublic.model_validate(p),
                parent_id=parent_of(p),
                relation=relation_of(p),
                depth=level,
                **counts.get(p["post_id"], NO_REACTIONS),
            )
            for p, level in ordered
        ],
        truncated=truncated,
        depth=depth,
        limit=limit,
    )
