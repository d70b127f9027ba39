"""One run per file: a run holds a lease on the file's ledger record while it loads; another
run of the same file refuses while the holder may be alive, and takes over only once it is
provably dead (lease expired, or its process on this host gone). On moto; the two-run test
holds the first run at a point it cannot pass until the test lets it, so no timing decides."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest import load as load_module
from dynamo_ingest.control.ledger import (
    Lease,
    Ledger,
    LedgerStatus,
    LoadInProgressError,
    SourceObject,
)
from dynamo_ingest.control.storage import file_md5
from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE, JobArguments
from dynamo_ingest.core.errors import LedgerConflictError
from dynamo_ingest.core.report import RunReport
from dynamo_ingest.job import run
from dynamo_ingest.spark.runtime import Runtime

from tests.glue_jobs.conftest import TABLE, create_table, scan_table

SOURCE = SourceObject("landing", "incoming/orders.csv", "etag-1")
FAR = 3600.0  # a lease far from expiring: only its holder's death can free it


@pytest.fixture
def ledger(aws: str) -> Ledger:
    table = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    table.ensure_table()
    return table


def lease(run_id: str, *, host: str, pid: int, expires_in: float) -> Lease:
    now = time.time()
    return Lease(run_id, host, pid, now + expires_in, now - 3)


def dead_pid() -> int:
    """The pid of a process of this host that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_lease_on_another_host_refuses_the_second_run(ledger: Ledger) -> None:
    ledger.job_started(SOURCE, "local-abc", {}, lease("local-abc", host="h", pid=123,
                                                      expires_in=FAR))

    with pytest.raises(LoadInProgressError) as refused:
        ledger.job_started(SOURCE, "local-def", {}, Lease.for_this_process("local-def"))

    message = str(refused.value)
    assert message.startswith("s3://landing/incoming/orders.csv is being loaded by run "
                              "local-abc (pid 123 on host h, last heartbeat 3 s ago)")
    assert "wait for it to finish or stop it" in message
    record = ledger.get(SOURCE)
    assert record is not None
    assert (record.job_run_id, record.attempts) == ("local-abc", 1)


def test_a_live_process_of_this_host_keeps_its_lease(ledger: Ledger) -> None:
    here = socket.gethostname()
    ledger.job_started(SOURCE, "local-abc", {}, lease("local-abc", host=here,
                                                      pid=os.getpid(), expires_in=FAR))
    with pytest.raises(LoadInProgressError, match="local-abc"):
        ledger.job_started(SOURCE, "local-def", {}, Lease.for_this_process("local-def"))


@pytest.mark.parametrize("holder", ["expired elsewhere", "dead process here"])
def test_a_provably_dead_holder_is_taken_over_at_once(ledger: Ledger, holder: str) -> None:
    planted = (lease("local-abc", host="h", pid=123, expires_in=-1)
               if holder == "expired elsewhere" else
               lease("local-abc", host=socket.gethostname(), pid=dead_pid(), expires_in=FAR))
    ledger.job_started(SOURCE, "local-abc", {}, planted)

    taken = ledger.job_started(SOURCE, "local-def", {"--source_path": SOURCE.uri},
                               Lease.for_this_process("local-def"))

    assert taken.lease is not None
    assert taken.lease.run_id == "local-def"
    assert (taken.job_run_id, taken.attempts) == ("local-def", 2)
    assert taken.arguments == {"--source_path": SOURCE.uri}


def test_a_run_that_lost_its_lease_cannot_renew_it(ledger: Ledger) -> None:
    ledger.job_started(SOURCE, "local-abc", {}, lease("local-abc", host="h", pid=1,
                                                      expires_in=-1))
    ledger.job_started(SOURCE, "local-def", {}, Lease.for_this_process("local-def"))
    with pytest.raises(LedgerConflictError, match="run local-abc to hold the lease"):
        ledger.renew_lease(SOURCE, "local-abc", Lease.for_this_process("local-abc"))


def test_finishing_releases_the_lease(ledger: Ledger) -> None:
    ledger.job_started(SOURCE, "local-abc", {}, lease("local-abc", host="h", pid=1,
                                                      expires_in=FAR))
    reported = ledger.record_report(SOURCE, "local-abc", {"status": "SUCCEEDED"})
    assert reported.lease is None
    # The next run of the file (a re-run) starts at once.
    again = ledger.job_started(SOURCE, "local-def", {}, Lease.for_this_process("local-def"))
    assert again.lease is not None
    assert again.lease.run_id == "local-def"


