"""World catalogs for the API: by world name, loaded off the event loop, kept within a
memory budget.

A request names a world (``town``, or a world made by ``POST /admin/worlds``); names
resolve under the worlds directories (``catalog/worlds/``, then the API's own), never
as a path, so no answer tells a client whether some server path exists. A run records
the world its start command carried: a name, or an absolute directory that the system
(``worldfeed up --catalog-dir``, the admin API for its own worlds) recorded; responses
show only its name (:func:`display_name`).

A big catalog takes seconds to load and about seven times its JSON size in memory
(2,000 NPCs at relationship density 0.5: 19 MB of JSON, 4 s, 134 MB), so catalogs load
in a worker thread, one load per world at a time, and stay cached until the estimated
memory of the cached ones would pass ``max_bytes`` (least recently used go first).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path, PurePath

from catalog import Catalog, load_catalog
from catalog.models import CATALOG_FILES
from worldfeed.settings import ROOT

log = logging.getLogger(__name__)

# the worlds that ship with the code; the world processor resolves these names itself
CATALOG_WORLDS = ROOT / "catalog" / "worlds"
WORLD_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"
_WORLD_NAME = re.compile(WORLD_NAME)
# Memory of a loaded catalog per byte of its JSON files (measured: 5.7 to 6.9, rounded up).
MEMORY_PER_JSON_BYTE = 7


class UnknownWorld(LookupError):
    """A world name that names no loadable catalog (the message shows no server path)."""


def display_name(world: str | None) -> str | None:
    """A recorded world as responses show it: its name, never a server directory."""
    return None if world is None else PurePath(world).name


def catalog_bytes(path: Path) -> int:
    """Estimated memory of the catalog at ``path`` once loaded."""
    size = 0
    for name in CATALOG_FILES:
        try:
            size += (path / name).stat().st_size
        except OSError:
            pass
    return size * MEMORY_PER_JSON_BYTE


class WorldCatalogs:
    """Resolves world names under ``dirs`` and keeps loaded catalogs within ``max_bytes``.

    The blocking methods (:meth:`path_of`, :meth:`load`) are thread-safe; the async ones
    run them in a worker thread. A catalog larger than ``max_bytes`` is loaded for the
    caller but not kept.
    """

    def __init__(self, dirs: Sequence[Path], max_bytes: int) -> None:
        self.dirs = list(dirs)
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._lock = threading.Lock()
        self._cache: OrderedDict[Path, tuple[Catalog, int]] = OrderedDict()
        self._loading: dict[Path, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def path_of(self, name: str) -> Path:
        """The directory of the world called ``name``; :class:`UnknownWorld` if none."""
        if not _WORLD_NAME.fullmatch(name):
            raise UnknownWorld(f"{name[:100]!r} is not a world name ({WORLD_NAME})")
        for directory in self.dirs:
            path = directory / name
            if (path / "npcs.json").is_file():
                return path.resolve()
        raise UnknownWorld(f"no world named {name!r}")

    def recorded_path(self, world: str) -> Path:
        """The directory of a world a run recorded: a name, or an absolute directory."""
        if _WORLD_NAME.fullmatch(world):
            return self.path_of(world)
        path = Path(world)
        if path.is_absolute() and (path / "npcs.json").is_file():
            return path
        raise UnknownWorld(f"the run's world {display_name(world)!r} is gone")

    def load(self, path: Path) -> Catalog:
        """The validated catalog at ``path``, from the cache or loaded now (blocking)."""
        with self._lock:
            gate = self._loading.setdefault(path, threading.Lock())
        with gate:  # one load per world: a second caller waits for the first's result
            with self._lock:
                hit = self._cache.get(path)
                if hit is not None:
                    self._cache.move_to_end(path)
                    return hit[0]
            try:
                try:
                    catalog = load_catalog(path)
                except Exception as exc:  # CatalogError, unreadable files: no usable world
                    log.warning("world catalog %s cannot be loaded: %s", path, exc)
                    raise UnknownWorld(f"world {path.name!r} is not a valid catalog") from exc
                self._keep(path, catalog, catalog_bytes(path))
            finally:
                with self._lock:
                    self._loading.pop(path, None)
            return catalog

    def _keep(self, path: Path, catalog: Catalog, size: int) -> None:
        with self._lock:
            if size > self.max_bytes:
                log.info("world %s (~%d MB) exceeds the catalog cache", path.name, size >> 20)
                return
            while self._cache and self.nbytes + size > self.max_bytes:
                _, (_, dropped) = self._cache.popitem(last=False)
                self.nbytes -= dropped
            self._cache[path] = (catalog, size)
            self.nbytes += size

    async def by_name(self, name: str) -> Catalog:
        """The catalog of the world called ``name``, loaded off the event loop."""
        path = await asyncio.to_thread(self.path_of, name)
        return await asyncio.to_thread(self.load, path)

    async def of_run(self, world: str | None, default: Path) -> Catalog:
        """The catalog of a run's recorded world (``default`` when it recorded none)."""
        path = default if world is None else await asyncio.to_thread(self.recorded_path, world)
        return await asyncio.to_thread(self.load, path)
