"""The world catalog: pydantic models, JSON Schemas, the loader and a synthetic-world generator.

Data only: no simulation logic lives here.
"""

from catalog.errors import CatalogError, CatalogIssue
from catalog.loader import load_catalog
from catalog.models import (
    Catalog,
    Channel,
    ChannelRule,
    DirectorRule,
    EffectSpec,
    EventType,
    Goal,
    Impact,
    Npc,
    Place,
    Relationship,
    ScheduledEvent,
    Template,
    World,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogIssue",
    "Channel",
    "ChannelRule",
    "DirectorRule",
    "EffectSpec",
    "EventType",
    "Goal",
    "Impact",
    "Npc",
    "Place",
    "Relationship",
    "ScheduledEvent",
    "Template",
    "World",
    "load_catalog",
]
