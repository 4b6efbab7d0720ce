"""Every director field does what it says: one behavioural test per catalog field.

Each test plays the starter town with one director rule (the town's own rules removed,
so nothing else fires) and changes one field of that rule: the outcome changes as the
field's description says. Names follow ``test_field_<Model>_<field>_...`` (a coverage
test looks for them).
"""

from __future__ import annotations

from typing import Any

from catalog.models import Catalog, DirectorRule
from sim.calendar import HOURS_PER_DAY, MINUTES_PER_HOUR, hour_of
from sim.director import CONFLICT_AFFINITY, weekday
from sim.impact import Story, render_requests
from sim.local import LocalRun
from sim.world import WorldIndex, load_world
from topics.models import EventHappened

STEP = 15
PER_HOUR = MINUTES_PER_HOUR // STEP
DAY = HOURS_PER_DAY * PER_HOUR  # ticks in a day


def town() -> Catalog:
    return load_world("town").catalog


def rule(**changes: Any) -> DirectorRule:
    """A rule that fires on every tick (condition events_last_hour >= 0, checked every
    tick, all day, probability 1, no cooldown) unless a test changes a field."""
    base: dict[str, Any] = {
        "id": "probe",
        "kind": "drama",
        "description": "A probe for the tests.",
        "trigger": {
            "type": "condition",
            "metric": "events_last_hour",
            "op": ">=",
            "value": 0,
            "check_every_ticks": 1,
        },
        "event_type": "rivalry_jab",
        "participants": {"actor": {"pick": "random"}, "target": {"pick": "random"}},
        "probability": 1.0,
    }
    trigger = changes.pop("trigger", {})
    base["trigger"] = {**base["trigger"], **trigger}
    if trigger.get("type") == "schedule":
        base["trigger"] = {k: v for k, v in base["trigger"].items() if k in ScheduleKeys}
    base.update(changes)
    return DirectorRule.model_validate(base)


ScheduleKeys = ("type", "time", "days", "weekdays")


def with_rules(*rules: DirectorRule) -> WorldIndex:
    """The town with only these director rules (an in-memory copy)."""
    cat = town()
    copy = Catalog(
        world=cat.world,
        places=list(cat.places.values()),
        npcs=list(cat.npcs.values()),
        relationships=cat.relationships,
        goals=cat.goals,
        event_types=list(cat.event_types.values()),
        channels=list(cat.channels.values()),
        templates=list(cat.templates.values()),
        scheduled=cat.scheduled,
        director=list(rules),
    )
    return WorldIndex.build(copy)


def play(*rules: DirectorRule, ticks: int = DAY, seed: int = 1, shards: int = 1) -> LocalRun:
    run = LocalRun(with_rules(*rules), "r", seed, n_shards=shards, step_minutes=STEP)
    for _ in range(ticks):
        run.step()
    return run


def fired(run: LocalRun, rule_id: str = "probe") -> list[int]:
    """Ticks on which the rule fired (from the ticks log)."""
    return [done.tick for done in run.completed if rule_id in done.director_fired]


def director_events(run: LocalRun) -> list[EventHappened]:
    return [e for e in run.events if e.source == "director"]


def hours(ticks: list[int]) -> set[int]:
    return {hour_of(t * STEP) for t in ticks}


# ---- DirectorRule ---------------------------------------------------------------------------


def test_field_DirectorRule_id_names_the_rule_in_the_ticks_log() -> None:
    a = play(rule(id="first_name"), ticks=8)
    assert fired(a, "first_name") == list(range(1, 8))
    assert fired(a, "probe") == []


def test_field_DirectorRule_kind_is_a_label_that_changes_nothing() -> None:
    a = play(rule(kind="drama"), ticks=12)
    b = play(rule(kind="weather"), ticks=12)
    assert a.hashes == b.hashes and fired(a) == fired(b)


def test_field_DirectorRule_description_is_documentation_only() -> None:
    a = play(rule(description="one"), ticks=12)
    b = play(rule(description="two"), ticks=12)
    assert a.hashes == b.hashes


def test_field_DirectorRule_trigger_decides_when_it_fires() -> None:
    always = play(rule(), ticks=DAY)
    at_ten = play(rule(trigger={"type": "schedule", "time": "10:00"}), ticks=DAY)
    assert len(fired(always)) == DAY - 1  # every tick but tick 0 (conditions skip it)
    assert fired(at_ten) == [10 * PER_HOUR]


def test_field_DirectorRule_event_type_is_the_event_it_makes() -> None:
    jab = play(rule(), ticks=8)
    leak = play(rule(event_type="scandal_leak"), ticks=8)
    assert {e.type for e in director_events(jab)} == {"rivalry_jab"}
    assert {e.type for e in director_events(leak)} == {"scandal_leak"}


