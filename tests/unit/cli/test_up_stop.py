"""`worldfeed up` stops what it started even when a second SIGTERM arrives while stopping
(``timeout`` and a parent both forwarding one left a Triton server running)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.up import Supervisor

# a child that, asked to stop, sends its parent another SIGTERM before it exits
ECHOING_CHILD = 'trap "kill -TERM $PPID; sleep 0.5; exit 0" TERM; touch "$0"; sleep 30 & wait'


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_sigterm_while_stopping_still_runs_the_stop_scripts(tmp_path: Path) -> None:
    def terminated(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # as `worldfeed up` handles SIGTERM

    before = signal.signal(signal.SIGTERM, terminated)
    marker = tmp_path / "stopped"
    sup = Supervisor()
    try:
        ready = tmp_path / "ready"
        child = subprocess.Popen(["sh", "-c", ECHOING_CHILD, ready], start_new_session=True)
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:  # its trap is set
            time.sleep(0.01)
        sup.procs.append(("child", child))
        sup.scripts.append(["sh", "-c", f"touch {marker}"])
        sup.stop()
    finally:
        signal.signal(signal.SIGTERM, before)
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert marker.exists(), "the services' stop scripts did not run"
    assert signal.getsignal(signal.SIGTERM) is before
