"""The package layers hold: import-linter's contracts (``.importlinter``) on the real code.

The domain (sim, posts, llm, catalog, topics, worldfeed) imports no Kafka, faust,
ClickHouse or web code; packages import only downward; no package's modules import
each other in a cycle. ``make lint`` runs the same check.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from worldfeed.settings import ROOT


def test_every_import_contract_is_kept() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert "0 broken" in done.stdout
