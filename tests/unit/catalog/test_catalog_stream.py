"""A world validated a chunk at a time (catalog.stream) says what load_catalog says: the
same digest, and for an invalid world the same problems, at the same pointers."""

from __future__ import annotations

import json
import random

import pytest

from catalog import CatalogError, load_catalog
from catalog.generate import generate_world, write_generated_world, write_world
from catalog.stream import NpcEntry, iter_array, load_streamed

ITEMS = [{"a": 1, "b": [1.5, "x,]}"], "c": None}, 7, "s\n[", [], {}, -2.5e-3, True]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2, 0])
def test_iter_array_reads_any_layout_across_block_ends(tmp_path, block, indent) -> None:
    file = tmp_path / "a.json"
    file.write_text("\n " + json.dumps(ITEMS, indent=indent) + " \n")
    assert list(iter_array(file, "a.json", block=block)) == ITEMS
    file.write_text(" [ ] ")
    assert list(iter_array(file, "a.json", block=block)) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1}', "expected a JSON array"),
        ("", "expected a JSON array"),
        ('[{"a": 1},\n {"b": }]', "invalid JSON: Expecting value at line 2 column 8"),
        ('[{"a": 1}\n {"b": 2}]', "invalid JSON: Expecting ',' delimiter at line 2 column 2"),
        ('[{"a": 1}, {"b": 2}', "invalid JSON"),  # cut short
        ('[{"a": 1}] x', "invalid JSON: Extra data"),
    ],
)
@pytest.mark.parametrize("block", [3, 1 << 20])
def test_iter_array_names_what_is_wrong_and_where(tmp_path, text, message, block) -> None:
    file = tmp_path / "bad.json"
    file.write_text(text)
    with pytest.raises(CatalogError) as err:
        list(iter_array(file, "bad.json", block=block))
    [issue] = err.value.issues
    assert issue.file == "bad.json" and issue.pointer == "/"
    assert message in issue.message, issue.message


def test_a_file_that_is_not_utf8_is_named_as_the_loader_names_it(tmp_path) -> None:
    root = write_world(generate_world(20, seed=1), tmp_path / "w")
    (root / "npcs.json").write_bytes(b'[{"id": "caf\xe9"}]')
    with pytest.raises(CatalogError) as loaded:
        load_catalog(root)
    with pytest.raises(CatalogError) as streamed:
        _streamed(root)
    assert streamed.value.issues == loaded.value.issues
    [issue] = streamed.value.issues
    assert issue.rule == "file-encoding" and "not UTF-8" in issue.message


def test_a_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(CatalogError, match="file is missing"):
        list(iter_array(tmp_path / "none.json", "none.json"))


def _streamed(root):
    npcs, rels = [], []
    catalog = load_streamed(root, lambda npc, blob: npcs.append(npc), rels.append)
    return catalog, npcs, rels


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated world of 700 NPCs (3500 relationships), its files written streamed."""
    root = tmp_path_factory.mktemp("w") / "gen"
    return write_generated_world(root, 700, seed=5)


def test_the_streamed_world_is_the_loaded_one(generated, monkeypatch) -> None:
    monkeypatch.setattr("catalog.stream.CHUNK", 64)  # many chunks
    loaded = load_catalog(generated)
    catalog, npcs, rels = _streamed(generated)
    assert catalog.digest == loaded.digest
    assert npcs == list(loaded.npcs.values())
    assert rels == list(loaded.relationships)
    assert catalog.npcs["npc_010"] == NpcEntry(
        "npc_010",
        loaded.npcs["npc_010"].home,
        loaded.npcs["npc_010"].work,
        loaded.npcs["npc_010"].occupation,
        tuple(loaded.npcs["npc_010"].channels),
    )
    assert catalog.goals == loaded.goals and catalog.places == loaded.places


def test_the_digest_does_not_depend_on_the_files_order(generated, tmp_path) -> None:
    """Profiles and relationships in any order, as load_catalog's digest (it sorts them)."""
    copy = write_world(load_catalog(generated), tmp_path / "shuffled")
    for name in ("npcs.json", "relationships.json"):
        items = json.loads((copy / name).read_text())
        random.Random(1).shuffle(items)
        (copy / name).write_text(json.dumps(items))
    catalog, _, _ = _streamed(copy)
    assert catalog.digest == load_catalog(copy).digest == load_catalog(generated).digest


