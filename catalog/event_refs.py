"""Whether an event's type, NPCs and place exist in a catalog and fit together.

The one rule for an event named by id: a scheduled event of the catalog, an event an
admin injects (checked by the API before it is sent, and by the shards before it
happens). Each problem names the field, so the API answers 422 on it and the catalog
loader reports it at its JSON pointer.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.models import Catalog


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
