"""A world index cached on disk, so that no worker validates a large world again.

Loading a world of 100k NPCs means validating 126 MB of profiles and 500k
relationships, checking every cross-reference and indexing who is where at each hour:
about 7 s of a quiet core, paid again by every worker on every (re)start. The first
process that loads a world writes what the index derived from it to
``<cache dir>/<key>.idx``; every later load of the same files reads that instead:

* the key is a sha256 of the world's files, byte for byte, and of the code that
  validates and indexes them (a changed model, check or admission rule is a new key),
  so a cache can never answer for other files or other rules;
* the body is checked against its own sha256 before it is decoded, so a damaged file
  is rebuilt (with a warning), never trusted;
* it holds the derived lookups (whereabouts by hour, occupancy, traits, relationships,
  the directory of :class:`~sim.world.Card`), the catalog's content digest, and each
  profile as the JSON its validated model wrote. Profiles are built again only when
  something asks for one (:class:`Profiles`); relationships.json is read again only when
  something iterates the catalog's relationships (the API's NPC page);
* the small files (world, places, event types, goals, templates, ...) are validated on
  every load as before: they are a few ms.

What goes in is the index's to say (:meth:`sim.world.WorldIndex.cached` and ``restore``,
:func:`sim.world.load_index`); this module is the file, its key and the lazy containers.

``WORLDFEED_INDEX_CACHE``: the cache directory (default ``.local/index-cache``), or
``off``; the newest :data:`KEEP` files are kept. Worlds whose ``npcs.json`` is under
``WORLDFEED_INDEX_CACHE_MIN_BYTES`` (1 MiB, about 800 NPCs) are loaded directly: they take
milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

from catalog.loader import assemble, read_files
from catalog.models import CATALOG_FILES, Catalog, Npc
from worldfeed.settings import ROOT

log = logging.getLogger(__name__)

FORMAT = b"worldfeed-index-1\n"
MIN_BYTES = 2**20
_LARGE = ("npcs.json", "relationships.json")  # what the cache stands in for
_CODE = (  # what validates and indexes a world: a change to any is a new key
    "catalog/models.py",
    "catalog/checks.py",
    "catalog/loader.py",
    "catalog/event_refs.py",
    "sim/world.py",
    "sim/worldcache.py",
    "worldfeed/ids.py",
)
KEEP = 8  # cached indexes kept (the newest); older ones are removed when one is written

T = TypeVar("T")


class Profiles(Mapping[str, Npc]):
    """NPC profiles by id, each validated from its JSON on first use and kept."""

    def __init__(self, raw: dict[str, bytes]) -> None:
        self._raw = raw
        self._built: dict[str, Npc] = {}

    def __getitem__(self, npc_id: str) -> Npc:
        npc = self._built.get(npc_id)
        if npc is None:
            npc = self._built[npc_id] = Npc.model_validate_json(self._raw[npc_id])
        return npc

    def __contains__(self, npc_id: object) -> bool:
        return npc_id in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class Deferred(Sequence[T]):
    """A list read when first used (the relationships: the index holds what ticks need)."""

    def __init__(self, load: Callable[[], list[T]], length: int) -> None:
        self._load = load
        self._items: list[T] | None = None
        self._length = length

    def _list(self) -> list[T]:
        if self._items is None:
            self._items = self._load()
        return self._items

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[T]: ...
    def __getitem__(self, i: int | slice) -> T | Sequence[T]:
        return self._list()[i]

    def __iter__(self) -> Iterator[T]:
        return iter(self._list())

    def __len__(self) -> int:
        return self._length


def cache_dir() -> Path | None:
    """Where indexes are cached (``WORLDFEED_INDEX_CACHE``), or None when it is ``off``."""
    where = os.environ.get("WORLDFEED_INDEX_CACHE", str(ROOT / ".local" / "index-cache"))
    return None if where.strip().lower() in ("off", "0", "false", "") else Path(where)


def files_key(root: Path) -> str:
    """sha256 of the world's files and of the code that validates and indexes them."""
    h = hashlib.sha256(FORMAT)
    for rel in _CODE:
        h.update((ROOT / rel).read_bytes())
    for name in CATALOG_FILES:
        file = root / name
        h.update(name.encode() + b"\0")
        if file.exists():
            data = file.read_bytes()
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)
        else:
            h.update(b"absent")
    return h.hexdigest()


