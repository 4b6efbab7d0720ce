"""Golden outputs of Day 1: what a refactor must not change.

Two parts, recorded per seed in ``tests/golden/day1-seed<N>.json``:

* ``reference``: the in-process run (no services): every tick's state hash, every
  event (full JSON), the render requests the impact rules make of them in log order
  (after the daily quotas), and the sha256 of each request's prompt. Recomputed and
  compared exactly by ``tests/unit/test_golden.py``.
* ``posts``: the posts of the same run played through the real pipeline
  (``worldfeed up``: Kafka, Triton with SmolLM2 on CPU, workers, the sink), read back
  from ClickHouse. Recorded with ``--posts``; compared by ``tests/e2e/test_golden_posts.py``.

Usage::

    .venv/bin/python -m tests.golden.record            # reference part, both seeds
    .venv/bin/python -m tests.golden.record --posts    # also play each seed for real
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent
SEEDS = (1, 7)
TICKS = 96


def run_id_for(seed: int) -> str:
    """The run id of a golden run (render request and post ids depend on it)."""
    return f"golden-{seed}"


def path_for(seed: int) -> Path:
    """The golden file of a seed."""
    return GOLDEN / f"day1-seed{seed}.json"


def reference(seed: int) -> dict[str, Any]:
    """Day 1 in process: hashes, events, render requests and prompt hashes."""
    from posts.prompt import build_prompt
    from posts.quota import apply_rate_limit
    from sim.impact import book_of
    from sim.local import LocalRun
    from sim.world import load_world

    index = load_world("town")
    run = LocalRun(index, run_id_for(seed), seed)
    for _ in range(TICKS):
        run.step()
    _, requests = book_of(index, run.events)
    quota: dict[bytes, bytes] = {}
    rendered = []
    for req in requests:
        limited, reason = apply_rate_limit(index, req, quota)
        row: dict[str, Any] = {
            "request_id": req.request_id,
            "channel": req.channel,
            "author": req.author,
            "score": req.score,
        }
        if limited is None:
            row["rate_limited"] = reason
        else:
            prompt = build_prompt(index, limited, index.catalog.templates[limited.template])
            row["author"] = limited.author
            row["prompt_sha256"] = hashlib.sha256(prompt.text.encode()).hexdigest()
        rendered.append(row)
    return {
        "seed": seed,
        "run_id": run_id_for(seed),
        "hashes": run.hashes,
        "event_ids": [e.event_id for e in run.events],
        "events": [e.model_dump(mode="json") for e in run.events],
        "render_requests": rendered,
    }


def play_posts(seed: int) -> list[dict[str, Any]]:
    """Play Day 1 of a seed through every real service and read its posts back."""
    import os
    import subprocess
    import sys
    import tempfile

    from worldfeed.settings import ROOT

    with tempfile.TemporaryDirectory(prefix="wf-golden-") as tmp:
        env = dict(os.environ)
        env["WORLDFEED_CLICKHOUSE_DSN"] = f"chdb://{tmp}/chdb"
        # topics and consumer groups of their own: a broker kept from an earlier recording
        # still holds the runs, ticks and posts of that one
        tag = os.urandom(4).hex()
        env["WORLDFEED_TOPIC_PREFIX"] = f"golden{seed}-{tag}."
        env["WORLDFEED_APP_ID"] = f"worldfeed-golden{seed}-{tag}"
        env["WORLDFEED_STATE_DIR"] = f"{tmp}/faust"
        exe = str(Path(sys.executable).parent / "worldfeed")
        up = subprocess.Popen(
            [exe, "up", "--days", "1", "--seed", str(seed), "--run-id", run_id_for(seed),
             "--exit-when-done"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            if up.wait() != 0:
                raise RuntimeError(f"worldfeed up exited {up.returncode}")
        finally:
            if up.poll() is None:  # interrupted: up stops what it started on SIGTERM
                up.terminate()
                up.wait(120)
        import clickhouse_connect

        client = clickhouse_connect.get_client(interface="chdb", path=f"{tmp}/chdb")
        rows = client.query(
            "SELECT request_id, channel, author, source, title, body FROM worldfeed.posts FINAL "
            "WHERE run_id = {r:String} ORDER BY request_id",
            parameters={"r": run_id_for(seed)},
        ).named_results()
        return [dict(r) for r in rows]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    """Write the golden files (SIGTERM stops a recording like Ctrl-C: every process it
    started is stopped)."""
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", action="store_true", help="also play each seed for real")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    args = parser.parse_args()
    for seed in (int(s) for s in args.seeds.split(",")):
        path = path_for(seed)
        old = json.loads(path.read_text()) if path.exists() else {}
        data = reference(seed)
        data["posts"] = play_posts(seed) if args.posts else old.get("posts", [])
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(path, len(data["events"]), "events", len(data["posts"]), "posts")


if __name__ == "__main__":
    main()
