"""A stable content hash of catalog data (pydantic models in plain containers)."""

from __future__ import annotations

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


def content_digest(content: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no whitespace) of ``content``.

    Lists keep their order: the caller puts order-free collections in a canonical one
    (:meth:`catalog.models.Catalog.normalized`).
    """
    canonical = orjson.dumps(content, default=_plain, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()
