"""`dynamo-ingest flow` SIGKILLed midway, while the loader Lambda loads a file, and started
again: every file loaded exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from dynamo_ingest.control.ledger import Ledger, LedgerRecord, LedgerStatus, SourceObject
from dynamo_ingest.control.load_request import LAMBDA_RUN_PREFIX

from dynamo_ingest_cli.local_flow import LOCAL_BUCKET
from local_aws.resources import ensure_resources
from tests.stream.support import KEY, applied_in_order, write_files

TABLE = "kill_orders"
LEDGER = "kill-ledger"
FILES = 10
KILL_AFTER = 3  # files finished when the flow is killed
# Rows per file: enough that a load in the loader Lambda lasts long enough to be seen going.
ROWS = 4000


def _flow_args(paths: list[Path]) -> list[str]:
    return [sys.executable, "-m", "dynamo_ingest_cli.main", "flow", *map(str, paths),
            "--target_table", TABLE, "--partition_key", KEY, "--ledger_table", LEDGER,
            "--engine", "local", "--max_concurrent_runs", "2", "--seed", "3"]


def _one_core() -> Callable[[], None]:
    """For the child: one core, so the in-process engine loads these small files in threads."""
    cpu = min(os.sched_getaffinity(0))
    return lambda: os.sched_setaffinity(0, {cpu})


def _loading(ledger: Ledger, sources: list[SourceObject]) -> LedgerRecord | None:
    """The file a loader invocation is loading now (its run holds the file's lease)."""
    for source in sources:
        record = ledger.get(source)
        if (record is not None and record.status == LedgerStatus.STARTED
                and record.lease is not None
                and record.lease.run_id.startswith(LAMBDA_RUN_PREFIX)):
            return record
    return None


def _finished(ledger: Ledger, sources: list[SourceObject]) -> dict[str, str]:
    done = {}
    for source in sources:
        record = ledger.get(source)
        if record is not None and record.status == LedgerStatus.SUCCEEDED:
            done[source.uri] = record.finished_at or ""
    return done


def test_a_killed_flow_started_again_loads_every_file_exactly_once(aws: str,
                                                                   tmp_path: Path) -> None:
    # the user's table: on an endpoint the user set, flow loads into a table it finds
    ensure_resources(bucket=LOCAL_BUCKET, database="kill", target_table=TABLE,
                     partition_key=(KEY, "S"), sort_key=None, ledger_table=LEDGER)
    paths = write_files(tmp_path, FILES, rows=ROWS, stride=ROWS // 2)
    sources = [SourceObject(LOCAL_BUCKET, f"incoming/{p.name}", _md5(p)) for p in paths]
    ledger = Ledger(boto3.client("dynamodb"), LEDGER)
    log = (tmp_path / "first-flow.log").open("wb")
    first = subprocess.Popen(_flow_args(paths), preexec_fn=_one_core(), stdout=log,
                             stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600  # generous: the machine may be busy
        loading = None
        while first.poll() is None and time.monotonic() < deadline:
            if _table_exists(ledger) and len(_finished(ledger, sources)) >= KILL_AFTER:
                loading = _loading(ledger, sources)
                if loading is not None:
                    break
            time.sleep(0.02)
        assert first.poll() is None, (tmp_path / "first-flow.log").read_text()[-2000:]
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
        log.close()
    before = _finished(ledger, sources)
    assert KILL_AFTER <= len(before) < FILES
    second = subprocess.run(_flow_args(paths), capture_output=True, timeout=900,
                            preexec_fn=_one_core())
    output = second.stdout.decode() + second.stderr.decode()
    assert second.returncode == 0, output[-3000:]
    assert loading is not None
    assert "carrying on an earlier flow" in output, output[-3000:]
    after = _finished(ledger, sources)
    assert set(after) == {s.uri for s in sources}
    # files finished before the kill were not loaded again
    assert {uri: after[uri] for uri in before} == before
    records = [ledger.get(s) for s in sources]
    assert all(r is not None and r.file_location == f"s3://{LOCAL_BUCKET}/complete/"
               f"{Path(r.source.key).name}" for r in records)
    runs = ledger.recent(limit=1000)
    assert sorted(r.source.uri for r in runs) == sorted(s.uri for s in sources)  # once each
    # Every file (small) loaded in the loader Lambda; the run killed midway was delivered
    # again (as Lambda retries it) and finished the file from its checkpoints.
    assert all(r is not None and all(run.startswith(LAMBDA_RUN_PREFIX) for run in r.job_run_ids)
               for r in records)
    resumed = ledger.get(loading.source)
    assert resumed is not None
    assert resumed.status == LedgerStatus.SUCCEEDED
    assert resumed.job_run_id == loading.job_run_id
    s3 = boto3.client("s3")
    assert s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix="incoming/").get("KeyCount") == 0
    assert _table() == applied_in_order(paths)



def _md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _table_exists(ledger: Ledger) -> bool:
    try:
        boto3.client("dynamodb").describe_table(TableName=ledger.table_name)
    except boto3.client("dynamodb").exceptions.ResourceNotFoundException:
        return False
    return True


def _table() -> dict[str, dict[str, str]]:
    items: dict[str, dict[str, str]] = {}
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=TABLE):
        for item in page["Items"]:
            plain = {k: next(iter(v.values())) for k, v in item.items()}
            items[plain[KEY]] = plain
    return items