def test_the_town_streams_to_its_digest() -> None:
    from catalog.generate import STARTER_WORLD

    assert _streamed(STARTER_WORLD)[0].digest == load_catalog(STARTER_WORLD).digest


def _break(root, name, i, change) -> None:
    items = json.loads((root / name).read_text())
    change(items, i)
    (root / name).write_text(json.dumps(items, indent=1))


BREAKS = {
    "unknown home": ("npcs.json", lambda a, i: a[i].update(home="nowhere")),
    "schema": ("npcs.json", lambda a, i: a[i].update(age=-1)),
    "unknown field": ("npcs.json", lambda a, i: a[i].update(hair="red")),
    "duplicate id": ("npcs.json", lambda a, i: a[i].update(id=a[i - 1]["id"])),
    "duplicate handle": ("npcs.json", lambda a, i: a[i].update(handle=a[3]["handle"])),
    "schedule": ("npcs.json", lambda a, i: a[i]["schedule"][1].update(place="moon")),
    "unknown npc": ("relationships.json", lambda a, i: a[i].update(target="npc_999")),
    "self": ("relationships.json", lambda a, i: a[i].update(target=a[i]["source"])),
    "duplicate relationship": ("relationships.json", lambda a, i: a.__setitem__(i, a[i - 1])),
    "relationship schema": ("relationships.json", lambda a, i: a[i].update(trust=101)),
    "goal npc": ("goals.json", lambda a, i: a[0].update(npc="npc_999")),
}


@pytest.mark.parametrize("what", sorted(BREAKS))
def test_a_broken_world_gets_the_loaders_issues(generated, tmp_path, monkeypatch, what) -> None:
    """The same file, pointer (the index in the whole file, in a later chunk), message and
    rule as load_catalog reports (which goes on to the files after: a duplicate NPC id
    also leaves relationships to an NPC it no longer finds; the stream stops at the
    first large file with a problem)."""
    monkeypatch.setattr("catalog.stream.CHUNK", 64)
    root = write_world(generate_world(700, seed=5), tmp_path / "w")
    name, change = BREAKS[what]
    _break(root, name, 300, change)
    with pytest.raises(CatalogError) as loaded:
        load_catalog(root)
    with pytest.raises(CatalogError) as streamed:
        _streamed(root)
    first = streamed.value.issues[0].file
    assert first.endswith(name)
    assert streamed.value.issues == [i for i in loaded.value.issues if i.file == first]
    if name != "goals.json":
        assert streamed.value.issues[0].pointer.startswith("/300")


def test_a_duplicate_in_a_file_out_of_order_is_found(generated, tmp_path, monkeypatch) -> None:
    """Relationships not by (source, target) are read again, sorted, for the digest; a
    duplicate among them is reported where the loader reports it."""
    monkeypatch.setattr("catalog.stream.CHUNK", 64)
    copy = write_world(load_catalog(generated), tmp_path / "w")
    rels = json.loads((copy / "relationships.json").read_text())
    random.Random(2).shuffle(rels)
    rels.insert(400, rels[17])
    (copy / "relationships.json").write_text(json.dumps(rels))
    with pytest.raises(CatalogError) as loaded:
        load_catalog(copy)
    with pytest.raises(CatalogError) as streamed:
        _streamed(copy)
    assert streamed.value.issues == loaded.value.issues
    assert [i.pointer for i in streamed.value.issues] == ["/400"]
