"""The job end to end on local Spark against moto (and the AWS-like double)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.checkpoints import table_instance
from dynamo_ingest.control.ledger import Ledger, SourceObject
from dynamo_ingest.control.locations import BucketFolders, source_locations
from dynamo_ingest.control.storage import file_md5
from dynamo_ingest.core.arguments import JobArguments

from local_aws.dynamodb_double import FaultPlan
from tests.glue_jobs.conftest import (
    CATALOG_TABLE,
    DATABASE,
    TABLE,
    create_table,
    dynamodb_double,
    read_rejects,
    register_catalog,
    scan_table,
)

pytestmark = pytest.mark.spark


def write_rows(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_inferred_schema_keeps_names_numbers_and_key_types(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("batchId", "S", "HASH"), ("seq", "N", "RANGE")])
    source = write_rows(tmp_path / "in.csv", "batchId,seq,Amount,flag,note,zip",
                        ["007,1,0.1,true,a,02869",
                         "007,2.0,12345678901234567890.123456789,FALSE,,10115",
                         "008,1,-3,true,\"x, y\",00501"])

    report = run_job(source_path=str(source), report_path=str(tmp_path / "report.json"))

    assert report.status == "SUCCEEDED", report.error
    assert scan_table(TABLE) == {
        # zip is text: DynamoDB would store the number 02869 as 2869.
        ("007", "1"): {"batchId": {"S": "007"}, "seq": {"N": "1"}, "Amount": {"N": "0.1"},
                       "flag": {"BOOL": True}, "note": {"S": "a"}, "zip": {"S": "02869"}},
        # A table key typed N keeps the by-value rule; AWS would read "2" back, moto keeps
        # the text.
        ("007", "2.0"): {"batchId": {"S": "007"}, "seq": {"N": "2.0"},
                       "Amount": {"N": "12345678901234567890.123456789"}, "flag": {"BOOL": False},
                       "zip": {"S": "10115"}},
        ("008", "1"): {"batchId": {"S": "008"}, "seq": {"N": "1"}, "Amount": {"N": "-3"},
                       "flag": {"BOOL": True}, "note": {"S": "x, y"}, "zip": {"S": "00501"}},
    }
    written = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert written["rows_read"] == 3
    assert written["items_written"] == 3
    for field in ("status", "rows_read", "items_written", "rows_rejected", "duplicate_rows",
                  "wcu_consumed", "throttled_retries", "elapsed_s"):
        assert field in written


def test_numeric_key_duplicates_are_the_same_key(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "N", "HASH")])
    source = write_rows(tmp_path / "in.csv", "id,v", ["1,a", "2,b", "1.0,c", "01,d"])

    report = run_job(source_path=str(source), partitions=4)

    assert report.counts.duplicate_rows == 2
    assert report.counts.items_written == 2
    # The last row of key 1 (written "01") wins; compare by value, as DynamoDB does.
    by_value = {Decimal(key[0]): item["v"] for key, item in scan_table(TABLE).items()}
    assert by_value == {Decimal(1): {"S": "d"}, Decimal(2): {"S": "b"}}


def test_header_drift_fails_naming_missing_and_unexpected_columns(run_job: Any,
                                                                  tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    register_catalog([("id", "string"), ("name", "string"), ("amount", "double")])
    source = write_rows(tmp_path / "in.csv", "id,Name,total", ["1,a,2"])

    report = run_job(source_path=str(source), catalog_database=DATABASE,
                     catalog_table=CATALOG_TABLE)

    assert report.status == "FAILED"
    assert "missing columns: amount" in (report.error or "")
    assert "unexpected columns: total" in (report.error or "")
    assert not report.retryable  # the callback sends it to error/ without another run
    assert scan_table(TABLE) == {}


def test_number_keys_with_unicode_spaces_are_one_key_and_the_last_row_wins(
        run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "N", "HASH")])
    rows = [row for k in range(1, 21)
            for row in (f"{k},first", f"\u00a0{k}\u2003,last")]  # no-break and em spaces
    source = write_rows(tmp_path / "in.csv", "id,v", rows)

    report = run_job(source_path=str(source), partitions=8)

    assert report.status == "SUCCEEDED", report.error
    assert (report.counts.items_written, report.counts.duplicate_rows) == (20, 20)
    assert {item["v"]["S"] for item in scan_table(TABLE).values()} == {"last"}


def test_catalog_columns_in_another_order_are_matched_by_name(run_job: Any,
                                                              tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    register_catalog([("id", "string"), ("amount", "double"), ("name", "string")])
    source = write_rows(tmp_path / "in.csv", "Name,amount,id", ["ann,1.5,7"])

    report = run_job(source_path=str(source), catalog_database=DATABASE,
                     catalog_table=CATALOG_TABLE)

    assert report.status == "SUCCEEDED", report.error
    assert scan_table(TABLE) == {
        ("7",): {"id": {"S": "7"}, "amount": {"N": "1.5"}, "Name": {"S": "ann"}}}


def test_a_header_without_rows_loads_nothing_and_succeeds(run_job: Any, tmp_path: Path) -> None:
    # A daily export with nothing new: not an error, the file is simply done.
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "in.csv"
    source.write_text("id,v\n", encoding="utf-8")

    report = run_job(source_path=str(source))

    assert report.status == "SUCCEEDED", report.error
    assert report.counts.rows_read == report.counts.items_written == 0
    assert scan_table(TABLE) == {}


def test_an_empty_file_fails_and_is_not_retried(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "in.csv"
    source.write_bytes(b"")

    report = run_job(source_path=str(source))

    assert report.status == "FAILED"
    assert "is empty" in (report.error or "")
    assert not report.retryable


def test_values_over_128_kib_load_and_items_over_400_kb_are_rejected(run_job: Any,
                                                                    tmp_path: Path) -> None:
    # 128 KiB is Python csv's default field limit; DynamoDB's item limit is 400 KB.
    create_table(TABLE, [("id", "S", "HASH")])
    fits, too_big = "y" * 300_000, "z" * 410_000
    source = write_rows(tmp_path / "in.csv", "id,blob", [f"a,{fits}", f'b,"{too_big}"', "c,"])

    report = run_job(source_path=str(source))

    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert report.counts.identity_holds
    assert scan_table(TABLE)[("a",)]["blob"] == {"S": fits}
    assert set(scan_table(TABLE)) == {("a",), ("c",)}
    (rejected,) = read_rejects(report.rejects_path or "")[1:]
    assert rejected[0] == "2"
    assert "400 KB" in rejected[1]
    assert rejected[3] == too_big  # the original value, whole


def test_missing_target_table_is_a_clear_failure(run_job: Any, tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.csv", "id,v", ["1,a"])
    report = run_job(source_path=str(source), target_table="nope")
    assert report.status == "FAILED"
    assert "'nope' does not exist" in (report.error or "")
    assert not report.retryable


def test_key_column_missing_from_file(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("orderId", "S", "HASH")])
    source = write_rows(tmp_path / "in.csv", "id,v", ["1,a"])
    report = run_job(source_path=str(source))
    assert report.status == "FAILED"
    assert "'orderId'" in (report.error or "")
    assert "id, v" in (report.error or "")
    assert not report.retryable


def test_s3_source_is_staged_and_rejects_go_to_error_prefix(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="landing")
    body = "id,amount\n1,5\n,6\n2,7\n"
    s3.put_object(Bucket="landing", Key="incoming/day 1/orders.csv", Body=body.encode())

    report = run_job(source_path="s3://landing/incoming/day 1/orders.csv")

    assert report.status == "SUCCEEDED_WITH_REJECTS"
    # Where the trigger would send them: error/ (never inside incoming/, which starts loads).
    assert report.rejects_path == "s3://landing/error/day 1/orders.csv.rejects.csv"
    rejects = s3.get_object(Bucket="landing", Key="error/day 1/orders.csv.rejects.csv")
    lines = rejects["Body"].read().decode().splitlines()
    assert lines[0] == "record_no,reason,id,amount"
    assert lines[1].startswith("2,")
    assert set(scan_table(TABLE)) == {("1",), ("2",)}


def test_a_manual_run_rejects_into_the_folders_its_arguments_name(run_job: Any) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="landing")
    s3.put_object(Bucket="landing", Key="csv/2024/05/orders.csv", Body=b"id,amount\n,6\n1,5\n")

    report = run_job(source_path="s3://landing/csv/2024/05/orders.csv", incoming_prefix="csv/",
                     error_prefix="failed/")

    assert report.rejects_path == source_locations(
        "landing", "csv/2024/05/orders.csv", BucketFolders(incoming="csv/", error="failed/")
    ).rejects == "s3://landing/failed/2024/05/orders.csv.rejects.csv"
    s3.head_object(Bucket="landing", Key="failed/2024/05/orders.csv.rejects.csv")


def test_overlapping_folders_are_refused_before_anything_is_written(run_job: Any) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="landing")
    s3.put_object(Bucket="landing", Key="data/orders.csv", Body=b"id,amount\n1,2\n")
    report = run_job(source_path="s3://landing/data/orders.csv", incoming_prefix="data/",
                     error_prefix="data/error/")
    assert report.status == "FAILED"
    assert "overlap" in (report.error or "")
    assert not report.retryable
    assert scan_table(TABLE) == {}


def test_aws_like_faults_still_load_every_row_exactly_once(run_job: Any, aws: str,
                                                           tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    rows = [f"{i},{'x' * (i % 50)},{i * 3}" for i in range(1, 1201)]
    source = write_rows(tmp_path / "in.csv", "id,pad,n", rows)
    plan = FaultPlan(unprocessed_share=0.3, throttle_share=0.1, error_5xx_share=0.05, seed=3,
                     tables=(TABLE,))
    with dynamodb_double(aws, plan, monkeypatch) as double:
        report = run_job(source_path=str(source), partitions=3, max_retry_seconds=60)
        stats = double.stats

    assert report.status == "SUCCEEDED", report.error
    assert report.counts.items_written == 1200
    assert report.counts.throttled_retries > 0
    assert report.counts.items_bounced == stats.items_unprocessed + stats.items_throttled
    # Every item is under 1 KB: 1 WCU each, as the double's ConsumedCapacity reports.
    assert report.counts.wcu_consumed == stats.wcu_accepted == 1200
    table = scan_table(TABLE)
    assert len(table) == 1200
    assert table[("77",)] == {"id": {"S": "77"}, "pad": {"S": "x" * 27}, "n": {"N": "231"}}


def test_throttling_storm_fails_cleanly_then_the_next_run_resumes(run_job: Any, aws: str,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    rows = [f"{i},{i}" for i in range(1, 2001)]
    source = write_rows(tmp_path / "in.csv", "id,n", rows)
    # The first 30 write requests pass, then every write is throttled until the plan changes:
    # the storm outlasts the 1-second retry budget.
    with dynamodb_double(aws, FaultPlan(fail_after_requests=30, tables=(TABLE,)),
                         monkeypatch) as double:
        failed = run_job(source_path=str(source), partitions=2, max_retry_seconds=1,
                         checkpoint_every=5)
        assert failed.status == "FAILED"
        assert "retry budget" in (failed.error or "")
        assert failed.counts.identity_holds
        assert failed.counts.items_written == 30 * 25
        rejects = read_rejects(failed.rejects_path or "")
        assert len(rejects) - 1 == failed.counts.rows_rejected == 2000 - 30 * 25
        ledger = Ledger(boto3.client("dynamodb"), "dynamo-ingest-ledger")
        checkpoints = ledger.load_checkpoints(SourceObject("", str(source), file_md5(source)))
        assert checkpoints, "a failed run leaves checkpoints to resume from"

        double.set_plan(FaultPlan())
        resumed = run_job(source_path=str(source), partitions=2)

    assert resumed.status == "SUCCEEDED", resumed.error
    assert resumed.counts.rows_skipped_by_resume > 0
    assert resumed.counts.identity_holds
    # Only rows after the checkpoints are written again; rows between the last checkpoint
    # and the storm are written twice (at most checkpoint_every batches per partition).
    assert resumed.counts.items_written <= 2000 - resumed.counts.rows_skipped_by_resume
    assert len(scan_table(TABLE)) == 2000


def test_a_failing_spark_task_still_ends_in_a_failed_report(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = write_rows(tmp_path / "in.csv", "id,n", [f"{i},{i}" for i in range(50)])
    ledger = Ledger(boto3.client("dynamodb"), "dynamo-ingest-ledger")
    ledger.ensure_table()
    # A checkpoint the tasks cannot read, left by an earlier run with the same arguments (or
    # the job would start over): the task fails inside Spark, not on the driver.
    earlier = SourceObject("", str(source), file_md5(source))
    ledger.job_started(earlier, "earlier-run")
    ledger.set_load_fingerprint(earlier, "earlier-run", JobArguments(
        source_path=str(source), target_table=TABLE, partitions=2).load_fingerprint(),
        table_instance(boto3.client("dynamodb").describe_table(TableName=TABLE)["Table"]))
    ledger.save_checkpoint(earlier, 0, 5, {"bogus": 1}, partitions=2)

    report = run_job(source_path=str(source), partitions=2)

    assert report.status == "FAILED"
    assert "the Spark job failed" in (report.error or "")
    record = ledger.get(SourceObject("", str(source), file_md5(source)))
    assert record is not None
    assert record.report_status == "FAILED"
