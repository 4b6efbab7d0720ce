"""The feed loop, measured (issue 18): exposures, reactions, cost, and how a story spreads.

    python -m bench.spread                         # 1k and 10k NPCs, spread at 1k
    python -m bench.spread --sizes 1000 --ticks 8  # quicker

In process (``sim.local.LocalRun``, one shard: the compute-only baseline), on generated
worlds (``catalog.generate``) with the catalog's feed loop switched on in memory:

1. **Exposures and reactions per tick, and the cost.** The same run from 10:00 with the
   loop off and on (the catalog's default recommender and rates): mean exposures,
   reactions and events per tick, and the time per tick (median of the ticks) both ways.
2. **Spread of a scandal under each recommender.** A scandal (``scandal_leak``, the most
   famous NPC awake at 10:00 about another) injected on the run's second tick; per tick,
   the share of the world that has read a post about it. Each run is played twice: the
   replay must give the same curve.

Figures are printed; nothing is asserted but the replayed curves.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from catalog.generate import generate_world
from catalog.models import Catalog, Recommender
from sim.calendar import MINUTES_PER_HOUR
from sim.local import LocalRun
from sim.world import WorldIndex
from topics.models import InjectedEvent

START_MINUTE = 10 * MINUTES_PER_HOUR  # 10:00: most NPCs are awake and about
RECOMMENDERS: tuple[Recommender, ...] = ("chronological", "affinity", "popularity", "random")
SCANDAL_TICK = 1


def out(text: str) -> None:
    print(text, flush=True)


def with_feed(cat: Catalog, on: bool, **update: Any) -> WorldIndex:
    """An index of ``cat`` with the feed loop on or off (and feed.json fields changed)."""
    feed = cat.feed.model_copy(update={"enabled": on, **update})
    return WorldIndex.build(
        Catalog(
            cat.world,
            list(cat.places.values()),
            list(cat.npcs.values()),
            cat.relationships,
            cat.goals,
            list(cat.event_types.values()),
            list(cat.channels.values()),
            list(cat.templates.values()),
            cat.scheduled,
            cat.director,
            cat.decide,
            feed,
        )
    )


def play(
    index: WorldIndex, ticks: int, inject: InjectedEvent | None = None
) -> tuple[LocalRun, list[float]]:
    """A run of ``ticks`` from 10:00, with ``inject`` on its second tick; its tick times."""
    run = LocalRun(index, "spread", seed=7, start_minute=START_MINUTE)
    times = []
    for t in range(ticks):
        t0 = time.perf_counter()
        run.step([inject] if inject is not None and t == SCANDAL_TICK else None)
        times.append(time.perf_counter() - t0)
    return run, times


def per_tick(index_off: WorldIndex, index_on: WorldIndex, n: int, ticks: int) -> None:
    """Exposures, reactions and events per tick, and the time per tick off vs on."""
    off, t_off = play(index_off, ticks)
    on, t_on = play(index_on, ticks)
    mean = statistics.fmean
    med_off, med_on = statistics.median(t_off), statistics.median(t_on)
    out(
        f"  {n:>7,} NPCs  exposures/tick {mean(d.exposures for d in on.completed):8.1f}  "
        f"reactions/tick {mean(d.reactions for d in on.completed):7.1f}  "
        f"events/tick {mean(d.events for d in off.completed):6.1f} -> "
        f"{mean(d.events for d in on.completed):6.1f}"
    )
    out(
        f"           time/tick off {med_off * 1000:7.1f} ms  on {med_on * 1000:7.1f} ms  "
        f"added {(med_on - med_off) * 1000:+7.1f} ms ({med_on / med_off:.2f}x)"
    )


def scandal(index: WorldIndex) -> InjectedEvent:
    """A scandal by the most famous NPC awake at 10:00, about the next most famous."""
    hour = START_MINUTE // MINUTES_PER_HOUR
    awake = [n for n in index.npc_ids if index.location[n][hour] is not None]
    ranked = sorted(awake, key=lambda n: (-index.npc(n).fame, n))
    return InjectedEvent(type="scandal_leak", actor=ranked[0], target=ranked[1])


def curve(run: LocalRun, event_id: str) -> list[float]:
    """Per tick, the share of the world that has read a post about ``event_id`` so far."""
    n = len(run.index.npc_ids)
    readers: set[str] = set()
    shares = []
    by_tick: dict[int, set[str]] = {}
    for e in run.exposures:
        if e.event_id == event_id:
            by_tick.setdefault(e.tick, set()).add(e.npc_id)
    for done in run.completed:
        readers |= by_tick.get(done.tick, set())
        shares.append(len(readers) / n)
    return shares


def spread(cat: Catalog, ticks: int) -> None:
    """The scandal's spread curve under each recommender, each replayed."""
    for rec in RECOMMENDERS:
        index = with_feed(cat, True, recommender=rec)
        inject = scandal(index)
        run, _ = play(index, ticks, inject)
        ids = [e.event_id for e in run.events if e.tick == SCANDAL_TICK and e.source == "admin"]
        if not ids:
            out(f"  {rec:>13}: the scandal did not happen (injection refused)")
            continue
        shares = curve(run, ids[0])
        again, _ = play(index, ticks, inject)
        same = curve(again, ids[0]) == shares and again.hashes == run.hashes
        posts = sum(1 for d in run.completed for p in d.feed_posts if p.event_id == ids[0])
        cells = " ".join(f"{s * 100:5.1f}" for s in shares)
        out(
            f"  {rec:>13}: {cells}  (% read by tick; {posts} posts; "
            f"replay {'identical' if same else 'DIFFERS'})"
        )
        if not same:
            raise SystemExit("a replay gave another curve")


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--ticks", type=int, default=16, help="ticks per run (from 10:00)")
    parser.add_argument("--spread-size", type=int, default=1000)
    args = parser.parse_args()
    out("exposures and reactions per tick, and the added cost (in process, one shard)")
    cats: dict[int, Catalog] = {}
    for n in args.sizes:
        t = time.perf_counter()
        cats[n] = generate_world(n, seed=7)
        off, on = with_feed(cats[n], False), with_feed(cats[n], True)
        out(f"  ({n:,} NPCs: world generated and indexed in {time.perf_counter() - t:.1f}s)")
        per_tick(off, on, n, args.ticks)
    n = args.spread_size
    cat = cats.get(n) or generate_world(n, seed=7)
    out(f"spread of a scandal injected at tick {SCANDAL_TICK}, {n:,} NPCs, from 10:00")
    spread(cat, args.ticks)


if __name__ == "__main__":
    main()
