"""Synthetic worlds: deterministic, loadable, and fast at 100k NPCs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from catalog import load_catalog
from catalog.generate import generate_world, starter_world, write_generated_world, write_world


def test_deterministic_for_same_arguments() -> None:
    a, b = generate_world(500, seed=42), generate_world(500, seed=42)
    assert a.digest == b.digest
    assert a.npcs["npc_000"] == b.npcs["npc_000"]
    assert generate_world(500, seed=43).digest != a.digest
    assert generate_world(500, seed=42, relationship_density=0.1).digest != a.digest


def test_shape() -> None:
    cat = generate_world(1000, seed=1, n_places=50, relationship_density=0.05)
    assert len(cat.npcs) == 1000 and len(cat.places) == 50
    assert len(cat.relationships) == 1000 * 5
    assert sum("news" in n.channels for n in cat.npcs.values()) >= 2
    assert cat.event_types == starter_world().event_types
    assert cat.templates == starter_world().templates
    assert cat.director, "occupation-based director rules carry over"
    assert all(r.source != r.target for r in cat.relationships)
    assert len({(r.source, r.target) for r in cat.relationships}) == len(cat.relationships)


def test_write_and_reload_round_trip(tmp_path: Path) -> None:
    cat = generate_world(400, seed=5)
    loaded = load_catalog(write_world(cat, tmp_path / "gen"))
    assert loaded.digest == cat.digest
    assert loaded.npcs == cat.npcs
    assert loaded.relationships == cat.relationships


@pytest.mark.parametrize(("n", "density"), [(400, 0.05), (60, 0.5), (5, 0.0)])
def test_the_streamed_writer_writes_the_same_bytes(tmp_path: Path, n: int, density: float) -> None:
    """write_generated_world (a million NPCs, never all held) writes what write_world
    writes for generate_world, file for file, byte for byte."""
    held = write_world(generate_world(n, 9, relationship_density=density), tmp_path / "held")
    streamed = write_generated_world(tmp_path / "streamed", n, 9, relationship_density=density)
    names = sorted(f.name for f in held.iterdir())
    assert names == sorted(f.name for f in streamed.iterdir())
    for name in names:
        assert (streamed / name).read_bytes() == (held / name).read_bytes(), name


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_npcs"):
        generate_world(2, seed=1)
    with pytest.raises(ValueError, match="relationship_density"):
        generate_world(100, seed=1, relationship_density=2)


def test_scales_to_100k_npcs(capsys: pytest.CaptureFixture[str]) -> None:
    starter_world()  # load the starter world outside the measurement
    start = time.perf_counter()
    cat = generate_world(100_000, seed=7)
    elapsed = time.perf_counter() - start
    assert len(cat.npcs) == 100_000
    with capsys.disabled():
        print(f"\ngenerate_world(100_000): {elapsed:.2f} s, {len(cat.relationships)} relationships")
