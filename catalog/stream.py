"""Validate a world too large to hold as models: npcs.json and relationships.json a
chunk at a time.

:func:`catalog.load_catalog` builds every model of a world at once: 2.2-2.5 GiB per 100k
NPCs, so a world of a million would need about 23 GiB. :func:`load_streamed` checks the
same things (each file's schema and every cross-reference, with the same messages,
pointers and rules) while holding only a chunk of profiles as models at a time: each
validated NPC and relationship is handed to the caller, which keeps what it derives
from it (the world index, :mod:`sim.world`), and is then dropped.

What it returns is the catalog of the small files, whose ``npcs`` is a directory of
:class:`NpcEntry` (what the cross-reference checks and admission read about an NPC),
with the content digest of the whole world, the same as ``load_catalog`` computes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, cast

from pydantic import ValidationError as PydanticError

from catalog.checks import check_catalog, check_npc, check_relationship
from catalog.digest import DigestWriter, canonical, kept
from catalog.errors import CatalogError, CatalogIssue, json_pointer
from catalog.loader import assemble, file_adapter, open_text, parse_file, read_files, read_text
from catalog.models import CATALOG_FILES, Catalog, Npc, Relationship

LARGE = ("npcs.json", "relationships.json")  # the files read a chunk at a time
CHUNK = 4096  # items validated together
BLOCK = 1 << 24  # characters read at a time
LOOKAHEAD = 64  # characters that must follow an item in the block (or the file's end)
_SPACE = re.compile(r"\s*")


class NpcEntry(NamedTuple):
    """What the catalog's cross-reference checks and admission read about an NPC."""

    id: str
    home: str
    work: str | None
    occupation: str
    channels: tuple[str, ...]


def iter_array(file: Path, shown: str, block: int = BLOCK) -> Iterator[Any]:
    """The items of the JSON array in ``file``, decoded one at a time (a block of the
    file in memory, not the whole of it); CatalogError names the line and column of
    invalid JSON, as the loader does."""
    decoder = json.JSONDecoder()
    with open_text(file, shown) as f:
        text, pos, lines, eof = "", 0, 0, False  # lines: newlines before text[0]

        def more() -> bool:
            """Read another block; the consumed text is dropped. False at the end."""
            nonlocal text, pos, lines, eof
            if eof:
                return False
            chunk = read_text(f, shown, block)
            if not chunk:
                eof = True
                return False
            lines += text.count("\n", 0, pos)
            text, pos = text[pos:] + chunk, 0
            return True

        def fail(msg: str, at: int) -> CatalogError:
            line = lines + text.count("\n", 0, at) + 1
            col = at - (text.rfind("\n", 0, at) + 1) + 1
            where = f"invalid JSON: {msg} at line {line} column {col}"
            return CatalogError([CatalogIssue(shown, "/", where, "json-syntax")])

        def skip_space() -> str:
            """The next character after whitespace ('' at the end of the file)."""
            nonlocal pos
            while True:
                pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # \s* always matches
                if pos < len(text) or not more():
                    return text[pos : pos + 1]

        more()
        if skip_space() != "[":
            raise CatalogError([CatalogIssue(shown, "/", "expected a JSON array", "type")])
        pos += 1
        if skip_space() == "]":
            pos += 1
        else:
            while True:
                while True:
                    try:
                        item, end = decoder.raw_decode(text, pos)
                    except json.JSONDecodeError as exc:
                        if more():  # the item may run on into the next block
                            continue
                        raise fail(exc.msg, exc.pos) from None
                    # a number cut at the block's end ("1.5e" of "1.5e+3") reads as a shorter one
                    if len(text) - end < LOOKAHEAD and more():
                        continue  # decoded again from the item's start
                    break
                pos = end
                yield item
                sep = skip_space()
                pos += 1
                if sep == "]":
                    break
                if sep != ",":
                    raise fail("Expecting ',' delimiter", pos - 1)
                skip_space()
        if skip_space():
            raise fail("Extra data", pos)


def iter_models(
    catalog_file: str, file: Path, shown: str, size: int | None = None
) -> Iterator[tuple[int, list[Any]]]:
    """(index of the first, models) of each chunk of ``size`` items (default
    :data:`CHUNK`) of the array file ``catalog_file``, validated as the loader validates
    the whole file; a problem's pointer is its index in the file."""
    size = size or CHUNK
    chunk: list[Any] = []
    start = 0
    for item in iter_array(file, shown):
        chunk.append(item)
        if len(chunk) == size:
            yield start, _validated(catalog_file, chunk, start, shown)
            start += len(chunk)
            chunk = []
    if chunk:
        yield start, _validated(catalog_file, chunk, start, shown)


def _validated(catalog_file: str, items: list[Any], start: int, shown: str) -> list[Any]:
    try:  # the loader's fast path (strict), then its JSON Schema messages
        return cast(list[Any], file_adapter(catalog_file).validate_python(items, strict=True))
    except PydanticError:
        pass
    try:
        return cast(list[Any], parse_file(catalog_file, items, shown))
    except CatalogError as exc:
        raise CatalogError([_shifted(issue, start) for issue in exc.issues]) from None


