"""CPU-seconds, peak memory and wall time of a command's whole process tree.

The command runs under a tiny reaper (``python -m benchmarks.procmon --rusage-out F -- CMD``)
that makes itself the Linux *child subreaper*: every descendant, even one orphaned because its
parent exited first (the JVM outlives the PySpark driver), is waited for inside the tree, so
the reaper's ``RUSAGE_CHILDREN`` is the exact user + sys CPU of the whole tree. Meanwhile the
benchmark samples the tree with psutil for the per-component split (driver, JVM, Python
workers) and the peak RSS summed over the processes alive at the same moment.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
_PR_SET_CHILD_SUBREAPER = 36
_REAP_POLL_S = 0.02
_STRAGGLER_GRACE_S = 30.0
COMPONENTS = ("driver", "jvm", "python_workers", "other")


class MeasureError(Exception):
    """A measured command could not be run or did not report its resource usage."""


@dataclass
class TreeUsage:
    """What one command's process tree used."""

    returncode: int
    wall_s: float
    cpu_user_s: float
    cpu_sys_s: float
    peak_rss_bytes: int
    cpu_unreaped_s: float = 0.0
    cpu_by_component: dict[str, float] = field(default_factory=dict)
    peak_rss_by_component: dict[str, int] = field(default_factory=dict)
    processes: int = 0
    samples: int = 0

    @property
    def cpu_s(self) -> float:
        """User + sys CPU-seconds of every process of the tree: the kernel's count of every
        reaped process plus the sampled count of the ones it does not account."""
        return self.cpu_user_s + self.cpu_sys_s + self.cpu_unreaped_s

    def to_json(self) -> dict[str, object]:
        """A JSON-able form with the derived total."""
        return {"returncode": self.returncode, "wall_s": round(self.wall_s, 3),
                "cpu_s": round(self.cpu_s, 3), "cpu_user_s": round(self.cpu_user_s, 3),
                "cpu_sys_s": round(self.cpu_sys_s, 3),
                "cpu_unreaped_s": round(self.cpu_unreaped_s, 3),
                "peak_rss_bytes": self.peak_rss_bytes,
                "cpu_by_component": {k: round(v, 3) for k, v in self.cpu_by_component.items()},
                "peak_rss_by_component": self.peak_rss_by_component,
                "processes": self.processes, "samples": self.samples}


def component_of(cmdline: Sequence[str], is_root: bool) -> str:
    """Which part of a Spark job (or a plain script) a process is."""
    if is_root:
        return "driver"
    exe = Path(cmdline[0]).name if cmdline else ""
    if exe == "java":
        return "jvm"
    if any("pyspark.daemon" in part or "pyspark.worker" in part or "pyspark/daemon" in part
           for part in cmdline):
        return "python_workers"
    return "other"


class TreeSampler:
    """Periodic psutil snapshots of the reaper's descendants."""

    def __init__(self, reaper_pid: int) -> None:
        self._reaper = psutil.Process(reaper_pid)
        self._root_pid: int | None = None
        self._kinds: dict[int, tuple[str, str]] = {}  # pid → (process name, component)
        self._unreaped: set[int] = set()
        self._cpu: dict[int, float] = {}
        self.peak_rss = 0
        self.peak_by_component: dict[str, int] = dict.fromkeys(COMPONENTS, 0)
        self.samples = 0

    def _component(self, process: psutil.Process) -> str:
        name = process.name()
        known = self._kinds.get(process.pid)
        if known is not None and known[0] == name:
            return known[1]
        # New, or the same pid after exec (spark-submit's bash becomes the JVM).
        if self._root_pid is None and process.ppid() == self._reaper.pid:
            self._root_pid = process.pid
        kind = component_of(process.cmdline(), process.pid == self._root_pid)
        self._kinds[process.pid] = (name, kind)
        return kind

    def _note_reaping(self, process: psutil.Process, ignoring: dict[int, bool]) -> None:
        # What counts is the parent's disposition when the process exits, so it is read at
        # every sample, not only at first sight: a parent may ignore SIGCHLD only after it
        # started a child (and a child whose parent exits is adopted by the reaper).
        ppid = process.ppid()
        if ppid not in ignoring:
            ignoring[ppid] = _ignores_sigchld(ppid)
        if ignoring[ppid]:
            self._unreaped.add(process.pid)
        else:
            self._unreaped.discard(process.pid)

    def sample(self) -> None:
        try:
            processes = self._reaper.children(recursive=True)
        except psutil.Error:
            return
        total = 0
        by_component = dict.fromkeys(COMPONENTS, 0)
        ignoring: dict[int, bool] = {}  # parent pid → ignores SIGCHLD, read once per sample
        for process in processes:
            try:
                with process.oneshot():
                    kind = self._component(process)
                    self._note_reaping(process, ignoring)
                    times = process.cpu_times()
                    rss = process.memory_info().rss
            except psutil.Error:
                continue  # exited between listing and reading
            self._cpu[process.pid] = times.user + times.system
            total += rss
            by_component[kind] += rss
        self.samples += 1
        self.peak_rss = max(self.peak_rss, total)
        for kind, rss in by_component.items():
            self.peak_by_component[kind] = max(self.peak_by_component[kind], rss)

    def cpu_by_component(self) -> dict[str, float]:
        out = dict.fromkeys(COMPONENTS, 0.0)
        for pid, cpu in self._cpu.items():
            out[self._kinds[pid][1]] += cpu
        return out

    def unreaped_cpu(self, reaped_by_reaper: set[int]) -> float:
        """Sampled CPU of processes the kernel does not account to any parent: children whose
        parent ignored SIGCHLD when last sampled, unless they outlived it and the reaper waited
        for them. Each misses the CPU it used after its last sample."""
        return sum(self._cpu.get(pid, 0.0) for pid in self._unreaped - reaped_by_reaper)

    @property
    def processes(self) -> int:
        return len(self._kinds)


