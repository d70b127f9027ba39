"""The busy-machine runner: burners beside the command, gone afterwards however it ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from benchmarks import busy
from benchmarks.procmon import REPO_ROOT

# The command: writes the burners' pids to argv[1], waits until they have burnt 0.1 CPU-s
# more than when it started (polling, bounded), then exits with argv[2]. A burner is the
# child of the runner whose last argument is the runner's pid: the runner here is pytest
# itself, whose other children (the session's moto server, say) are not burners.
COMMAND = """
import os, sys, time, psutil
runner = os.getppid()
burners = [p for p in psutil.Process(runner).children() if p.cmdline()[-1:] == [str(runner)]]
with open(sys.argv[1], "w") as f:
    f.write(" ".join(str(p.pid) for p in burners))
def burnt():
    return sum(sum(p.cpu_times()[:2]) for p in burners)
# Counted from now: the runner measures the burners from just before it started this command.
start = burnt()
for _ in range(30_000):
    if burnt() - start >= 0.1:
        break
    time.sleep(0.01)
sys.exit(int(sys.argv[2]))
"""
# The command for the kill test: prints the burners' pids, then waits until stdin closes.
SHOW_BURNERS = """
import os, sys, psutil
siblings = psutil.Process(os.getppid()).children()
print("burners", " ".join(str(p.pid) for p in siblings if p.pid != os.getpid()), flush=True)
sys.stdin.read()
"""


def gone(pids: list[int]) -> bool:
    """Polls, bounded by a count, until none of ``pids`` runs (a zombie counts as gone)."""
    for _ in range(3000):
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.01)
    return False


def test_each_run_is_reported_and_one_failed_run_fails_the_whole(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pids = tmp_path / "burners"

    code = busy.main(["--runs", "2", "--burners", "2", "--",
                      sys.executable, "-c", COMMAND, str(pids), "3"])

    out = capsys.readouterr().out
    burners = [int(pid) for pid in pids.read_text().split()]
    assert code == 1
    assert len(burners) == 2
    assert out.count("exit 3 in") == 2
    assert "busy runs: 0 of 2 passed" in out
    assert gone(burners)


def test_the_burners_take_cpu_while_the_command_runs(tmp_path: Path) -> None:
    pids = tmp_path / "burners"

    results = busy.run_busy([sys.executable, "-c", COMMAND, str(pids), "0"], runs=1,
                            burner_count=2)

    assert [r.returncode for r in results] == [0]
    assert results[0].burner_cpu_s >= 0.1
    assert gone([int(pid) for pid in pids.read_text().split()])


def test_a_killed_runner_leaves_no_burner_spinning() -> None:
    runner = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.busy", "--burners", "2", "--", sys.executable, "-c",
         SHOW_BURNERS], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert runner.stdout is not None
    assert runner.stdin is not None
    try:
        line = runner.stdout.readline()
        while not line.startswith("burners"):
            assert line, "the runner ended before its command started"
            line = runner.stdout.readline()
        burners = [int(pid) for pid in line.split()[1:]]
        assert len(burners) == 2
        os.kill(runner.pid, signal.SIGKILL)  # no cleanup code runs: the kernel must stop them
        runner.wait()
        assert gone(burners)
    finally:
        runner.stdin.close()
        if runner.poll() is None:
            runner.kill()
            runner.wait()


# The command for the terminate test: starts a child of its own (as make starts pytest) that
# waits for a signal, prints the burners' and the child's pids, and waits for the child.
WITH_A_CHILD = """
import os, subprocess, sys, psutil
siblings = [p.pid for p in psutil.Process(os.getppid()).children() if p.pid != os.getpid()]
child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
print("pids", " ".join(map(str, siblings)), child.pid, flush=True)
child.wait()
"""


def test_a_terminated_runner_stops_its_command_its_children_and_the_burners() -> None:
    runner = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.busy", "--burners", "1", "--", sys.executable, "-c",
         WITH_A_CHILD], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert runner.stdout is not None
    started: list[int] = []
    try:
        line = runner.stdout.readline()
        while not line.startswith("pids"):
            assert line, "the runner ended before its command started"
            line = runner.stdout.readline()
        started = [int(pid) for pid in line.split()[1:]]
        started += [c.pid for c in psutil.Process(runner.pid).children() if c.pid not in started]
        runner.send_signal(signal.SIGTERM)
        code = runner.wait(timeout=120)
        # Up to the runner's last line only: a child left running would keep the pipe open.
        last = runner.stdout.readline()
        while last and not last.startswith("busy runs:"):
            last = runner.stdout.readline()
        assert code == 130
        assert "interrupted" in last
        assert len(started) == 3  # a burner, the command and its child
        assert gone(started)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        for pid in started:  # whatever the runner failed to stop
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
