"""How goals steer choices: the one reading of an NPC's goals that every decider uses.

The rules (:mod:`sim.decide`) read it today; an LLM-chosen action must be checked
against the same reading. A goal pulls while it is unfinished (progress below 1 in
the NPC's state at the start of the tick), by ``pull(priority)``:

* an event type whose effects advance one of the actor's goal kinds weighs more;
* an event type that needs a target weighs more when a goal's target NPC is at the
  same place this hour and the type may aim at them (its target filter and affinity
  rules), and that NPC is more likely to be the one picked;
* an NPC is more likely to act at all while at a goal's target place.

Pulls of several goals multiply. Static whereabouts only (the world index), so the
reading is the same on every shard.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from catalog.models import EventType, Goal
from sim.state import State
from sim.world import WorldIndex

GOAL_PULL = 1.0  # weight multiplier per unit of priority/5: priority 5 doubles, priority 1 x1.2


def pull(priority: int) -> float:
    """The multiplier a goal of this priority (1..5) puts on what serves it."""
    return 1.0 + GOAL_PULL * priority / 5


@dataclass(frozen=True)
class GoalReading:
    """An NPC's unfinished goals at the start of a tick, and what they ask for."""

    index: WorldIndex
    npc_id: str
    goals: tuple[Goal, ...]

    def type_weight(self, etype: EventType, aimable: Collection[str] = ()) -> float:
        """Multiplier on an event type's weight: it advances one of the goals (its effects
        raise the actor's progress on the goal's kind), or it can aim at a goal's target
        (``aimable``: the goal targets here that the type's target rules allow)."""
        w = 1.0
        advances = self.index.advances.get(etype.id, frozenset())
        for goal in self.goals:
            if goal.kind in advances:
                w *= pull(goal.priority)
            if goal.target is not None and goal.target in aimable:
                w *= pull(goal.priority)
        return w

    def target_weight(self, other: str) -> float:
        """Multiplier on the chance of picking ``other`` as an event's target."""
        w = 1.0
        for goal in self.goals:
            if goal.target == other:
                w *= pull(goal.priority)
        return w

    def place_weight(self, place: str | None) -> float:
        """Multiplier on the chance of acting at all while at ``place``."""
        w = 1.0
        for goal in self.goals:
            if place is not None and goal.target == place:
                w *= pull(goal.priority)
        return w

    def targets_here(self, hour: int, place: str | None) -> list[str]:
        """Goal target NPCs at ``place`` this hour (static whereabouts), by priority."""
        out: list[str] = []
        for goal in self.goals:
            if goal.target is not None and goal.target not in out:
                if self.present(goal.target, hour, place):
                    out.append(goal.target)
        return out

    def present(self, who: str | None, hour: int, place: str | None) -> bool:
        """Whether NPC ``who`` (not the reader) is at ``place`` this hour."""
        if who is None or place is None or who == self.npc_id:
            return False
        hours = self.index.location.get(who)
        return hours is not None and hours[hour] == place


NO_GOALS: tuple[Goal, ...] = ()


def read_goals(index: WorldIndex, npc_id: str, state: State) -> GoalReading:
    """The goals that pull ``npc_id`` now: catalog goals not yet complete in its state."""
    goals = index.goals_of.get(npc_id, NO_GOALS)
    if goals:
        progress = state["goal"]
        goals = tuple(g for g in goals if float(progress.get(g.kind, 0.0)) < 1.0)
    return GoalReading(index, npc_id, goals)
