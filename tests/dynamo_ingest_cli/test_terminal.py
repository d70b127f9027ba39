"""`run`, `demo`, `retry` and `status` on a pseudo-terminal, the way people see them: the
progress bar renders, the summary table and the JSON report are there, and the load is
right in the table and the ledger."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.ledger import Ledger, LedgerStatus
from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE

from local_aws.moto_server import ENDPOINT_VARIABLES
from tests.dynamo_ingest_cli.cli_child import (
    BUCKET,
    child_environ,
    deploy,
    run_on_terminal,
    table_row,
    write_orders,
)
from tests.glue_jobs.conftest import scan_table

ROWS = 3000


@pytest.mark.spark
def test_run_on_a_terminal_shows_progress_summary_and_report(aws: str, tmp_path: Path) -> None:
    deploy()
    source = write_orders(tmp_path / "orders.csv", ROWS)

    result = run_on_terminal(["run", "--source_path", str(source), "--target_table", "orders",
                              "--partition_key", "orderId"], child_environ(), tmp_path)

    assert result.returncode == 0, result.output
    assert "loading" in result.output
    assert f"{ROWS:,} of ~{ROWS:,} rows" in result.output, result.output
    assert "dynamo-ingest: SUCCEEDED" in result.output
    assert table_row(result.output, "wcu_consumed").endswith(
        f"as reported by the emulator at {aws}, not DynamoDB's figure")
    report = result.report()
    assert report["status"] == "SUCCEEDED"
    assert report["rows_read"] == report["items_written"] == report["wcu_estimated"] == ROWS
    assert report["write_cost_basis"] == "wcu_estimated"
    assert len(scan_table("orders")) == ROWS
    (record,) = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE).recent()
    assert (record.rows_read, record.items_written) == (ROWS, ROWS)


@pytest.mark.spark
def test_demo_on_a_terminal_loads_the_oracle_count_and_labels_moto_capacity(
        tmp_path: Path) -> None:
    env = child_environ(**dict.fromkeys(ENDPOINT_VARIABLES))  # the demo's own moto

    result = run_on_terminal(["demo", "--rows", "2000", "--workdir", str(tmp_path / "data")],
                             env, tmp_path)

    assert result.returncode == 0, result.output
    assert "embedded moto server" in result.output
    assert "demo outcome" in result.output
    # A 2,000-row file is a small one: the event flow loads it in the loader Lambda.
    assert table_row(result.output, "  loaded by").startswith("loader Lambda"), result.output
    status = table_row(result.output, "  ledger status (attempts)")
    assert status.split()[0] in ("SUCCEEDED", "SUCCEEDED_WITH_REJECTS"), status
    in_table, expected = re.findall(r"[\d,]+", table_row(result.output,
                                                          "items in table (expected)"))
    assert in_table == expected
    # One-unit items: DynamoDB charges one unit each; moto reports one per batch of 25.
    assert table_row(result.output, "write units (estimated from item sizes)") == in_table
    assert table_row(result.output, "write units as reported by moto").endswith(
        "moto under-reports batch capacity (one unit per BatchWriteItem call), not DynamoDB's "
        "figure")


def fail_for_schema_drift(spark: Any) -> str:
    """A file whose load failed in the event flow (the catalog names a column the file lacks),
    then the catalog fixed: ``retry`` can load it. Returns the file's URI."""
    from dynamo_ingest.core.catalog import Column, CsvSchema
    from dynamo_ingest.job import run
    from dynamo_ingest.spark.runtime import Runtime

    from crawlers.local_crawler import register_table
    from dynamo_ingest_cli.local_flow import JobRunner, LocalDeployment, ensure_topic
    from local_aws.orchestration import ensure_local_job, run_local_flow

    deployment = LocalDeployment(topic_arn=ensure_topic(boto3.client("sns")))
    deploy()
    ensure_local_job(boto3.client("glue"), deployment.job_name, max_concurrent_runs=1)

    def catalog(*columns: tuple[str, str]) -> None:
        register_table(boto3.client("glue"), deployment.database, deployment.catalog_table,
                       CsvSchema(tuple(Column(n, t) for n, t in columns)), f"s3://{BUCKET}/schema/")

    catalog(("orderId", "string"), ("amount", "double"))
    key = "incoming/orders.csv"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"orderId,total\nA1,5\nA2,7\n")
    failed = run_local_flow(
        s3=boto3.client("s3"), glue=boto3.client("glue"), dynamodb=boto3.client("dynamodb"),
        bucket=BUCKET, key=key, trigger_settings=deployment.trigger_settings(),
        callback_settings=deployment.callback_settings(),
        run_job=JobRunner(Runtime(spark=spark), run), aws_environ={})
    assert failed.record.status == LedgerStatus.FAILED
    catalog(("orderId", "string"), ("total", "double"))
    return f"s3://{BUCKET}/{key}"


@pytest.mark.spark
def test_retry_and_status_on_a_terminal(aws: str, spark: Any, tmp_path: Path) -> None:
    uri = fail_for_schema_drift(spark)

    retried = run_on_terminal(["retry", uri], child_environ(), tmp_path)

    assert retried.returncode == 0, retried.output
    assert "loading" in retried.output
    assert "dynamo-ingest: SUCCEEDED" in retried.output
    assert len(scan_table("orders")) == 2
    status = run_on_terminal(["status"], child_environ(), tmp_path)
    assert status.returncode == 0, status.output
    assert uri in status.output
    assert "SUCCEEDED" in status.output
    record = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE).recent()[0]
    assert record.status == LedgerStatus.SUCCEEDED


def test_the_rows_column_renders_before_the_total_is_known() -> None:
    import io

    from rich.console import Console
    from rich.progress import Progress

    from dynamo_ingest_cli.main import RowsColumn

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=80)
    with Progress(RowsColumn(), console=terminal, auto_refresh=False) as bar:
        task = bar.add_task("rows", total=None)
        bar.update(task, completed=1200)
        bar.refresh()
        bar.update(task, completed=2400, total=5000)
        bar.refresh()

    assert "1,200 rows" in screen.getvalue()
    assert "2,400 of ~5,000 rows" in screen.getvalue()
