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

import contextlib
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

FORMAT = b"worldfeed-index-3\n"
MIN_BYTES = 2**20
_LARGE = ("npcs.json", "relationships.json")  # what the cache stands in for
_CODE = (  # what validates and indexes a world: a change to any is a new key
    "catalog/models.py",
    "catalog/checks.py",
    "catalog/loader.py",
    "catalog/stream.py",
    "catalog/digest.py",
    "catalog/event_refs.py",
    "sim/world.py",
    "sim/worldcache.py",
    "worldfeed/ids.py",
)
KEEP = 8  # cached indexes kept (the newest); older ones are removed when one is written
BUCKETS = 840  # lcm(1..8): any shard count dividing it owns whole buckets (sim.world)

T = TypeVar("T")


class Sections:
    """What each NPC owns (traits, relationships, tags, profile), in :data:`BUCKETS`
    marshal sections, decoded a section at a time into the :class:`Owned` dicts that ask.

    A worker's shards read their own NPCs, so it decodes about its share of the sections;
    a read of any other NPC decodes that NPC's section too, so what is read never depends
    on which shards a worker holds (only the memory does)."""

    def __init__(self, sections: Sequence[bytes], bucket_of: dict[str, int]) -> None:
        self._sections = sections  # raw, read when decoded (a file's :class:`Payloads`)
        self._decoded = [False] * len(sections)
        self._bucket_of = bucket_of
        self._fields: dict[str, dict[Any, Any]] = {}
        self._left = len(sections)

    def field(self, name: str, into: dict[Any, Any]) -> None:
        """Have section field ``name`` land in ``into`` as sections are decoded."""
        self._fields[name] = into

    def fill(self, npc_id: object) -> bool:
        """Decode the section of ``npc_id`` unless it is decoded; whether it was decoded now."""
        bucket = self._bucket_of.get(npc_id) if isinstance(npc_id, str) else None
        return bucket is not None and self._decode(bucket)

    def fill_all(self) -> None:
        """Decode every section (an iteration over all NPCs' owned data)."""
        for bucket in range(len(self._sections)):
            self._decode(bucket)

    def _decode(self, bucket: int) -> bool:
        if self._decoded[bucket]:
            return False
        self._decoded[bucket] = True
        data = marshal.loads(self._sections[bucket])  # noqa: S302  # checked when read (read)
        for name, into in self._fields.items():
            dict.update(into, data[name])
        self._left -= 1
        if not self._left:  # all decoded: plain dicts from now on (no Python-level get)
            for into in self._fields.values():
                into.__class__ = Filled
        return True

    @staticmethod
    def split(
        owned: dict[str, dict[Any, Any]], bucket_of: dict[str, int], owner: dict[str, Any]
    ) -> list[bytes]:
        """The sections of ``owned`` (field -> key -> value); ``owner``: field -> the NPC id
        of a key (None: the key is the NPC id)."""
        parts: list[dict[str, dict[Any, Any]]] = [
            {name: {} for name in owned} for _ in range(BUCKETS)
        ]
        for name, values in owned.items():
            key_of = owner.get(name)
            for key, value in values.items():
                npc = key if key_of is None else key_of(key)
                parts[bucket_of[npc]][name][key] = value
        return [marshal.dumps(_shared(part, {})) for part in parts]


K = TypeVar("K")
V = TypeVar("V")


class Owned(dict[K, V]):
    """A dict of per-NPC data filled a section at a time on first use (:class:`Sections`).

    Lookups that hit are plain dict lookups; a miss decodes the key's section first.
    Iterating, sizing or comparing it decodes every section."""

    def __init__(self, sections: Sections, name: str, npc_of: Callable[[Any], str] | None) -> None:
        super().__init__()
        self._sections = sections
        self._npc_of = npc_of
        sections.field(name, self)

    def _npc(self, key: object) -> object:
        return key if self._npc_of is None else self._npc_of(key)

    def __missing__(self, key: K) -> V:
        if self._sections.fill(self._npc(key)):
            return self[key]
        raise KeyError(key)

    def get(self, key: K, default: Any = None) -> Any:
        value = dict.get(self, key, _ABSENT)
        if value is _ABSENT:
            if self._sections.fill(self._npc(key)):
                return dict.get(self, key, default)
            return default
        return value

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        return self._sections.fill(self._npc(key)) and dict.__contains__(self, key)

    def __iter__(self) -> Iterator[K]:
        self._sections.fill_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._sections.fill_all()
        return dict.__len__(self)

    def keys(self) -> Any:
        self._sections.fill_all()
        return dict.keys(self)

    def values(self) -> Any:
        self._sections.fill_all()
        return dict.values(self)

    def items(self) -> Any:
        self._sections.fill_all()
        return dict.items(self)

    def __eq__(self, other: object) -> bool:
        self._sections.fill_all()
        return dict.__eq__(self, other)

    __hash__ = None


class Filled(dict[Any, Any]):
    """What an :class:`Owned` dict becomes once every section is decoded: a plain dict."""


_ABSENT = object()


class Profiles(Mapping[str, Npc]):
    """NPC profiles by id, each validated from its JSON on first use and kept."""

    def __init__(self, raw: Mapping[str, bytes], ids: Sequence[str]) -> None:
        self._raw = raw  # an Owned dict: a profile's section is decoded when it is asked for
        self._ids = ids
        self._known = frozenset(ids)
        self._built: dict[str, Npc] = {}

    def __getitem__(self, npc_id: str) -> Npc:
        npc = self._built.get(npc_id)
        if npc is None:
            npc = self._built[npc_id] = Npc.model_validate_json(self._raw[npc_id])
        return npc

    def __contains__(self, npc_id: object) -> bool:
        return npc_id in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


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
        if file.exists():  # streamed: npcs.json is 126 MB at 100k NPCs
            with file.open("rb") as f:
                h.update(hashlib.file_digest(f, "sha256").digest())
        else:
            h.update(b"absent")
    return h.hexdigest()


