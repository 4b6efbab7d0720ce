"""Your own world: ``worldfeed check-world DIR`` and ``worldfeed new-world NAME``.

``check-world`` loads a world directory the way a run does and prints every problem
as ``file: /json/pointer: message [rule]``. ``new-world`` starts a world from a
template: a copy of the starter town (``--from town``, the default) with the world's
name and title replaced, or a synthetic world of ``--npcs`` NPCs (``--from synthetic``);
then it validates the copy and says how to run it. See ``catalog/README.md``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from catalog import Catalog, CatalogError, load_catalog
from catalog.generate import write_generated_world
from catalog.models import CATALOG_FILES
from worldfeed.settings import ROOT

STARTER = ROOT / "catalog" / "worlds" / "town"
STARTER_TITLE = "Brookfield"  # the starter town's title, as its data spells it
DEFAULT_DIR = ROOT / ".local" / "worlds"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class WorldExists(FileExistsError):
    """The target directory is already there (new-world never overwrites)."""


def summary(catalog: Catalog) -> str:
    """One line: how big the world is."""
    return (
        f"{len(catalog.places)} places, {len(catalog.npcs)} NPCs, "
        f"{len(catalog.event_types)} event types, {len(catalog.channels)} channels, "
        f"{len(catalog.templates)} templates, {len(catalog.scheduled)} scheduled events, "
        f"{len(catalog.director)} director rules"
    )


def check_world(directory: Path) -> int:
    """Validate a world directory; print ok and its size, or every problem. 0 ok, 2 bad."""
    if not directory.is_dir():
        print(f"worldfeed check-world: {directory} is not a directory", file=sys.stderr)
        return 2
    try:
        catalog = load_catalog(directory)
    except CatalogError as exc:
        issues = exc.issues
        print(f"{directory}: {len(issues)} problem{'s' if len(issues) != 1 else ''}:")
        print(exc)
        return 2
    print(f"{directory}: ok ({summary(catalog)})")
    return 0


def _retitle(text: str, title: str) -> str:
    return text.replace(STARTER_TITLE, title)


def copy_town(target: Path, name: str, title: str) -> None:
    """The starter town's files with the world's name and title in place of Brookfield's.

    Text fields name the town literally (place and channel names, descriptions, voices)
    and are rewritten; prompt templates name it through ``{world_title}`` and follow
    ``world.json`` by themselves.
    """
    target.mkdir(parents=True)
    for file in CATALOG_FILES:
        text = (STARTER / file).read_text(encoding="utf-8")
        if file == "world.json":
            world = json.loads(text)
            world["name"] = name
            world["title"] = title
            world["description"] = _retitle(world["description"], title)
            text = json.dumps(world, indent=2, ensure_ascii=False) + "\n"
        elif file != "templates.json":
            # JSON-escape the title as it will sit inside a string
            text = _retitle(text, json.dumps(title, ensure_ascii=False)[1:-1])
        (target / file).write_text(text, encoding="utf-8")


def synthetic(target: Path, name: str, title: str, npcs: int, seed: int) -> None:
    """A generated world of ``npcs`` NPCs, named ``name`` / ``title``, with the starter prompts."""
    write_generated_world(target, npcs, seed)  # streamed: a million NPCs in little memory
    world = json.loads((target / "world.json").read_text(encoding="utf-8"))
    world.update(
        name=name,
        title=title,
        description=f"{title}, a generated town of {npcs} people (worldfeed new-world).",
    )
    (target / "world.json").write_text(json.dumps(world, indent=2) + "\n", encoding="utf-8")
    # the loaded starter's templates have its title filled in: take the variable back
    shutil.copyfile(STARTER / "templates.json", target / "templates.json")


def new_world(
    name: str,
    directory: Path | None = None,
    title: str | None = None,
    template: str = "town",
    npcs: int = 50,
    seed: int = 1,
) -> Path:
    """Create and validate world ``name`` under ``directory``; returns its path.

    Raises ``ValueError`` for a bad name, :class:`WorldExists` if the target exists,
    :class:`~catalog.CatalogError` if the result does not validate (it is removed then).
    """
    if not NAME.match(name):
        raise ValueError(
            f"world name {name!r}: lower-case letters, digits and _, starting with a letter"
        )
    title = title or name.replace("_", " ").title()
    target = (directory or DEFAULT_DIR) / name
    if target.exists():
        raise WorldExists(f"{target} already exists; pick another name or --dir")
    if template == "town":
        copy_town(target, name, title)
    elif template == "synthetic":
        synthetic(target, name, title, npcs, seed)
    else:
        raise ValueError(f"unknown template {template!r} (town, synthetic)")
    try:
        load_catalog(target)
    except CatalogError:
        shutil.rmtree(target)
        raise
    return target


def cmd_new_world(
    name: str, directory: Path | None, title: str | None, template: str, npcs: int, seed: int
) -> int:
    """``worldfeed new-world``: create, validate, say how to run it."""
    try:
        path = new_world(name, directory, title, template, npcs, seed)
    except (ValueError, WorldExists, CatalogError) as exc:
        print(f"worldfeed new-world: {exc}", file=sys.stderr)
        return 2
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    print(f"created {shown} ({summary(load_catalog(path))})")
    print(f"check it after editing:  .venv/bin/worldfeed check-world {shown}")
    print(f"run it:                  WORLDFEED_CATALOG_DIR={shown} .venv/bin/worldfeed up")
    return 0
