"""World catalogs for the API: NPC profiles, places and event types by world name or path.

A run records its world (a name under ``catalog/worlds/`` or a directory); catalogs are
loaded once per resolved path and kept (a world directory is not edited under a run).
"""

from __future__ import annotations

import functools
from pathlib import Path

from catalog import Catalog, load_catalog
from sim.world import resolve_world


class UnknownWorld(LookupError):
    """A world name or path that is not a loadable catalog."""


@functools.lru_cache(maxsize=16)
def _load(path: str) -> Catalog:
    return load_catalog(path)


def world_path(world: str | Path) -> Path:
    """The directory of a world name or path; raises :class:`UnknownWorld` if there is none."""
    path = resolve_world(str(world))
    if not (path / "npcs.json").is_file():
        raise UnknownWorld(f"no world catalog at {world!s}")
    return path


def catalog_of(world: str | Path) -> Catalog:
    """The validated catalog of a world (cached); :class:`UnknownWorld` if missing or invalid."""
    path = world_path(world)
    try:
        return _load(str(path))
    except Exception as exc:  # CatalogError, unreadable files: all mean "no usable world"
        raise UnknownWorld(f"world {world!s} is not a valid catalog: {exc}") from exc