def pack(data: dict[str, Any]) -> bytes:
    """The cache file of ``data``: a header naming the format and the body's sha256."""
    body = marshal.dumps(_shared(data, {}))
    return FORMAT + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def _shared(obj: Any, seen: dict[Any, Any]) -> Any:
    """``obj`` with equal strings, floats, tuples and frozensets made one object each.

    marshal writes an object it has written before as a reference, and reads it back as
    one: a place id in 2.4M hourly whereabouts or a tag set in 500k relationships is then
    decoded once (and held once in memory), not once per use."""
    if isinstance(obj, float):  # keyed by its bits: -0.0 equals 0.0 but is not the same
        return seen.setdefault(("float", obj.hex()), obj)
    if isinstance(obj, str | tuple | frozenset):
        if isinstance(obj, tuple):
            obj = tuple(_shared(x, seen) for x in obj)
        return seen.setdefault(obj, obj)
    if isinstance(obj, dict):
        return {_shared(k, seen): _shared(v, seen) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_shared(x, seen) for x in obj]
    return obj


def unpack(blob: bytes) -> dict[str, Any]:
    """What :func:`pack` wrote; ValueError when it is not a whole file of this format."""
    if not blob.startswith(FORMAT):
        raise ValueError("not an index cache of this format")
    head = len(FORMAT)
    checksum, body = blob[head : head + 64], blob[head + 65 :]
    if (
        blob[head + 64 : head + 65] != b"\n"
        or hashlib.sha256(body).digest().hex() != checksum.decode()
    ):
        raise ValueError("checksum mismatch (a damaged or partly written file)")
    # our own file in the user's state directory, written by pack(), whole and undamaged
    data = marshal.loads(body)  # noqa: S302
    if not isinstance(data, dict):
        raise ValueError("not an index cache of this format")
    return data


def lazy_catalog(
    root: Path, profiles: dict[str, bytes], n_relationships: int, digest: str
) -> Catalog:
    """The world's catalog with its small files read and validated again (a few ms), its
    profiles built on first use and relationships.json read when first iterated."""
    parsed = read_files(root, [n for n in CATALOG_FILES if n not in _LARGE])
    parsed["npcs.json"] = []
    parsed["relationships.json"] = []
    catalog = assemble(parsed)
    catalog.npcs = Profiles(profiles)
    catalog.relationships = Deferred(
        lambda: list(read_files(root, ["relationships.json"])["relationships.json"]),
        n_relationships,
    )
    catalog.known_digest(digest)
    return catalog


def min_bytes() -> int:
    """The smallest ``npcs.json`` worth caching (``WORLDFEED_INDEX_CACHE_MIN_BYTES``)."""
    return int(os.environ.get("WORLDFEED_INDEX_CACHE_MIN_BYTES", MIN_BYTES))


def write(path: Path, blob: bytes) -> None:
    """Write atomically (a reader sees the whole file or none); a failure only logs."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".idx-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("world index not cached at %s: %s", path, exc)
        return
    log.info("world index cached at %s (%.1f MB)", path, len(blob) / 1e6)
    _prune(path.parent, KEEP)


def _prune(directory: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest cached indexes (one per world and code version)."""
    try:
        found = sorted(((f.stat().st_mtime_ns, f) for f in directory.glob("*.idx")), reverse=True)
    except OSError:  # a file removed while listing: another process prunes too
        return
    for _, old in found[keep:]:
        old.unlink(missing_ok=True)
