"""The catalog digest depends on content only."""

from __future__ import annotations

import json
import random
from typing import Any

from catalog import load_catalog
from catalog.generate import STARTER_WORLD


def _shuffle_keys(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffle_keys(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffle_keys(v, rng) for v in value]
    return value


def test_digest_is_stable_across_loads() -> None:
    assert load_catalog(STARTER_WORLD).digest == load_catalog(STARTER_WORLD).digest


def test_digest_ignores_order_and_whitespace(world_factory: Any) -> None:
    rng = random.Random(1)

    def scramble(data: Any) -> Any:
        data = _shuffle_keys(data, rng)
        if isinstance(data, list) and data and "day" not in data[0]:
            rng.shuffle(data)
        return data

    stems = [
        "places",
        "npcs",
        "relationships",
        "goals",
        "event_types",
        "channels",
        "templates",
        "director",
        "world",
    ]
    root = world_factory(**{s: scramble for s in stems})
    (root / "world.json").write_text(
        json.dumps(json.loads((root / "world.json").read_text()), indent=7)
    )
    assert load_catalog(root).digest == load_catalog(STARTER_WORLD).digest


def test_digest_changes_with_content(world_factory: Any) -> None:
    def edit(d: Any) -> Any:
        d[0]["fame"] += 1
        return d

    assert load_catalog(world_factory(npcs=edit)).digest != load_catalog(STARTER_WORLD).digest
