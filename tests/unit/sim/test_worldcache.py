"""The world index cached on disk (sim.worldcache) answers exactly as a validated world does."""

from __future__ import annotations

import json
import logging

import pytest

from catalog import CatalogError, load_catalog
from catalog.generate import generate_world, write_world
from sim.barrier import ShardBarrier
from sim.local import LocalRun
from sim.world import WorldIndex, check_world, load_index, shard_of
from sim.worldcache import BUCKETS, FORMAT, Deferred, Profiles, files_key, read


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A generated world of 600 NPCs (with the feed loop's reads) and its index, built."""
    root = write_world(generate_world(600, seed=3), tmp_path_factory.mktemp("w") / "gen")
    return root, WorldIndex.build(load_catalog(root))


def cached(root, tmp_path):
    """The index restored from its cache: the first load writes it, the second reads it."""
    load_index(root, tmp_path, min_bytes=0)  # validated (streamed), written
    [file] = tmp_path.glob("*.idx")
    written = file.stat().st_mtime_ns
    second = load_index(root, tmp_path, min_bytes=0)
    assert isinstance(second.catalog.npcs, Profiles)  # restored, not validated again
    assert [file] == list(tmp_path.glob("*.idx")) and file.stat().st_mtime_ns == written
    return second


FIELDS = (
    "npc_ids",
    "location",
    "occupancy",
    "turned_away",
    "traits",
    "relationships",
    "tags",
    "cards",
    "goals",
    "goals_of",
    "goal_place_npcs",
    "advances",
    "journalists",
    "types_by_kind",
)


def test_restored_index_equals_the_built_one(world, tmp_path) -> None:
    root, built = world
    restored = cached(root, tmp_path)
    for name in FIELDS:  # the restored one on the left: its lazy parts decode to compare
        assert getattr(restored, name) == getattr(built, name), name
    assert restored.catalog.digest == built.catalog.digest
    # profiles: built on demand, each equal to the validated one
    assert list(restored.catalog.npcs) == list(built.catalog.npcs)
    assert all(restored.npc(n) == built.npc(n) for n in built.npc_ids)
    assert "nobody" not in restored.catalog.npcs
    assert restored.catalog.npcs.get("nobody") is None
    # relationships: read again only when asked, the same list
    assert isinstance(restored.catalog.relationships, Deferred)
    assert len(restored.catalog.relationships) == len(built.catalog.relationships)
    assert list(restored.catalog.relationships) == list(built.catalog.relationships)
    assert restored.catalog.places == built.catalog.places
    assert restored.catalog.templates == built.catalog.templates


def test_a_run_on_the_restored_index_is_bit_exact(world, tmp_path) -> None:
    root, built = world
    restored = cached(root, tmp_path)
    runs = []
    for index in (built, restored):
        run = LocalRun(index, "r", 11, n_shards=3, start_minute=8 * 60)
        for _ in range(24):
            run.step()
        runs.append(run)
    assert runs[0].hashes == runs[1].hashes
    assert [e.event_id for e in runs[0].events] == [e.event_id for e in runs[1].events]
    assert sum(runs[0].recent) > 50  # the world did something to compare


def test_a_damaged_cache_is_rebuilt_not_trusted(world, tmp_path, caplog) -> None:
    root, built = world
    load_index(root, tmp_path, min_bytes=0)
    (path,) = tmp_path.glob("*.idx")
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped bit in the body
    path.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="sim.world"):
        index = load_index(root, tmp_path, min_bytes=0)
    assert "checksum mismatch" in caplog.text
    assert index.occupancy == built.occupancy
    read(path)  # validated again and written whole again
    assert isinstance(load_index(root, tmp_path, min_bytes=0).catalog.npcs, Profiles)
    head = bytearray(path.read_bytes())
    head[len(FORMAT) + 65 + 8 + 10] ^= 0x01  # one bit of the head (the sections' table too)
    path.write_bytes(bytes(head))
    with caplog.at_level(logging.WARNING, logger="sim.world"):
        assert load_index(root, tmp_path, min_bytes=0).occupancy == built.occupancy
    read(path)
    tail = bytearray(path.read_bytes())
    tail[-3] ^= 0x01  # one bit of the last profile section, read only when asked for
    path.write_bytes(bytes(tail))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sim.world"):
        assert load_index(root, tmp_path, min_bytes=0).npc_ids == built.npc_ids
    assert "checksum mismatch in a section" in caplog.text
    read(path)
    path.write_bytes(path.read_bytes()[:1000])  # cut short
    with caplog.at_level(logging.WARNING, logger="sim.world"):
        assert load_index(root, tmp_path, min_bytes=0).npc_ids == built.npc_ids


