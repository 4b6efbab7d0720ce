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

from catalog import load_catalog
from catalog.loader import assemble, read_files
from catalog.models import CATALOG_FILES, Npc
from sim.world import Card, WorldIndex
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


def dump(index: WorldIndex) -> bytes:
    """What :func:`restore` needs, with a header naming the format and the body's sha256."""
    catalog = index.catalog
    body = marshal.dumps(
        _shared(
            {
                "digest": catalog.digest,
                "npc_ids": index.npc_ids,
                "location": index.location,
                "occupancy": index.occupancy,
                "turned_away": index.turned_away,
                "traits": index.traits,
                "relationships": index.relationships,
                "n_relationships": len(catalog.relationships),
                "tags": index.tags,
                "cards": {n: tuple(c) for n, c in index.cards.items()},
                "profiles": {n: catalog.npcs[n].model_dump_json().encode() for n in index.npc_ids},
            },
            {},
        )
    )
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


def restore(root: Path, blob: bytes) -> WorldIndex:
    """The index :func:`dump` wrote, with the world's small files read (and validated) again.

    Raises ValueError when the blob is not a whole cache of this format."""
    if not blob.startswith(FORMAT):
        raise ValueError("not an index cache of this format")
    head = len(FORMAT)
    checksum, body = blob[head : head + 64], blob[head + 65 :]
    if (
        blob[head + 64 : head + 65] != b"\n"
        or hashlib.sha256(body).digest().hex() != checksum.decode()
    ):
        raise ValueError("checksum mismatch (a damaged or partly written file)")
    # our own file in the user's state directory, written by dump(), whole and undamaged
    data: dict[str, Any] = marshal.loads(body)  # noqa: S302
    parsed = read_files(root, [n for n in CATALOG_FILES if n not in _LARGE])
    parsed["npcs.json"] = []
    parsed["relationships.json"] = []
    catalog = assemble(parsed)
    catalog.npcs = Profiles(data["profiles"])
    catalog.relationships = Deferred(
        lambda: list(read_files(root, ["relationships.json"])["relationships.json"]),
        data["n_relationships"],
    )
    catalog.known_digest(data["digest"])
    index = WorldIndex(catalog=catalog)
    index.npc_ids = data["npc_ids"]
    index.location = data["location"]
    index.occupancy = data["occupancy"]
    index.turned_away = data["turned_away"]
    index.traits = data["traits"]
    index.relationships = data["relationships"]
    index.tags = data["tags"]
    index.cards = {n: Card._make(c) for n, c in data["cards"].items()}
    index.index_rules()
    return index


def load_index(
    root: Path, directory: Path | None = None, min_bytes: int | None = None
) -> WorldIndex:
    """The world's index: from the cache when it holds these files, else built (and cached).

    ``directory``: the cache (default :func:`cache_dir`); ``min_bytes``: the smallest
    ``npcs.json`` worth caching (default ``WORLDFEED_INDEX_CACHE_MIN_BYTES`` or 1 MiB)."""
    directory = directory if directory is not None else cache_dir()
    if min_bytes is None:
        min_bytes = int(os.environ.get("WORLDFEED_INDEX_CACHE_MIN_BYTES", MIN_BYTES))
    npcs = root / "npcs.json"
    if directory is None or not npcs.exists() or npcs.stat().st_size < min_bytes:
        return WorldIndex.build(load_catalog(root))
    path = directory / f"{files_key(root)}.idx"
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("world index cache %s unreadable (%s): validating the world", path, exc)
    else:
        try:
            return restore(root, blob)
        except (ValueError, EOFError, TypeError, KeyError) as exc:
            log.warning("world index cache %s rejected (%s): validating the world", path, exc)
    index = WorldIndex.build(load_catalog(root))
    _write(path, dump(index))
    return index


def _write(path: Path, blob: bytes) -> None:
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
