"""deploy/local/progress.sh: a long install step says what it does, shows progress with the
elapsed time while it runs, keeps a log, and shows the log's tail when it fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

from worldfeed.settings import ROOT

HELPER = ROOT / "deploy" / "local" / "progress.sh"


def run_step(tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    script = (
        f'. "{HELPER}"\n'
        f'long_step "building a thing" "about 3 s" "{tmp_path}/step.log" -- sh -c {command!r}\n'
        'echo "after the step"\n'
    )
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "WORLDFEED_PROGRESS_S": "1"},
        check=False,
    )


def test_a_long_step_shows_progress_and_the_time_it_took(tmp_path: Path) -> None:
    done = run_step(tmp_path, "for i in 1 2 3; do echo compiling part $i; sleep 1; done")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "building a thing (about 3 s) ..."
    ticks = [line for line in lines if line.startswith("  ... ")]
    assert len(ticks) >= 2, done.stdout  # a line a second while it runs
    assert "s elapsed  compiling part" in ticks[0]
    assert any(line.startswith("  done in ") for line in lines)
    assert lines[-1] == "after the step"
    assert (tmp_path / "step.log").read_text().splitlines()[-1] == "compiling part 3"


def test_a_failed_step_stops_the_script_with_the_log_tail(tmp_path: Path) -> None:
    failed = run_step(tmp_path, "echo 'error: no compiler found'; exit 3")
    assert failed.returncode == 3
    assert "FAILED after" in failed.stderr and "error: no compiler found" in failed.stderr
    assert "after the step" not in failed.stdout