def _ignores_sigchld(pid: int) -> bool:
    """True when ``pid`` ignores SIGCHLD: its children are reaped by the kernel, and their CPU
    is then added to no one's ``RUSAGE_CHILDREN`` (PySpark's daemon does this to its workers)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGCHLD - 1) & 1)
    return False


def measure(command: Sequence[str], *, env: Mapping[str, str] | None = None,
            log_path: Path | None = None, interval_s: float = 0.2,
            timeout_s: float | None = None, cwd: Path | None = None) -> TreeUsage:
    """Run ``command`` to the end and return what its process tree used.

    ``cpu_by_component`` comes from samples, so it misses each process's last interval: the
    shortfall against the exact total is reported as ``unsampled``.
    """
    handle, name = tempfile.mkstemp(prefix="procmon-", suffix=".json")
    os.close(handle)
    rusage_path = Path(name)
    rusage_path.unlink()  # the reaper writes it when the tree is done
    reaper_cmd = [sys.executable, "-m", "benchmarks.procmon", "--rusage-out", str(rusage_path),
                  "--", *command]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        reaper = subprocess.Popen(reaper_cmd, env=dict(env) if env is not None else None,
                                  stdout=log, stderr=subprocess.STDOUT,
                                  cwd=cwd or REPO_ROOT)
        sampler = TreeSampler(reaper.pid)
        started = time.monotonic()
        try:
            while reaper.poll() is None:
                sampler.sample()
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    reaper.send_signal(signal.SIGTERM)  # the reaper stops its tree
                    reaper.wait(timeout=60)
                    raise MeasureError(f"{' '.join(command)} ran over {timeout_s:.0f} s: stopped")
                time.sleep(interval_s)
        finally:
            if reaper.poll() is None:
                reaper.send_signal(signal.SIGTERM)
                reaper.wait(timeout=60)
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]
    if not rusage_path.exists():
        raise MeasureError(f"the reaper of {' '.join(command)} exited with {reaper.returncode} "
                           f"without reporting its usage (see {log_path})")
    usage = json.loads(rusage_path.read_text())
    rusage_path.unlink()
    # Forked workers of a parent that ignores SIGCHLD are missing from the kernel's total:
    # their sampled CPU is added (it misses at most their last interval).
    unreaped = sampler.unreaped_cpu(set(usage["reaped_pids"]))
    total = usage["user_s"] + usage["sys_s"] + unreaped
    by_component = sampler.cpu_by_component()
    by_component["unsampled"] = max(0.0, total - sum(by_component.values()))
    return TreeUsage(returncode=usage["returncode"], wall_s=usage["wall_s"],
                     cpu_user_s=usage["user_s"], cpu_sys_s=usage["sys_s"],
                     cpu_unreaped_s=unreaped,
                     peak_rss_bytes=sampler.peak_rss, cpu_by_component=by_component,
                     peak_rss_by_component=sampler.peak_by_component,
                     processes=sampler.processes, samples=sampler.samples)


def _become_subreaper() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _signal_tree(signum: int) -> None:
    for process in _descendants():
        with contextlib.suppress(psutil.Error):
            process.send_signal(signum)


def reap(command: Sequence[str]) -> dict[str, object]:
    """Run ``command``, wait for every descendant, return the tree's exact CPU and exit code."""
    _become_subreaper()
    stopping = {"asked": False}

    def on_term(signum: int, frame: object) -> None:
        stopping["asked"] = True
        _signal_tree(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    root = os.posix_spawnp(command[0], list(command), os.environ)
    returncode: int | None = None
    wall = 0.0
    root_done_at = 0.0
    escalated = False
    reaped: list[int] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # nothing left in the tree
        if pid == 0:
            if returncode is not None and not escalated and (
                    time.monotonic() - root_done_at > _STRAGGLER_GRACE_S):
                _signal_tree(signal.SIGKILL)  # orphans that never exit on their own
                escalated = True
            time.sleep(_REAP_POLL_S)
            continue
        reaped.append(pid)
        if pid == root:
            returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - started
            root_done_at = time.monotonic()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"returncode": returncode if returncode is not None else -1, "wall_s": wall,
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "max_process_rss_kb": usage.ru_maxrss, "stopped": int(stopping["asked"]),
            "reaped_pids": reaped}


def main(argv: Sequence[str] | None = None) -> int:
    """Reaper entry point: ``python -m benchmarks.procmon --rusage-out F -- CMD ...``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.procmon")
    parser.add_argument("--rusage-out", required=True, type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("expected a command after --")
    usage = reap(command)
    args.rusage_out.write_text(json.dumps(usage))
    return 0


if __name__ == "__main__":
    sys.exit(main())