def test_the_callbacks_retry_takes_over_a_glue_run_that_died_holding_its_lease(
        ledger: Ledger) -> None:
    # A Glue run killed (TIMEOUT) could not release its lease, on a host we cannot check.
    ledger.receive(SOURCE)
    ledger.mark_started(SOURCE, "jr_1", {"--source_path": SOURCE.uri})
    ledger.job_started(SOURCE, "jr_1", None, lease("jr_1", host="glue-worker", pid=7,
                                                   expires_in=FAR))
    # Glue's state change proves it over: claiming the retry frees the file for jr_2.
    retrying = ledger.mark_retrying(SOURCE, "jr_1", "run jr_1 TIMEOUT")
    assert retrying.lease is None
    ledger.mark_started(SOURCE, "jr_2", {"--source_path": SOURCE.uri})
    resumed = ledger.job_started(SOURCE, "jr_2", None, Lease.for_this_process("jr_2"))
    assert (resumed.status, resumed.attempts) == (LedgerStatus.STARTED, 2)


# -- two real runs of one file -------------------------------------------------------------


@pytest.fixture
def held_first_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Makes the run in the thread named ``first`` wait, after it took the lease, until the
    yielded event is set (the test sets it; teardown sets it too, so the thread ends)."""
    release = threading.Event()
    reached = threading.Event()
    original = load_module.describe_key_schema

    def describe(client: Any, table: str) -> Any:
        if threading.current_thread().name == "first":
            reached.set()
            release.wait()
        return original(client, table)

    monkeypatch.setattr(load_module, "describe_key_schema", describe)
    release.reached = reached  # type: ignore[attr-defined]
    yield release
    release.set()


@pytest.mark.spark
def test_a_second_run_of_a_file_being_loaded_refuses_and_the_first_one_completes(
        aws: str, spark: Any, tmp_path: Path, held_first_run: threading.Event) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "in.csv"
    source.write_text("id,n\n" + "".join(f"k{i},{i}\n" for i in range(300)), encoding="utf-8")
    args = JobArguments(source_path=str(source), target_table=TABLE, partitions=2)
    reports: dict[str, RunReport] = {}

    def first() -> None:
        reports["first"] = run(args, Runtime(spark=spark))

    thread = threading.Thread(target=first, name="first")
    thread.start()
    assert held_first_run.reached.wait(120), "the first run never got to its table"  # type: ignore[attr-defined]
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    source_object = SourceObject("", str(source), file_md5(source))
    holder = ledger.get(source_object)
    assert holder is not None
    assert holder.lease is not None

    second = run(args, Runtime(spark=spark))

    assert second.status == "FAILED"
    assert second.error is not None
    assert second.error.startswith(
        f"{source} is being loaded by run {holder.lease.run_id} (pid ")
    assert second.counts.rows_read == 0
    record = ledger.get(source_object)
    assert record is not None
    assert (record.job_run_id, record.status, record.attempts) == (
        holder.job_run_id, LedgerStatus.STARTED, 1)
    assert record.lease is not None
    assert record.lease.run_id == holder.lease.run_id

    held_first_run.set()
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert reports["first"].status == "SUCCEEDED", reports["first"].error
    assert reports["first"].counts.rows_skipped_by_resume == 0
    assert len(scan_table(TABLE)) == 300
    done = ledger.get(source_object)
    assert done is not None
    assert done.status == LedgerStatus.SUCCEEDED
    assert done.lease is None


@pytest.mark.spark
def test_the_heartbeat_renews_the_lease_of_a_run_in_progress(
        aws: str, spark: Any, tmp_path: Path, held_first_run: threading.Event) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "in.csv"
    source.write_text("id,n\nk1,1\n", encoding="utf-8")
    args = JobArguments(source_path=str(source), target_table=TABLE, partitions=1)
    thread = threading.Thread(target=run, args=(args, Runtime(spark=spark)),
                              name="first")
    thread.start()
    assert held_first_run.reached.wait(120)  # type: ignore[attr-defined]
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    source_object = SourceObject("", str(source), file_md5(source))
    taken = ledger.get(source_object)
    assert taken is not None
    assert taken.lease is not None
    # Polled with a generous bound: renewals come every few seconds on any machine.
    deadline = time.monotonic() + 120
    renewed = taken.lease
    while renewed.renewed_at == taken.lease.renewed_at and time.monotonic() < deadline:
        time.sleep(0.2)
        current = ledger.get(source_object)
        assert current is not None
        assert current.lease is not None
        renewed = current.lease
    assert renewed.renewed_at > taken.lease.renewed_at
    assert renewed.expires_at > taken.lease.expires_at
    held_first_run.set()
    thread.join(timeout=300)
    assert not thread.is_alive()
