"""The read-only web UI: static HTML and vanilla JS from ``api/static/`` (no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["ui"], include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    """The feed page."""
    return FileResponse(STATIC_DIR / "index.html")


@router.get("/ui/{rest:path}")
async def ui_page(rest: str) -> FileResponse:
    """Any UI page (``/ui/npcs/<id>``): the same page, which routes on the path in JS."""
    return FileResponse(STATIC_DIR / "index.html")
