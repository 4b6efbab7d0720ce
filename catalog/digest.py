"""A stable content hash of catalog data (pydantic models in plain containers)."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel


def _plain(obj: Any) -> Any:
    """orjson fallback: a model is its field values (much faster than model_dump on big worlds)."""
    if isinstance(obj, BaseModel):
        return obj.__dict__
    raise TypeError(f"cannot hash {type(obj).__name__}")


def canonical(obj: Any) -> bytes:
    """The canonical JSON (sorted keys, no whitespace) of data or a model."""
    return orjson.dumps(obj, default=_plain, option=orjson.OPT_SORT_KEYS)


def content_digest(content: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no whitespace) of ``content``.

    Lists keep their order: the caller puts order-free collections in a canonical one
    (:meth:`catalog.models.Catalog.normalized`).
    """
    return hashlib.sha256(canonical(content)).hexdigest()


def kept(blob: bytes) -> bytes:
    """``blob`` as a bytes object of its own size, to hold for long: a short one from
    orjson keeps its 4 KiB buffer (half a million relationships held 2.1 GiB, not 0.3)."""
    return bytes(memoryview(blob))


class DigestWriter:
    """:func:`content_digest` of ``content`` with its long lists given an item at a time,
    as the :func:`canonical` JSON of each, instead of as items: the NPCs and relationships
    of a world of a million, too many to hold as models at once.

    The entries are written in the digest's order (sorted keys): :meth:`open_list` writes
    the entries before its key, then each :meth:`item` one of the list's items, in order.
    """

    def __init__(self, content: Mapping[str, Any]) -> None:
        self._content = content
        self._keys = sorted(content)  # OPT_SORT_KEYS' order
        self._done = 0  # entries written
        self._items = -1  # items of the open list written; -1: none open
        self._h = hashlib.sha256(b"{")

    def _entry(self, key: str) -> None:
        self._h.update(b"," if self._done else b"")
        self._h.update(canonical(key) + b":")

    def _write_until(self, key: str | None) -> None:
        if self._items >= 0:
            self._h.update(b"]")
            self._items = -1
            self._done += 1
        while self._done < len(self._keys) and self._keys[self._done] != key:
            name = self._keys[self._done]
            self._entry(name)
            self._h.update(canonical(self._content[name]))
            self._done += 1

    def open_list(self, key: str) -> None:
        """Write the entries before ``key``, then open its list."""
        if key not in self._content:
            raise KeyError(key)
        self._write_until(key)
        self._entry(key)
        self._h.update(b"[")
        self._items = 0

    def item(self, blob: bytes) -> None:
        """The canonical JSON of the open list's next item."""
        self._h.update(b"," if self._items else b"")
        self._h.update(blob)
        self._items += 1

    def copy(self) -> DigestWriter:
        """A writer that goes on from here, on its own (to write a list again)."""
        other = copy.copy(self)
        other.__dict__["_h"] = self._h.copy()
        return other

    def hexdigest(self) -> str:
        """Write the remaining entries; the digest."""
        self._write_until(None)
        self._h.update(b"}")
        return self._h.hexdigest()
