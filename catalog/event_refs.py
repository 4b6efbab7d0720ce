"""Whether an event's type, NPCs and place exist in a catalog and fit together.

The one rule for an event named by id: a scheduled event of the catalog, an event an
admin injects (checked by the API before it is sent, and by the shards before it
happens). Each problem names the field, so the API answers 422 on it and the catalog
loader reports it at its JSON pointer.

A closed place hosts no event (:func:`closed_problem`): the catalog loader checks a
scheduled event at its time, the director picks only open places, and the shards skip an
injected event at a place closed at the tick's hour (the API cannot know that hour).
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.models import Catalog, Place


@dataclass(frozen=True)
class EventProblem:
    """One reason an event does not fit the catalog."""

    field: str  # "type", "actor", "target" or "place"
    message: str
    rule: str  # the catalog loader's rule id
    value: str | None  # what the field holds


def event_problems(
    catalog: Catalog, type_: str, actor: str, target: str | None, place: str | None
) -> list[EventProblem]:
    """Every problem of an event in ``catalog``, in field order; empty when it can happen.

    The type, the NPCs and the place (``None``: the actor's location) must exist, the
    target must not be the actor, and there is a target exactly when the type needs one.
    """
    out: list[EventProblem] = []
    etype = catalog.event_types.get(type_)
    if etype is None:
        out.append(
            EventProblem("type", f"unknown event type {type_!r}", "event-type-exists", type_)
        )
    if actor not in catalog.npcs:
        out.append(EventProblem("actor", f"unknown npc {actor!r}", "npc-exists", actor))
    if target is not None and target not in catalog.npcs:
        out.append(EventProblem("target", f"unknown npc {target!r}", "npc-exists", target))
    if place is not None and place not in catalog.places:
        out.append(EventProblem("place", f"unknown place {place!r}", "place-exists", place))
    if target is not None and target == actor:
        out.append(
            EventProblem("target", "target must differ from actor", "target-consistency", target)
        )
    if etype is not None and etype.needs_target != (target is not None):
        need = "needs a" if etype.needs_target else "takes no"
        out.append(
            EventProblem(
                "target", f"event type {type_!r} {need} target", "target-consistency", target
            )
        )
    return out


def is_open(place: Place, hour: int) -> bool:
    """Whether a place is open at an hour: ``open_hour <= hour < close_hour``, or, when it
    closes after midnight (``close_hour < open_hour``), from ``open_hour`` to midnight and
    from midnight to ``close_hour``. Equal hours: never open (0..24 is all day). NPC
    admission (``sim.world``), the director and the catalog checks all ask here."""
    if place.open_hour <= place.close_hour:
        return place.open_hour <= hour < place.close_hour
    return hour >= place.open_hour or hour < place.close_hour


def open_for(catalog: Catalog, place_id: str, actor: str, hour: int) -> bool:
    """Whether an event of ``actor`` can happen at a place at an hour: it is open then, or
    it is the actor's home (a home always takes its residents in, as admission does).
    An unknown place or NPC is :func:`event_problems`' to report: open here."""
    place = catalog.places.get(place_id)
    if place is None or is_open(place, hour):
        return True
    npc = catalog.npcs.get(actor)
    return npc is not None and npc.home == place_id


def closed_problem(
    catalog: Catalog, actor: str, place: str | None, hour: int, when: str
) -> EventProblem | None:
    """The problem of an event at ``place`` while it is closed at ``hour``; ``when`` says
    the time in the message. None when the place is open (or None: the actor's location,
    which admission already keeps open)."""
    if place is None or open_for(catalog, place, actor, hour):
        return None
    spot = catalog.places[place]
    return EventProblem(
        "place",
        f"{place!r} is closed at {when} (open {spot.open_hour}..{spot.close_hour})",
        "place-open",
        place,
    )
