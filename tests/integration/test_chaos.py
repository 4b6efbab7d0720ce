"""Faults on a real run: a broker killed on a 3-broker cluster, and a short chaos session.

The long version is ``make chaos`` (``python -m bench.chaos --rounds 50``); here a few
rounds of it run against the session's cluster, each checked against the in-process
reference (sim.local.LocalRun) and the raw ClickHouse rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from bench.chaos import Config, Rig, Round, chaos, read_all, summary
from sim.local import LocalRun
from sim.world import load_world
from tests.fixtures.kafka import KafkaCluster
from tests.fixtures.processes import Procs, read_until, start_run
from topics import CLOCK_INBOX, EVENTS, TICKS
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TICKS_PER_DAY = 96


async def clock_leader(settings: Settings) -> int:
    """The broker leading the clock's inbox (the one partition every tick goes through)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([settings.topic(CLOCK_INBOX.name)])
        return int(described[0]["partitions"][0]["leader"])
    finally:
        await admin.close()


@pytest.fixture
def broker_back(kafka_cluster: KafkaCluster) -> Iterator[list[int]]:
    """Brokers a test killed; started again when it ends."""
    killed: list[int] = []
    yield killed
    for node in killed:
        kafka_cluster.start_node(node)


async def test_a_broker_killed_mid_run_loses_nothing(
    kafka_cluster: KafkaCluster,
    settings_factory: Callable[..., Settings],
    procs: Procs,
    broker_back: list[int],
) -> None:
    """kill -9 of the broker that leads the clock's inbox, a third into a run on two
    workers: with replication factor 3, min.insync.replicas 2 and idempotent acks=all
    producers the run completes with every reference hash and event, none twice."""
    settings = settings_factory(
        kafka_bootstrap=kafka_cluster.bootstrap,
        kafka_replication=3,
        world_partitions=4,
        tick_timeout_s=3.0,
        speed=3000.0,
    )
    procs.worker("worker0", settings, "clock,world,impact")
    procs.worker("worker1", settings, "clock,world,impact")
    run_id, seed, n = "broker-run", 5, TICKS_PER_DAY // 2
    await start_run(settings, run_id, seed, days=0.5, speed=3000.0)
    await read_until(settings, TICKS, lambda m: len(m) >= n // 3, 180)
    leader = await clock_leader(settings)
    kafka_cluster.kill(leader)
    broker_back.append(leader)

    def finished(msgs: list[object]) -> bool:
        procs.assert_alive()
        return any(getattr(m, "last", False) for m in msgs)

    await read_until(settings, TICKS, finished, 300)
    ticks = {t.tick: t for t in await read_all(settings, TICKS) if t.run_id == run_id}
    reference = LocalRun(load_world("town"), run_id, seed)
    for _ in range(n):
        reference.step()
    assert sorted(ticks) == list(range(n)), "a tick was skipped"
    assert [ticks[i].state_hash for i in range(n)] == reference.hashes
    events = [e for e in await read_all(settings, EVENTS) if e.run_id == run_id]
    assert sorted({e.event_id for e in events}) == sorted(e.event_id for e in reference.events)


@pytest.fixture
def rig(
    kafka_cluster: KafkaCluster, triton_url: str, tmp_path: Path
) -> Iterator[Callable[[Config], Rig]]:
    """Factory: a chaos rig on the session's cluster and Triton; what it started is stopped."""
    made: list[Rig] = []

    def make(cfg: Config) -> Rig:
        cfg.kafka_cluster = kafka_cluster.base
        cfg.triton_grpc = triton_url
        cfg.logdir = tmp_path / "chaos"
        made.append(Rig(cfg))
        return made[-1]

    yield make
    for r in made:
        r.close()


async def test_short_chaos_rounds_keep_every_invariant(rig: Callable[[Config], Rig]) -> None:
    """A kill -9 of a worker, of a broker, and a restart of the API with its sink, one per
    round (``make chaos`` adds SIGTERM, a new worker and Triton down): after each, hashes
    equal the reference, every render request is one stored post (raw rows), and the DLQ
    holds only what was sent there on purpose."""
    faults = ("kill_worker", "kill_broker", "restart_api")
    cfg = Config(rounds=3, faults=faults, ticks=24, round_timeout_s=240.0, seed=3)
    rounds: list[Round] = []
    await chaos(rig(cfg), rounds)
    print(summary(rounds))
    assert len(rounds) == cfg.rounds, summary(rounds)
    assert [r.problems for r in rounds] == [[]] * cfg.rounds, summary(rounds)
    assert [r.fault for r in rounds] == list(faults)
