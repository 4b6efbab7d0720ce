"""Fixtures of the simulation's unit tests: the starter town, an injection into it."""

from __future__ import annotations

import pytest

from sim.world import WorldIndex, load_world
from topics.models import InjectedEvent


@pytest.fixture(scope="module")
def town() -> WorldIndex:
    return load_world("town")


@pytest.fixture(scope="module")
def argument(town: WorldIndex) -> InjectedEvent:
    """An injected argument between the town's first two NPCs (by id)."""
    actor, target = sorted(town.npc_ids)[:2]
    return InjectedEvent(type="argument", actor=actor, target=target)
