"""A stable content hash of a catalog."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

if TYPE_CHECKING:
    from catalog.models import Catalog


def _plain(obj: Any) -> Any:
    """orjson fallback: a model is its field values (much faster than model_dump on big worlds)."""
    if isinstance(obj, BaseModel):
        return obj.__dict__
    raise TypeError(f"cannot hash {type(obj).__name__}")


def normalized(catalog: Catalog) -> dict[str, Any]:
    """The catalog with every order-free collection in a canonical order."""
    return {
        "world": catalog.world,
        "places": list(catalog.places.values()),  # dicts are sorted by id
        "npcs": list(catalog.npcs.values()),
        "relationships": sorted(catalog.relationships, key=lambda r: (r.source, r.target)),
        "goals": sorted(
            catalog.goals, key=lambda g: (g.npc, g.kind, g.target or "", g.priority, g.progress)
        ),
        "event_types": list(catalog.event_types.values()),
        "channels": list(catalog.channels.values()),
        "templates": list(catalog.templates.values()),
        "scheduled": sorted(catalog.scheduled, key=lambda s: s.id),
        "director": sorted(catalog.director, key=lambda d: d.id),
    }


def catalog_digest(catalog: Catalog) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no whitespace) of the normalized catalog."""
    canonical = orjson.dumps(normalized(catalog), default=_plain, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()