def test_an_edited_world_is_not_answered_from_the_old_cache(world, tmp_path) -> None:
    root, _ = world
    copy = write_world(load_catalog(root), tmp_path / "copy")
    cached(copy, tmp_path / "cache")
    before = files_key(copy)
    npcs = json.loads((copy / "npcs.json").read_text())
    npcs[0]["fame"] = 99.5
    (copy / "npcs.json").write_text(json.dumps(npcs))
    assert files_key(copy) != before
    index = load_index(copy, tmp_path / "cache", min_bytes=0)
    assert index.card(npcs[0]["id"]).fame == 99.5
    assert index.npc(npcs[0]["id"]).fame == 99.5


def test_small_worlds_and_off_are_not_cached(world, tmp_path) -> None:
    root, built = world
    assert load_index(root, tmp_path, min_bytes=10**9).npc_ids == built.npc_ids
    assert not list(tmp_path.glob("*.idx"))


def test_the_cache_keeps_only_the_newest_indexes(world, tmp_path, monkeypatch) -> None:
    root, _ = world
    monkeypatch.setattr("sim.worldcache.KEEP", 2)
    for i in range(4):  # four versions of the world, one after the other
        copy = write_world(load_catalog(root), tmp_path / f"v{i}")
        (copy / "world.json").write_text(
            (copy / "world.json").read_text().replace('"title": "', f'"title": "v{i} ')
        )
        load_index(copy, tmp_path / "cache", min_bytes=0)
    kept = list((tmp_path / "cache").glob("*.idx"))
    assert len(kept) == 2
    assert files_key(tmp_path / "v3") in {f.stem for f in kept}


@pytest.mark.parametrize("n_shards", [2, 4])
def test_a_shard_decodes_only_the_sections_of_its_own_npcs(world, tmp_path, n_shards) -> None:
    """Shard-local: a shard seeded and ticked decodes its own NPCs' traits, relationships
    and tags, not the others' (sections are buckets of the same hash as shards), and no
    profile at all (they are sections of their own, read from the file when asked for)."""
    root, built = world
    index = cached(root, tmp_path)
    assert all(
        stable % n_shards == shard_of(n, n_shards)
        for n, stable in index.traits._sections._bucket_of.items()
    )
    reference = LocalRun(built, "r", 11, n_shards=n_shards, start_minute=8 * 60)
    for _ in range(3):
        reference.step()
    shard = 1
    machine = ShardBarrier.recover(index, reference.tick_message(0, shard), {}.get)
    for t in range(3):
        machine.on_tick(reference.tick_message(t, shard))
    sections = index.traits._sections
    decoded = {b for b, done in enumerate(sections._decoded) if done}
    assert decoded
    assert not any(index.catalog.npcs._raw._sections._decoded)  # no profile
    assert {b % n_shards for b in decoded} == {shard}
    assert BUCKETS % n_shards == 0
    # and what it read is what the validated world says
    own = index.shard_npcs(shard, n_shards)
    assert [dict.__getitem__(index.traits, n) for n in own] == [built.traits[n] for n in own]


def test_check_world_trusts_only_a_cache_of_the_same_files(world, tmp_path, monkeypatch) -> None:
    root, _ = world
    monkeypatch.setenv("WORLDFEED_INDEX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WORLDFEED_INDEX_CACHE_MIN_BYTES", "0")
    copy = write_world(load_catalog(root), tmp_path / "copy")
    check_world(copy)  # validated, and cached
    assert len(list((tmp_path / "cache").glob("*.idx"))) == 1
    check_world(copy)  # the cache answers
    npcs = json.loads((copy / "npcs.json").read_text())
    npcs[3]["traits"]["openness"] = 1.4
    (copy / "npcs.json").write_text(json.dumps(npcs))
    with pytest.raises(CatalogError, match="openness"):
        check_world(copy)


def test_the_streamed_build_caches_what_the_built_index_does(world, monkeypatch) -> None:
    """A world validated and indexed a chunk of profiles at a time (how a cache miss
    builds it: a million NPCs do not fit as models) is cached byte for byte as the index
    built from the whole catalog."""
    root, built = world
    monkeypatch.setattr("catalog.stream.CHUNK", 50)
    streamed = WorldIndex.streamed(root)
    expected = built.cached()
    assert streamed.keys() == expected.keys()
    for key, value in expected.items():
        assert streamed[key] == value, key
