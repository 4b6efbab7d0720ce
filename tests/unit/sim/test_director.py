"""The director's rules, tick-wide inputs and cooldowns, without Kafka (``sim/director.py``)."""

from __future__ import annotations

import pytest

from sim.director import (
    CONFLICT_AFFINITY,
    cooling,
    due_director_events,
    fired_on_shard,
    relationship_tally,
)
from sim.local import LocalRun
from sim.world import WorldIndex, load_world
from topics.models import TickStarted

DAYS = 2
TICKS = DAYS * 96


@pytest.fixture(scope="module")
def town() -> WorldIndex:
    return load_world("town")


def tick(**kw: object) -> TickStarted:
    base: dict[str, object] = {
        "run_id": "r", "seed": 1, "world": "town", "tick": 56, "sim_minute": 56 * 15,
        "step_minutes": 15, "shard": 0, "n_shards": 1,
    }  # fmt: skip
    return TickStarted.model_validate({**base, **kw})


def rule_ids(index: WorldIndex, msg: TickStarted) -> list[str]:
    return sorted(r.id for r, *_ in due_director_events(index, msg))


def test_cooldown_is_counted_from_the_last_firing(town: WorldIndex) -> None:
    drama = next(r for r in town.catalog.director if r.id == "inject_drama")
    assert drama.cooldown_ticks == 16
    assert not cooling(drama, tick(tick=136))
    assert cooling(drama, tick(tick=136, director_last={"inject_drama": 132}))
    assert cooling(drama, tick(tick=147, director_last={"inject_drama": 132}))
    assert not cooling(drama, tick(tick=148, director_last={"inject_drama": 132}))


def test_the_town_director_keeps_its_cooldowns() -> None:
    """inject_drama (cooldown 16) once fired at ticks 132 and 136; now never twice within 16."""
    run = LocalRun(load_world("town"), "r", 1)
    for _ in range(TICKS):
        run.step()
    by_rule: dict[str, list[int]] = {}
    for done in run.completed:
        for rule_id in done.director_fired:
            by_rule.setdefault(rule_id, []).append(done.tick)
    rules = {r.id: r for r in run.index.catalog.director}
    assert by_rule  # the town's director does fire
    for rule_id, ticks in by_rule.items():
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        assert all(g >= rules[rule_id].cooldown_ticks for g in gaps), (rule_id, ticks)
    director_events = [e for e in run.events if e.source == "director"]
    assert len(director_events) == sum(len(t) for t in by_rule.values())


def test_slow_news_scandal_can_happen(town: WorldIndex) -> None:
    """posts_last_hour reaches the director: the scandal rule is due on a quiet afternoon."""
    scandal = next(r for r in town.catalog.director if r.id == "slow_news_scandal")
    quiet = tick(tick=56, posts_last_hour=0)  # 14:00, a check tick (every 8)
    busy = tick(tick=56, posts_last_hour=3)
    assert "slow_news_scandal" not in rule_ids(town, busy)
    # due on the quiet tick unless its probability draw says no: find a seed where it fires
    fires = [
        s
        for s in range(40)
        if "slow_news_scandal" in rule_ids(town, quiet.model_copy(update={"seed": s}))
    ]
    assert fires and scandal.probability < 1


def test_metrics_missing_before_the_first_report_never_fire(town: WorldIndex) -> None:
    from catalog.models import DirectorRule

    rule = DirectorRule.model_validate(
        {
            "id": "probe", "kind": "drama", "description": "x", "event_type": "rivalry_jab",
            "trigger": {"type": "condition", "metric": "mean_affinity", "op": "<", "value": 100,
                        "check_every_ticks": 1},
            "participants": {"actor": {"pick": "random"}},
        }
    )  # fmt: skip
    town.catalog.director.append(rule)
    try:
        assert "probe" not in rule_ids(town, tick(tick=5))
        assert "probe" in rule_ids(town, tick(tick=5, mean_affinity=12.5))
    finally:
        town.catalog.director.remove(rule)


def test_one_shard_fires_each_rule(town: WorldIndex) -> None:
    for seed in range(1, 30):
        msg = tick(seed=seed, posts_last_hour=0)
        due = rule_ids(town, msg)
        per_shard = [
            fired_on_shard(town, msg.model_copy(update={"shard": q, "n_shards": 3}))
            for q in range(3)
        ]
        assert sorted(r for ids in per_shard for r in ids) == due


def test_relationship_tally_is_integer_fixed_point() -> None:
    state = {"rel": {"a": [12.3456, 0, 0], "b": [CONFLICT_AFFINITY, 0, 0], "c": [-0.0004, 0, 0]}}
    assert relationship_tally(state) == (12346 - 30000 + 0, 3, 1)
    assert relationship_tally({"rel": {}}) == (0, 0, 0)
    assert relationship_tally({"rel": {"a": [-29.9999, 0, 0]}})[2] == 0


@pytest.mark.parametrize("n_shards", [2, 5])
def test_director_and_tick_inputs_do_not_depend_on_partition_count(n_shards: int) -> None:
    index = load_world("town")
    one = LocalRun(index, "r", 7, n_shards=1)
    many = LocalRun(index, "r", 7, n_shards=n_shards)
    for _ in range(TICKS):
        one.step()
        many.step()
    assert one.hashes == many.hashes
    fields = ("events", "render_requests", "affinity_milli", "relationships", "in_conflict",
              "director_fired", "state_hash")  # fmt: skip
    for a, b in zip(one.completed, many.completed, strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
    assert one.tick_message(TICKS, 0) == many.tick_message(TICKS, 0).model_copy(
        update={"n_shards": 1}
    )
