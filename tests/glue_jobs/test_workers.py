"""The in-process engine's worker processes: how many a load gets, results in job order, a
job's exception raised in the parent, a dead worker named, and no POSIX semaphore needed (AWS
Lambda has none)."""

from __future__ import annotations

import multiprocessing.synchronize
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from dynamo_ingest.engine.local import ROWS_PER_WORKER, LocalEngine, worker_count
from dynamo_ingest.engine.workers import WorkerDiedError, run_in_processes


def square(value: int) -> int:
    return value * value


def fail_on_three(value: int) -> int:
    if value == 3:
        raise ValueError(f"job {value} is bad")
    return value


def die(value: int) -> int:
    os._exit(9)


def test_a_small_load_gets_one_worker_a_big_one_one_per_core() -> None:
    cores = worker_count()
    assert worker_count(1) == 1
    assert worker_count(2 * ROWS_PER_WORKER - 1) == 1
    assert worker_count(2 * ROWS_PER_WORKER) == min(2, cores)
    assert worker_count(1000 * ROWS_PER_WORKER) == cores


def test_the_engine_runs_as_many_partitions_at_once_as_its_load_gets_workers() -> None:
    """The plan splits the write budget and sets the checkpoint interval by this number, so
    it must be the workers the load really runs."""
    assert LocalEngine("run-small", predicted_rows=10_000).parallelism() == 1
    assert LocalEngine("run-big", predicted_rows=10**7).parallelism() == worker_count()
    assert LocalEngine("run-unknown").parallelism() == worker_count()


def test_results_come_back_in_job_order_from_several_workers() -> None:
    assert run_in_processes(square, [(n,) for n in range(7)], workers=2) == [
        n * n for n in range(7)]


def test_a_job_that_raises_raises_in_the_parent() -> None:
    with pytest.raises(ValueError, match="job 3 is bad"):
        run_in_processes(fail_on_three, [(n,) for n in range(5)], workers=2)


def test_a_worker_that_dies_is_named() -> None:
    with pytest.raises(WorkerDiedError, match="exit code"):
        run_in_processes(die, [(1,)], workers=1)


def test_no_semaphore_is_needed_as_in_aws_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda has no /dev/shm, so creating a semaphore fails with ENOSYS: the executor fails
    there, the pipes do not (the spawned children do not inherit the patch, nor need it)."""

    def no_semaphores(*args: Any, **kwargs: Any) -> None:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(multiprocessing.synchronize.SemLock, "__init__", no_semaphores)
    spawn = multiprocessing.get_context("spawn")
    with (pytest.raises(OSError, match="Function not implemented"),
          ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool):
        pool.submit(square, 2).result()
    assert run_in_processes(square, [(2,), (3,)], workers=2) == [4, 9]


MAIN_SCRIPT = '''
import os, sys
# Each run of this module appends its process id: the parent's, and a worker's if it runs it.
with open(sys.argv[1], "a") as marker:
    marker.write(f"{os.getpid()}\\n")

if __name__ == "__main__":
    from dynamo_ingest.engine.workers import run_in_processes
    pids = run_in_processes(os.getpid, [(), (), ()], workers=2)
    assert len(set(pids)) == 2 and os.getpid() not in pids, pids
    assert __file__ and __spec__ is None  # restored after the workers started
'''


def test_workers_do_not_run_the_parent_main_module(tmp_path: Path) -> None:
    """A spawned child runs ``__main__`` again by default: the CLI's imports in every worker
    (0.25 CPU-s each), or a Glue or Lambda entry script. The workers leave it out."""
    script, marker = tmp_path / "entry.py", tmp_path / "runs.txt"
    script.write_text(MAIN_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(marker)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    runs = marker.read_text().split()
    assert len(runs) == 1, f"the main module ran {len(runs)} times (the parent and workers)"


def test_a_function_of_the_main_module_is_refused() -> None:
    main_function = type(square)(square.__code__, {}, "in_main")
    main_function.__module__ = "__main__"
    with pytest.raises(ValueError, match="defined in __main__"):
        run_in_processes(main_function, [(1,)], workers=2)