PAYLOADS = ("sections", "profile_sections")  # lists of sections, kept out of the head


def pack(data: dict[str, Any]) -> bytes:
    """The cache file of ``data``: a header naming the format, the head's sha256 and
    length, the head (``data`` but its :data:`PAYLOADS`, with where each section lies and
    its sha256), then the sections themselves. A worker reads the head whole and a
    section when it first decodes it (:class:`Payloads`): at a million NPCs it holds
    0.3 GiB of a 1.4 GiB file, not two copies of all of it while decoding."""
    head = {k: v for k, v in data.items() if k not in PAYLOADS}
    table: dict[str, list[tuple[int, int, bytes]]] = {}
    parts: list[bytes] = []
    offset = 0
    for name in PAYLOADS:
        table[name] = []
        for raw in data[name]:
            table[name].append((offset, len(raw), hashlib.sha256(raw).digest()))
            parts.append(raw)
            offset += len(raw)
    head["payloads"] = table
    body = marshal.dumps(_shared(head, {}))
    checksum = hashlib.sha256(body).hexdigest().encode()
    return b"".join([FORMAT, checksum, b"\n", len(body).to_bytes(8, "big"), body, *parts])


class Payloads(Sequence[bytes]):
    """The sections of one list of a cache file, each read from it when asked for (their
    checksums were checked when the file was opened: :func:`read`)."""

    def __init__(self, read_at: Callable[[int, int], bytes], entries: list[Any]) -> None:
        self._read_at = read_at
        self._entries = entries

    @overload
    def __getitem__(self, i: int) -> bytes: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[bytes]: ...
    def __getitem__(self, i: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        offset, length, _ = self._entries[i]
        return self._read_at(offset, length)

    def __len__(self) -> int:
        return len(self._entries)


def read(source: Path | bytes) -> dict[str, Any]:
    """What :func:`pack` wrote, from a file (kept open: sections are read when decoded)
    or from its bytes; ValueError when it is not a whole, undamaged file of this format.
    Every section's checksum is checked here, reading the file through once."""
    if isinstance(source, bytes):
        view = memoryview(source)

        def read_at(offset: int, length: int) -> bytes:
            return bytes(view[offset : offset + length])

        size = len(source)
    else:
        fd = os.open(source, os.O_RDONLY)
        size = os.fstat(fd).st_size
        # closed with the process: sections are read from it for as long as it lives
        closer = _Closer(fd)

        def read_at(offset: int, length: int) -> bytes:
            got = os.pread(closer.fd, length, offset)
            if len(got) != length:
                raise ValueError("cut short")
            return got

    head_at = len(FORMAT) + 65 + 8
    start = read_at(0, min(size, head_at))
    if (
        not start.startswith(FORMAT)
        or len(start) < head_at
        or start[head_at - 9 : head_at - 8] != b"\n"
    ):
        raise ValueError("not an index cache of this format")
    checksum = start[len(FORMAT) : len(FORMAT) + 64]
    length = int.from_bytes(start[head_at - 8 : head_at], "big")
    if head_at + length > size:
        raise ValueError("cut short (a damaged or partly written file)")
    body = read_at(head_at, length)
    if hashlib.sha256(body).digest().hex() != checksum.decode():
        raise ValueError("checksum mismatch (a damaged or partly written file)")
    # our own file in the user's state directory, written by pack(), whole and undamaged
    data = marshal.loads(body)  # noqa: S302
    if not isinstance(data, dict) or "payloads" not in data:
        raise ValueError("not an index cache of this format")
    base = head_at + length
    for name, entries in data.pop("payloads").items():
        for offset, n, digest in entries:
            if (
                base + offset + n > size
                or hashlib.sha256(read_at(base + offset, n)).digest() != digest
            ):
                raise ValueError("checksum mismatch in a section (a damaged file)")
        data[name] = Payloads(lambda offset, n: read_at(base + offset, n), entries)
    return data


class _Closer:
    """Closes a file descriptor when the last reader of it is gone."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


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


def lazy_catalog(root: Path, profiles: Profiles, n_relationships: int, digest: str) -> Catalog:
    """The world's catalog with its small files read and validated again (a few ms), its
    profiles built on first use and relationships.json read when first iterated."""
    parsed = read_files(root, [n for n in CATALOG_FILES if n not in _LARGE])
    parsed["npcs.json"] = []
    parsed["relationships.json"] = []
    catalog = assemble(parsed)
    catalog.npcs = profiles
    catalog.relationships = Deferred(
        lambda: list(read_files(root, ["relationships.json"])["relationships.json"]),
        n_relationships,
    )
    catalog.known_digest(digest)
    return catalog


def min_bytes() -> int:
    """The smallest ``npcs.json`` worth caching (``WORLDFEED_INDEX_CACHE_MIN_BYTES``)."""
    return int(os.environ.get("WORLDFEED_INDEX_CACHE_MIN_BYTES", MIN_BYTES))


def write(path: Path, blob: bytes) -> bool:
    """Write atomically (a reader sees the whole file or none); a failure only logs.
    Whether it was written."""
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
        return False
    log.info("world index cached at %s (%.1f MB)", path, len(blob) / 1e6)
    _prune(path.parent, KEEP)
    return True


def _prune(directory: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest cached indexes (one per world and code version)."""
    try:
        found = sorted(((f.stat().st_mtime_ns, f) for f in directory.glob("*.idx")), reverse=True)
    except OSError:  # a file removed while listing: another process prunes too
        return
    for _, old in found[keep:]:
        old.unlink(missing_ok=True)
