"""Nodes spawned by the launcher exit when the launcher dies (no orphaned servers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

SCRIPT = textwrap.dedent("""
    import sys, time
    from statledger.nodes.launcher import Cluster
    c = Cluster(sys.argv[1], n_compute=1, queriers=["querier"], startup_timeout=60)
    c.start(only=["ledger"])
    print(c.url("ledger"), flush=True)
    time.sleep(600)
""")


def _ledger_up(url: str) -> bool:
    try:
        return httpx.get(url + "/v1/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def test_nodes_exit_when_the_launcher_is_killed(tmp_path: Path) -> None:
    launcher = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", SCRIPT, str(tmp_path / "c")], stdout=subprocess.PIPE,
        text=True)
    try:
        url = launcher.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://"), url
        assert _ledger_up(url)
        os.kill(launcher.pid, signal.SIGKILL)  # no atexit, no cleanup
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _ledger_up(url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _ledger_up(url), "the ledger outlived its launcher"
    finally:
        if launcher.poll() is None:
            launcher.kill()


def test_nodes_started_by_hand_ignore_a_missing_parent_variable(tmp_path: Path) -> None:
    import threading

    from statledger.nodes.serve import PARENT_ENV, _exit_with_parent

    def watchers() -> int:
        return sum(t.name == "statledger-parent-watch" for t in threading.enumerate())

    os.environ.pop(PARENT_ENV, None)
    _exit_with_parent()  # no variable: no watchdog
    assert watchers() == 0
    os.environ[PARENT_ENV] = "not-a-pid"
    try:
        _exit_with_parent()  # malformed: ignored
        assert watchers() == 0
        os.environ[PARENT_ENV] = str(os.getppid())  # our real parent: a watchdog runs
        _exit_with_parent()
        assert watchers() == 1
    finally:
        os.environ.pop(PARENT_ENV, None)
