"""``worldfeed new-world`` / ``check-world``: a new world validates, runs and names itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog import CatalogError, load_catalog
from cli.main import main
from cli.worlds import STARTER, WorldExists, new_world
from sim.local import LocalRun
from sim.world import WorldIndex


def test_starter_templates_name_the_world_through_the_variable() -> None:
    raw = (STARTER / "templates.json").read_text()
    assert "Brookfield" not in raw and "{world_title}" in raw
    loaded = load_catalog(STARTER)
    systems = [t.system for t in loaded.templates.values()]
    # filled from world.json at load: the prompts the town renders are unchanged
    assert any("in the small town of Brookfield." in s for s in systems)
    assert not any("{world_title}" in s for s in systems)


def test_new_world_from_the_town_validates_and_runs(tmp_path: Path) -> None:
    path = new_world("harbor", tmp_path, title="Saltmarsh Harbor")
    assert path == tmp_path / "harbor"
    for file in path.iterdir():
        assert "Brookfield" not in file.read_text(), f"{file.name} still names Brookfield"
    catalog = load_catalog(path)
    assert catalog.world.name == "harbor" and catalog.world.title == "Saltmarsh Harbor"
    assert all("{world_title}" not in t.system for t in catalog.templates.values())
    assert any("Saltmarsh Harbor" in t.system for t in catalog.templates.values())
    assert catalog.channels["news"].name == "The Saltmarsh Harbor Bugle"

    run = LocalRun(WorldIndex.build(catalog), "r", 1)
    events = [e for _ in range(40) for e in run.step()]  # 10 simulated hours
    assert len(events) > 10
    assert not any("Brookfield" in e.summary for e in events)


def test_new_world_synthetic_keeps_the_variable(tmp_path: Path) -> None:
    path = new_world("gen", tmp_path, template="synthetic", npcs=20, seed=3)
    assert "{world_title}" in (path / "templates.json").read_text()
    catalog = load_catalog(path)
    assert len(catalog.npcs) == 20 and catalog.world.title == "Gen"
    assert any("in the small town of Gen." in t.system for t in catalog.templates.values())


def test_new_world_refuses_bad_names_and_existing_dirs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        new_world("Bad Name", tmp_path)
    new_world("one", tmp_path)
    with pytest.raises(WorldExists):
        new_world("one", tmp_path)


def test_a_title_that_breaks_a_rule_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="world.json"):
        new_world("long", tmp_path, title="x" * 200)  # title is at most 120 characters
    assert not (tmp_path / "long").exists()


def test_check_world_prints_file_pointer_and_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = new_world("broken", tmp_path)
    assert main(["check-world", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ok (13 places, 30 NPCs")
    npcs = json.loads((path / "npcs.json").read_text())
    npcs[7]["traits"]["openness"] = 1.4
    (path / "npcs.json").write_text(json.dumps(npcs))
    assert main(["check-world", str(path)]) == 2
    out = capsys.readouterr().out
    assert (
        f"{path}/npcs.json: /7/traits/openness: 1.4 is greater than the maximum of 1 [maximum]"
        in out
    )
    assert main(["check-world", str(tmp_path / "absent")]) == 2