def _shifted(issue: CatalogIssue, start: int) -> CatalogIssue:
    """An issue of a chunk, its pointer's first step moved to the index in the file."""
    first, slash, rest = issue.pointer[1:].partition("/")
    if not first.isdigit():
        return issue
    pointer = f"/{int(first) + start}{slash}{rest}"
    return CatalogIssue(issue.file, pointer, issue.message, issue.rule)


def load_streamed(
    root: Path,
    take_npc: Callable[[Npc, bytes], None],
    take_relationship: Callable[[Relationship], None],
) -> Catalog:
    """Validate the world at ``root`` as :func:`catalog.load_catalog` does, handing each
    NPC (with its :func:`~catalog.digest.canonical` JSON) and each relationship to the
    callbacks, in file order, instead of keeping them.

    Returns the catalog of the small files with ``npcs`` a directory of :class:`NpcEntry`
    and no relationships, and with the digest ``load_catalog`` would give. The small
    files' schema problems are reported together, as the loader does; in a large file,
    the first chunk with a problem stops the load, with every problem of that chunk.
    """
    parsed = read_files(root, [n for n in CATALOG_FILES if n not in LARGE])
    parsed["npcs.json"] = []
    parsed["relationships.json"] = []
    catalog = assemble(parsed)
    issues: list[CatalogIssue] = []

    def reporter(name: str) -> Callable[..., None]:
        def report(path: list[object], message: str, rule: str) -> None:
            issues.append(CatalogIssue(str(root / name), json_pointer(path), message, rule))

        return report

    directory: dict[str, NpcEntry] = {}
    profiles: dict[str, bytes] = {}  # canonical JSON, for the digest
    handles: set[str] = set()
    report = reporter("npcs.json")
    for start, npcs in iter_models("npcs.json", root / "npcs.json", str(root / "npcs.json")):
        for i, npc in enumerate(npcs, start):
            if npc.id in directory:
                report([i], f"duplicate npc id {npc.id!r}", "unique-npc-id")
            if npc.handle in handles:
                report([i], f"duplicate handle {npc.handle!r}", "unique-handle")
            handles.add(npc.handle)
            check_npc(catalog, i, npc, report)
            blob = kept(canonical(npc))
            directory[npc.id] = NpcEntry(
                npc.id, npc.home, npc.work, npc.occupation, tuple(npc.channels)
            )
            profiles[npc.id] = blob
            take_npc(npc, blob)
        if issues:  # the first chunk with a problem stops the load
            raise CatalogError(issues)
    del handles
    directory = dict(sorted(directory.items()))
    # the checks and admission read an NPC's id, home, work, occupation and channels
    catalog.npcs = cast(dict[str, Npc], directory)
    digest = DigestWriter({**catalog.normalized(), "npcs": None})
    digest.open_list("npcs")
    for npc_id in directory:
        digest.item(profiles[npc_id])
    del profiles

    # The digest takes the relationships by (source, target), as they are written: then
    # each is hashed as it comes and a duplicate follows its first. A file in another
    # order is read a second time for the digest (and its duplicates).
    digest.open_list("relationships")
    restart = digest.copy()
    last: tuple[str, str] | None = None
    ordered = True
    report = reporter("relationships.json")
    file = root / "relationships.json"
    for start, rels in iter_models("relationships.json", file, str(file)):
        for i, rel in enumerate(rels, start):
            pair = (rel.source, rel.target)
            if pair == last:
                report([i], f"duplicate relationship {pair!r}", "unique-relationship")
            elif ordered and (last is None or pair > last):
                digest.item(canonical(rel))
                last = pair
            else:
                ordered = False
            check_relationship(directory, i, rel, report)
            take_relationship(rel)
        if issues:
            raise CatalogError(issues)
    if not ordered:
        digest = restart
        for blob in _sorted_relationships(file, reporter("relationships.json"), issues):
            digest.item(blob)

    issues.extend(check_catalog(catalog, lambda name: str(root / name), parsed))
    if issues:
        raise CatalogError(issues)
    catalog.known_digest(digest.hexdigest())
    return catalog


def _sorted_relationships(
    file: Path, report: Callable[..., None], issues: list[CatalogIssue]
) -> list[bytes]:
    """The canonical JSON of every relationship in ``file``, by (source, target), for a
    file in another order; a duplicate is reported at its second place in the file."""
    keyed: list[tuple[tuple[str, str], int, bytes]] = []
    for start, rels in iter_models("relationships.json", file, str(file)):
        keyed.extend(
            ((r.source, r.target), i, kept(canonical(r))) for i, r in enumerate(rels, start)
        )
    keyed.sort(key=lambda k: (k[0], k[1]))
    after = zip(keyed[1:], keyed, strict=False)
    dups = sorted((i, pair) for (pair, i, _), (before, _, _) in after if pair == before)
    firsts: set[tuple[str, str]] = set()
    for i, pair in dups:  # the loader reports each duplicate pair once, at its second place
        if pair not in firsts:
            firsts.add(pair)
            report([i], f"duplicate relationship {pair!r}", "unique-relationship")
    if issues:
        raise CatalogError(issues)
    return [blob for _, _, blob in keyed]
