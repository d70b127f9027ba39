"""`dynamo-ingest demo` end to end on moto: upload → trigger → job → event → callback.

The table is compared, item by item and type by type, with the generator's independent
oracle, and the ledger's counts with the oracle's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.ledger import Ledger
from rich.console import Console

from dynamo_ingest_cli.datagen import attribute_types_for_layout, expected_outcome
from dynamo_ingest_cli.demo import run_demo
from dynamo_ingest_cli.local_flow import LOCAL_BUCKET, LOCAL_JOB, LOCAL_TABLE
from tests.glue_jobs.conftest import scan_table


def test_demo_loads_a_small_file_exactly_in_the_loader_lambda(aws: str,
                                                              tmp_path: Path) -> None:
    quiet = Console(file=open("/dev/null", "w"), width=120)  # noqa: SIM115

    code = run_demo(rows=3000, workdir=tmp_path, console=quiet, out=quiet,
                    duplicate_every=400, bad_every=700)

    assert code == 0
    assert boto3.client("glue").get_job_runs(JobName=LOCAL_JOB)["JobRuns"] == []
    expected = expected_outcome(tmp_path / "orders.csv", key_columns=("orderId",),
                                column_types=attribute_types_for_layout())
    assert expected.duplicate_rows > 0, "the file must hold duplicates"
    assert expected.rejected, "the file must hold bad rows"
    table = scan_table(LOCAL_TABLE)
    assert table == expected.items
    records = Ledger(boto3.client("dynamodb"), "dynamo-ingest-ledger").recent()
    assert len(records) == 1
    record = records[0]
    assert record.status == "SUCCEEDED_WITH_REJECTS"
    assert record.rows_read == expected.rows_read == 3000
    assert record.items_written == len(expected.items)
    assert record.rows_rejected == len(expected.rejected)
    assert record.duplicate_rows == expected.duplicate_rows
    assert record.rows_read == record.items_written + record.rows_rejected + record.duplicate_rows
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=LOCAL_BUCKET)["Contents"]]
    assert [k for k in keys if k.startswith("incoming/")] == []
    assert any(k.startswith("complete/orders-") for k in keys)
    assert any(k.startswith("error/") and k.endswith(".rejects.csv") for k in keys)
    assert record.engine == "local"


@pytest.mark.spark
def test_demo_sends_the_small_file_to_the_lambda_and_the_big_one_to_glue(
        aws: str, spark: Any, tmp_path: Path) -> None:
    out_file = tmp_path / "summary.txt"
    quiet = Console(file=open("/dev/null", "w"), width=120)  # noqa: SIM115
    out = Console(file=out_file.open("w"), width=200)

    code = run_demo(rows=3000, workdir=tmp_path, console=quiet, out=out, duplicate_every=400,
                    bad_every=700, small_rows=400, small_file_bytes=300_000)

    assert code == 0
    records = Ledger(boto3.client("dynamodb"), "dynamo-ingest-ledger").recent()
    engines = {r.source.key.split("-2")[0]: r.engine for r in records}
    assert engines == {"incoming/orders-small": "local", "incoming/orders": "spark"}
    assert len(boto3.client("glue").get_job_runs(JobName=LOCAL_JOB)["JobRuns"]) == 1
    assert all("/complete/" in (r.file_location or "") for r in records)
    small = expected_outcome(tmp_path / "orders-small.csv", key_columns=("orderId",),
                             column_types=attribute_types_for_layout())
    big = expected_outcome(tmp_path / "orders.csv", key_columns=("orderId",),
                           column_types=attribute_types_for_layout())
    # The big file loads after the small one: its rows win where keys meet.
    assert scan_table(LOCAL_TABLE) == {**small.items, **big.items}
    out.file.close()
    summary = out_file.read_text()
    assert "loader Lambda (in-process engine)" in summary
    assert "Glue job (Spark)" in summary
    assert summary.count("event to final location") == 2
