"""Day 1 of two seeds equals the golden outputs recorded from main before the refactor.

Hashes, event ids, whole events, render requests and the prompt of every request are
recomputed in process and compared exactly (``tests/golden/record.py`` writes them; a
change that alters them regenerates them and says why in its commit).
"""

from __future__ import annotations

import json

import pytest

from tests.golden.record import SEEDS, path_for, reference


@pytest.mark.parametrize("seed", SEEDS)
def test_day1_equals_the_golden_run(seed: int) -> None:
    golden = json.loads(path_for(seed).read_text())
    now = reference(seed)
    assert now["hashes"] == golden["hashes"]
    assert now["event_ids"] == golden["event_ids"]
    assert now["events"] == golden["events"]
    assert now["render_requests"] == golden["render_requests"]
