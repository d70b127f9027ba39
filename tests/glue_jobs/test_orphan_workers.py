"""Every process of a local-engine load dies with the process that started it, SIGKILL
included: no orphaned worker goes on writing while the next run of the file resumes."""

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
from dynamo_ingest.engine.local import worker_count

from local_aws.dynamodb_double import DynamoDBDouble, FaultPlan
from tests.glue_jobs.conftest import TABLE, create_table
from tests.glue_jobs.test_resume import wait_until_answered

CLI = Path(sys.executable).parent / "dynamo-ingest"
ROWS = 20_000
# Generous bounds (both cores may be busy): polls of 0.05 s.
START_POLLS = 6000
GONE_POLLS = 2400
QUIET_POLLS = 40


def orders(path: Path) -> Path:
    path.write_text("id,n\n" + "".join(f"k{i},{i}\n" for i in range(ROWS)), encoding="utf-8")
    return path


def descendants(process: psutil.Process, seen: dict[int, psutil.Process]) -> None:
    """Learn the processes ``process`` started so far (kept, so they are known after it dies)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in process.children(recursive=True):
            seen.setdefault(child.pid, child)


def is_worker(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.NoSuchProcess):
        return "--multiprocessing-fork" in process.cmdline()
    return False


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.skipif(worker_count() < 2, reason="the in-process engine uses worker processes "
                                               "only with 2 cores or more")
def test_a_sigkilled_run_leaves_no_worker_writing(aws: str, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = orders(tmp_path / "orders.csv")
    argv = [str(CLI), "run", "--source_path", str(source), "--target_table", TABLE,
            "--engine", "local", "--partitions", "2", "--checkpoint_every", "1",
            "--max_retry_seconds", "600", "--quiet"]
    seen: dict[int, psutil.Process] = {}
    with DynamoDBDouble(aws, FaultPlan(tables=(TABLE,), latency_s=0.05)) as double:
        env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": double.url}
        log = (tmp_path / "run.log").open("wb")
        run = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
        parent = psutil.Process(run.pid)
        try:
            for _ in range(START_POLLS):
                assert run.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
                descendants(parent, seen)
                workers = [p for p in seen.values() if is_worker(p)]
                if len(workers) >= 2 and double.stats.items_accepted > 0:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the run's workers never started writing")
            descendants(parent, seen)
            # From now on every write is throttled: a worker left alive keeps retrying (and
            # sending requests) for its 600-second retry budget instead of finishing.
            double.set_plan(FaultPlan(tables=(TABLE,), fail_after_requests=0))
            os.kill(run.pid, signal.SIGKILL)  # the parent only, as a lost driver
            run.wait()
            processes = list(seen.values())
            for _ in range(GONE_POLLS):
                if not alive(processes):
                    break
                time.sleep(0.05)
            left = alive(processes)
            assert not left, f"processes of the killed run still alive: {left}"
            written = wait_until_answered(double)
            requests = double.stats.write_requests
            for _ in range(QUIET_POLLS):
                time.sleep(0.05)
                assert double.stats.write_requests == requests, "a write after the kill"
            assert double.stats.items_accepted == written
        finally:
            log.close()
            for process in alive(list(seen.values())):
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            if run.poll() is None:
                run.kill()
                run.wait()