def test_field_DirectorRule_participants_pick_actor_target_and_place() -> None:
    cat = town()
    actor, target = sorted(cat.npcs)[:2]
    place = cat.npcs[actor].home  # open whenever the rule is due (a closed place hosts none)
    fixed = {
        "actor": {"npc": actor},
        "target": {"npc": target},
        "place": {"place": place},
    }
    run = play(rule(participants=fixed), ticks=6)
    events = director_events(run)
    assert events and all((e.actor, e.target, e.place) == (actor, target, place) for e in events)
    mayor = play(rule(participants={"actor": {"occupation": "Mayor"}}), ticks=6)
    mayors = {n for n, npc in cat.npcs.items() if npc.occupation == "Mayor"}
    assert {e.actor for e in director_events(mayor)} <= mayors
    assert all(e.target is None for e in director_events(mayor))


def test_field_DirectorRule_probability_is_the_chance_it_fires_when_due() -> None:
    ticks = 2 * DAY
    never = play(rule(probability=0.0), ticks=ticks)
    half = play(rule(probability=0.5), ticks=ticks)
    always = play(rule(probability=1.0), ticks=ticks)
    assert fired(never) == []
    assert len(fired(always)) == ticks - 1
    assert 0.35 * ticks < len(fired(half)) < 0.65 * ticks


def test_field_DirectorRule_cooldown_ticks_spaces_firings() -> None:
    free = play(rule(cooldown_ticks=0), ticks=DAY)
    spaced = play(rule(cooldown_ticks=16), ticks=DAY)
    assert fired(free) == list(range(1, DAY))
    got = fired(spaced)
    assert got == list(range(1, DAY, 16))  # due every tick: fires again the tick it may
    assert all(b - a >= 16 for a, b in zip(got, got[1:], strict=False))


def test_field_DirectorRule_summary_overrides_the_event_summary() -> None:
    plain = play(rule(), ticks=4)
    told = play(rule(summary="Sparks fly in town."), ticks=4)
    assert all(e.summary != "Sparks fly in town." for e in director_events(plain))
    assert director_events(told)
    assert all(e.summary == "Sparks fly in town." for e in director_events(told))


# ---- ScheduleTrigger ------------------------------------------------------------------------


def schedule(**trigger: Any) -> DirectorRule:
    return rule(trigger={"type": "schedule", "time": "10:00", **trigger})


def test_field_ScheduleTrigger_type_fires_on_the_clock_not_a_metric() -> None:
    run = play(schedule(), ticks=DAY)
    assert fired(run) == [10 * PER_HOUR]


def test_field_ScheduleTrigger_time_is_the_tick_whose_span_holds_it() -> None:
    assert fired(play(schedule(time="10:00"), ticks=DAY)) == [40]
    assert fired(play(schedule(time="10:14"), ticks=DAY)) == [40]
    assert fired(play(schedule(time="13:30"), ticks=DAY)) == [54]


def test_field_ScheduleTrigger_days_limits_the_days() -> None:
    every = play(schedule(), ticks=3 * DAY)
    second = play(schedule(days=[2]), ticks=3 * DAY)
    assert fired(every) == [40, DAY + 40, 2 * DAY + 40]
    assert fired(second) == [DAY + 40]


def test_field_ScheduleTrigger_weekdays_limits_the_weekdays() -> None:
    index = with_rules()
    day3 = weekday(index, 3)
    run = play(schedule(weekdays=[day3]), ticks=3 * DAY)
    assert fired(run) == [2 * DAY + 40]


# ---- ConditionTrigger -----------------------------------------------------------------------


def condition(**trigger: Any) -> DirectorRule:
    return rule(trigger=trigger)


def test_field_ConditionTrigger_type_fires_on_a_metric_not_the_clock() -> None:
    never = play(condition(op="<", value=0), ticks=DAY)
    assert fired(never) == []  # events_last_hour is never negative, whatever the time


def _tick_inputs(
    probe: DirectorRule, driver: DirectorRule, ticks: int
) -> tuple[LocalRun, list[Any]]:
    """Play the probe beside a driver rule; the relationships at the start of each tick,
    read from the NPC states (not from the clock), for an independent expectation."""
    run = LocalRun(with_rules(probe, driver), "r", 1, step_minutes=STEP)
    starts = []
    for _ in range(ticks):
        starts.append([{k: list(v) for k, v in s["rel"].items()} for s in run.states.values()])
        run.step()
    return run, starts


