"""Fixtures for catalog tests: a factory of editable copies of the starter world."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from catalog.generate import STARTER_WORLD

Mutate = Callable[[Any], Any]


@pytest.fixture
def world_factory(tmp_path: Path) -> Callable[..., Path]:
    """Copy the starter world to a temp dir and apply ``{file: mutate(data) -> data}`` edits."""

    def make(**edits: Mutate) -> Path:
        root = tmp_path / "world"
        shutil.copytree(STARTER_WORLD, root, dirs_exist_ok=True)
        for stem, mutate in edits.items():
            path = root / f"{stem}.json"
            data = json.loads(path.read_text())
            path.write_text(json.dumps(mutate(data)))
        return root

    return make
