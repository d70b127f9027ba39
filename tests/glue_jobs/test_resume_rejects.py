"""A file with a rejected row, stopped twice after its checkpoints hold that row, then resumed:
the finished run still counts the row as rejected, and the ledger's final state, the run
report and the rejects file agree (SUCCEEDED_WITH_REJECTS, rows_rejected 1, the rejects
location set)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from dynamo_ingest.control.ledger import Ledger, LedgerStatus, SourceObject
from dynamo_ingest.control.storage import file_md5
from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE, JobArguments
from dynamo_ingest.core.report import RunReport
from dynamo_ingest.engine.local import key_hasher
from dynamo_ingest.load import run_load

from local_aws.dynamodb_double import FaultPlan
from tests.glue_jobs.conftest import TABLE, create_table, dynamodb_double, read_rejects

ROWS = 1500
BAD_RECORD = 3  # an empty key: rejected


def file_with_an_early_reject(path: Path) -> Path:
    """``ROWS`` records, record 3 with an empty key; every other key hashes after it, so the
    rejected row is the first of the (single) partition's write order and the first
    checkpoints cover it, whatever the stops' exact points."""
    hashed = key_hasher([((0,), "S")])
    # The splitter may hand an empty field over as "" or as None: sort after both.
    bad = max(hashed([""]), hashed([None]))
    keys = (f"k{i}" for i in range(1_000_000))
    good = [key for key in keys if hashed([key]) > bad]
    lines = ["id,n"]
    for record_no in range(1, ROWS + 1):
        key = "" if record_no == BAD_RECORD else good[record_no]
        lines.append(f"{key},{record_no}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def loader(engine: str, request: pytest.FixtureRequest) -> Callable[[Path], RunReport]:
    """One partition (on the in-process engine, in this thread); a checkpoint after every
    acknowledged batch."""
    def arguments(source: Path) -> JobArguments:
        return JobArguments(source_path=str(source), target_table=TABLE,
                            engine="local" if engine == "local" else "spark",
                            partitions=1, checkpoint_every=1, max_retry_seconds=1)

    if engine == "local":
        return lambda source: run_load(arguments(source))
    from dynamo_ingest.job import run
    from dynamo_ingest.spark.runtime import Runtime

    spark = request.getfixturevalue("spark")
    return lambda source: run(arguments(source), Runtime(spark=spark))


@pytest.mark.parametrize(("engine", "stops"), [
    ("local", (2, 3)), ("local", (3, 1)),
    pytest.param("spark", (2, 3), marks=pytest.mark.spark)])
def test_a_reject_before_two_stops_is_still_counted_when_the_load_finishes(
        aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
        engine: str, stops: tuple[int, int]) -> None:
    load = loader(engine, request)
    create_table(TABLE, [("id", "S", "HASH")])
    source = file_with_an_early_reject(tmp_path / "early_reject.csv")
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    key = SourceObject("", str(source), file_md5(source))

    # Each attempt is stopped by a throttling storm that starts after a counted number of
    # write requests and outlasts the 1-second retry budget (counted, not timed).
    with dynamodb_double(aws, FaultPlan(fail_after_requests=stops[0], tables=(TABLE,)),
                         monkeypatch) as double:
        first = load(source)
        assert first.status == "FAILED"
        assert "retry budget" in (first.error or "")
        # The stop came after the reject's checkpoint: the next attempt skips that row.
        assert [c.counts["rows_rejected"] for c in ledger.load_checkpoints(key).values()] == [1]
        double.set_plan(FaultPlan(fail_after_requests=stops[1], tables=(TABLE,)))
        second = load(source)
        assert second.status == "FAILED"
        assert second.counts.rows_skipped_by_resume > 0
        double.set_plan(FaultPlan())
        resumed = load(source)

    assert resumed.counts.rows_skipped_by_resume > 0, "the last run resumed"
    assert resumed.status == "SUCCEEDED_WITH_REJECTS", resumed.error
    assert resumed.counts.rows_rejected == 1
    assert resumed.counts.identity_holds, resumed.counts
    assert resumed.rejects_path is not None
    rejects = read_rejects(resumed.rejects_path)
    assert [row[-2:] for row in rejects[1:]] == [["", str(BAD_RECORD)]], rejects
    file_counts = resumed.extra["file_counts"]
    assert file_counts["rows_read"] == ROWS
    assert file_counts["rows_read"] == (file_counts["items_written"]
                                        + file_counts["rows_rejected"]
                                        + file_counts["duplicate_rows"])
    assert file_counts["rows_rejected"] == 1
    record = ledger.get(key)
    assert record is not None
    assert record.status == LedgerStatus.SUCCEEDED_WITH_REJECTS
    assert record.report_status == "SUCCEEDED_WITH_REJECTS"
    assert record.rows_rejected == 1
    assert record.rejects_location == resumed.rejects_path


def test_the_final_state_and_rejects_location_are_the_run_reports(aws: str) -> None:
    # One rule decides them (the run report, from its rejects file): the ledger copies the
    # report's status and rejects file, it does not decide again from the counts.
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    ledger.ensure_table()
    source = SourceObject("", "/data/orders.csv", "md5-1")
    ledger.job_started(source, "local-1")
    rejects = "s3://landing/error/orders.csv.rejects.csv"
    ledger.record_report(source, "local-1", {
        "status": "SUCCEEDED_WITH_REJECTS", "rows_read": 2, "items_written": 2,
        "rows_rejected": 0, "rejects_path": rejects})
    done = ledger.finish(source, "local-1", succeeded=True)
    assert (done.status, done.rejects_location) == (LedgerStatus.SUCCEEDED_WITH_REJECTS, rejects)


def test_a_clean_rerun_drops_the_earlier_runs_rejects_location(aws: str) -> None:
    # A successful run that rejects nothing removes the earlier run's rejects file
    # (load._write_rejects): the record must not keep pointing at it. A failed run keeps it.
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    ledger.ensure_table()
    source = SourceObject("", "/data/orders.csv", "md5-2")
    rejects = "s3://landing/error/orders.csv.rejects.csv"
    ledger.job_started(source, "local-1")
    ledger.record_report(source, "local-1", {"status": "SUCCEEDED_WITH_REJECTS",
                                             "rows_read": 2, "items_written": 1,
                                             "rows_rejected": 1, "rejects_path": rejects})
    ledger.finish(source, "local-1", succeeded=True)
    ledger.job_started(source, "local-2")
    failed = ledger.record_report(source, "local-2", {"status": "FAILED", "error": "boom"})
    assert failed.rejects_location == rejects
    ledger.finish(source, "local-2", succeeded=False, error="boom")
    ledger.job_started(source, "local-3")
    ledger.record_report(source, "local-3", {"status": "SUCCEEDED", "rows_read": 2,
                                             "items_written": 2})
    done = ledger.finish(source, "local-3", succeeded=True)
    assert (done.status, done.rejects_location) == (LedgerStatus.SUCCEEDED, None)