def _mean(rels: list[Any]) -> float:
    values = [r[0] for rel in rels for r in rel.values()]
    return round(sum(values) / len(values), 4)


def _share(rels: list[Any]) -> float:
    hit = sum(any(r[0] <= CONFLICT_AFFINITY for r in rel.values()) for rel in rels)
    return round(hit / len(rels), 4)


def test_field_ConditionTrigger_metric_events_last_hour_fires() -> None:
    run = play(condition(op=">=", value=3), ticks=DAY)
    events = [done.events for done in run.completed]
    want = [t for t in range(1, DAY) if sum(events[max(0, t - PER_HOUR) : t]) >= 3]
    assert want and len(want) < DAY - 1
    assert fired(run) == want


def test_field_ConditionTrigger_metric_posts_last_hour_fires() -> None:
    run = play(condition(metric="posts_last_hour", op="<", value=1), ticks=DAY)
    index = run.index
    requests = [0] * DAY
    for ev in run.events:  # the impact stage's own rules on the base score
        requests[ev.tick] += len(render_requests(index, Story(ev.model_copy(deep=True))))
    want = [t for t in range(1, DAY) if sum(requests[max(0, t - PER_HOUR) : t]) < 1]
    assert want and len(want) < DAY - 1
    assert fired(run) == want


def test_field_ConditionTrigger_metric_mean_affinity_fires() -> None:
    # the driver jabs every tick, so the mean affinity falls below the seed's
    driver = rule(id="driver", probability=1.0)
    initial = _mean([s["rel"] for s in LocalRun(with_rules(), "r", 1).states.values()])
    cut = initial - 3
    probe = condition(metric="mean_affinity", op="<", value=cut)
    run, starts = _tick_inputs(probe, driver, 24)
    want = [t for t in range(1, 24) if _mean(starts[t]) < cut]
    assert want and want[0] > 1  # false at first, then true
    assert fired(run) == want


def test_field_ConditionTrigger_metric_active_npcs_fires() -> None:
    index = with_rules()
    awake = [sum(len(v) for v in index.occupancy[h].values()) for h in range(HOURS_PER_DAY)]
    cut = sorted(awake)[len(awake) // 2]
    run = play(condition(metric="active_npcs", op=">=", value=cut), ticks=DAY)
    want = [t for t in range(1, DAY) if awake[hour_of(t * STEP)] >= cut]
    assert want and len(want) < DAY - 1
    assert fired(run) == want


def test_field_ConditionTrigger_metric_conflict_share_fires() -> None:
    # the driver makes one friendly pair jab each other every tick, into conflict
    cat = town()
    friends = sorted((r.source, r.target) for r in cat.relationships if r.affinity > 0)
    actor, target = friends[0]
    both = {"actor": {"npc": actor}, "target": {"npc": target}}
    driver = rule(id="driver", participants=both)
    initial = _share([s["rel"] for s in LocalRun(with_rules(), "r", 1).states.values()])
    probe = condition(metric="conflict_share", op=">", value=initial)
    run, starts = _tick_inputs(probe, driver, 48)
    want = [t for t in range(1, 48) if _share(starts[t]) > initial]
    assert 0 < initial < 1 and want and want[0] > 1  # false at first, then true
    assert fired(run) == want


def test_field_ConditionTrigger_op_compares_the_metric_to_the_value() -> None:
    ge = fired(play(condition(op=">=", value=3), ticks=DAY))
    lt = fired(play(condition(op="<", value=3), ticks=DAY))
    gt = fired(play(condition(op=">", value=3), ticks=DAY))
    le = fired(play(condition(op="<=", value=3), ticks=DAY))
    assert ge and lt
    assert set(gt) <= set(ge) and set(lt) <= set(le)


def test_field_ConditionTrigger_value_is_the_threshold() -> None:
    low = fired(play(condition(op=">=", value=1), ticks=DAY))
    high = fired(play(condition(op=">=", value=6), ticks=DAY))
    assert set(high) < set(low)


def test_field_ConditionTrigger_check_every_ticks_spaces_the_checks() -> None:
    every4 = fired(play(condition(check_every_ticks=4), ticks=DAY))
    every8 = fired(play(condition(check_every_ticks=8), ticks=DAY))
    assert every4 == list(range(4, DAY, 4))
    assert every8 == list(range(8, DAY, 8))


def test_field_ConditionTrigger_start_hour_opens_the_window() -> None:
    got = fired(play(condition(start_hour=10), ticks=DAY))
    assert hours(got) == set(range(10, 24))


def test_field_ConditionTrigger_end_hour_closes_the_window() -> None:
    got = fired(play(condition(end_hour=10), ticks=DAY))
    assert hours(got) == set(range(10))
