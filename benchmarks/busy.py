"""Run a command (the test suite) while every core is kept busy by other processes.

``python -m benchmarks.busy --runs 3 -- make test`` starts one CPU burner per core at the
tests' own priority, runs the command the given number of times in a row, prints each run's
exit code, wall time and the CPU the burners took meanwhile, and stops the burners however it
ends. The burners ask the kernel to kill them when this process dies, so not even a SIGKILL of
this one leaves them spinning. Exit code 0 only when every run passed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import psutil

# A burner spins on the CPU until its parent dies (PR_SET_PDEATHSIG = 1; the getppid check
# covers a parent that died before the request was made) and leaves Ctrl-C to the runner.
_BURNER = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
signal.signal(signal.SIGINT, signal.SIG_IGN)
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)
while True:
    pass
"""

# How long an interrupted command may take to stop its own children before it is killed.
_STOP_GRACE_S = 60.0


class BusyError(Exception):
    """The burners could not be started or the command could not be run."""


@dataclass(frozen=True)
class BusyRun:
    """One run of the command beside the burners."""

    returncode: int
    wall_s: float
    burner_cpu_s: float

    @property
    def burner_cores(self) -> float:
        """How many cores' worth of CPU the burners took on average during the run."""
        return self.burner_cpu_s / self.wall_s if self.wall_s > 0 else 0.0


def _cpu_s(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


@contextmanager
def burners(count: int) -> Iterator[list[psutil.Process]]:
    """``count`` CPU burners, stopped (by pid) when the block ends, however it ends."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        try:
            for _ in range(count):
                started.append(subprocess.Popen(
                    [sys.executable, "-c", _BURNER, str(os.getpid())], stdin=subprocess.DEVNULL))
        except OSError as err:
            raise BusyError(f"could not start {count} CPU burners: {err}") from err
        yield [psutil.Process(p.pid) for p in started]
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
        for process in started:
            process.wait()


def _run_to_the_end(command: Sequence[str]) -> int:
    """Run ``command`` in its own process group; if this runner is interrupted, the whole
    group is interrupted too (pytest then stops its servers), and killed if it lingers."""
    try:
        process = subprocess.Popen(list(command), start_new_session=True)
    except OSError as err:
        raise BusyError(f"could not run {command[0]!r}: {err}") from err
    try:
        return process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def run_busy(command: Sequence[str], runs: int, burner_count: int) -> list[BusyRun]:
    """Run ``command`` ``runs`` times in a row beside ``burner_count`` burners."""
    results: list[BusyRun] = []
    with burners(burner_count) as spinning:
        for number in range(1, runs + 1):
            print(f"busy run {number}/{runs}: {burner_count} burners, {' '.join(command)}",
                  flush=True)
            cpu_before, started = _cpu_s(spinning), time.monotonic()
            returncode = _run_to_the_end(command)
            run = BusyRun(returncode, time.monotonic() - started, _cpu_s(spinning) - cpu_before)
            results.append(run)
            print(f"busy run {number}/{runs}: exit {run.returncode} in {run.wall_s:.0f} s, "
                  f"burners took {run.burner_cores:.2f} of {os.cpu_count()} cores", flush=True)
    return results


def _stop_on_term(signum: int, frame: FrameType | None) -> None:
    # SIGTERM ends like Ctrl-C: the burners' context manager stops them.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.busy [--runs N] [--burners N] -- COMMAND ...``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.busy", description=__doc__)
    parser.add_argument("--runs", type=int, default=1, help="runs in a row (default 1)")
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 1,
                        help="CPU burners (default: one per core)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("expected a command after --, e.g. -- make test")
    if args.runs < 1 or args.burners < 0:
        parser.error(f"expected --runs >= 1 and --burners >= 0, found {args.runs} and "
                     f"{args.burners}")
    signal.signal(signal.SIGTERM, _stop_on_term)
    try:
        results = run_busy(command, args.runs, args.burners)
    except KeyboardInterrupt:
        print("busy runs: interrupted; the command and the burners are stopped", flush=True)
        return 130
    passed = sum(r.returncode == 0 for r in results)
    print(f"busy runs: {passed} of {len(results)} passed; wall "
          f"{', '.join(f'{r.wall_s:.0f}' for r in results)} s", flush=True)
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
