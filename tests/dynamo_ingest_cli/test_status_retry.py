"""`dynamo-ingest status` and `retry` on moto: a file fails for schema drift, ends in
error/ after every attempt, the layout is fixed, and a manual retry loads it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.ledger import Ledger, LedgerStatus
from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE, job_arguments_from_mapping
from dynamo_ingest.core.catalog import Column, CsvSchema
from dynamo_ingest.job import run
from dynamo_ingest.spark.runtime import Runtime
from rich.console import Console

from crawlers.local_crawler import register_table
from dynamo_ingest_cli.local_flow import (
    LOCAL_BUCKET,
    LOCAL_JOB,
    JobRunner,
    LocalDeployment,
)
from dynamo_ingest_cli.status import retry_file, show_status
from loader_lambda.settings import Settings as LoaderSettings
from local_aws.orchestration import LocalFlowResult, RunJob, run_local_flow
from tests.conftest import deploy_local_flow
from tests.glue_jobs.conftest import scan_table

KEY = "incoming/orders.csv"


def catalog(deployment: LocalDeployment, columns: list[tuple[str, str]]) -> None:
    schema = CsvSchema(tuple(Column(n, t) for n, t in columns))
    register_table(boto3.client("glue"), deployment.database, deployment.catalog_table, schema,
                   f"s3://{deployment.bucket}/schema/")


def keys_in_bucket() -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=LOCAL_BUCKET)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def load_a_drifted_file(deployment: LocalDeployment, run_job: RunJob,
                        loader_settings: LoaderSettings | None = None) -> LocalFlowResult:
    """Upload a file whose columns the catalog does not have (schema drift, which fails every
    attempt alike) and carry it through the local event flow."""
    catalog(deployment, [("orderId", "string"), ("amount", "double")])
    boto3.client("s3").put_object(Bucket=LOCAL_BUCKET, Key=KEY,
                                  Body=b"orderId,total\nA1,5\nA2,7\n")
    return run_local_flow(
        s3=boto3.client("s3"), glue=boto3.client("glue"), dynamodb=boto3.client("dynamodb"),
        bucket=LOCAL_BUCKET, key=KEY, trigger_settings=deployment.trigger_settings(),
        callback_settings=deployment.callback_settings(), loader_settings=loader_settings,
        run_job=run_job, aws_environ={})


@pytest.mark.spark
def test_status_shows_a_failed_file_and_retry_loads_it_after_the_fix(aws: str,
                                                                     spark: Any) -> None:
    deployment = deploy_local_flow()
    failed = load_a_drifted_file(deployment, JobRunner(Runtime(spark=spark), run))

    assert failed.record.status == LedgerStatus.FAILED
    # Schema drift would fail every attempt alike: one run, then error/ (no Glue runs wasted).
    assert failed.record.attempts == 1
    assert not failed.record.report_retryable
    assert "unexpected columns: total" in (failed.record.error or "")
    assert "error/orders.csv" in keys_in_bucket()
    screen = io.StringIO()
    assert show_status(None, DEFAULT_LEDGER_TABLE, 20, Console(file=screen, width=200)) == 0
    assert f"s3://{LOCAL_BUCKET}/{KEY}" in screen.getvalue()
    assert "FAILED" in screen.getvalue()

    catalog(deployment, [("orderId", "string"), ("total", "double")])
    quiet = Console(file=io.StringIO(), width=200)
    # Routed to Glue (no file is under a threshold of 0), like the run that failed.
    code = retry_file(f"s3://{LOCAL_BUCKET}/{KEY}", DEFAULT_LEDGER_TABLE, False, LOCAL_JOB,
                      console=quiet, out=quiet, small_file_bytes=0)

    assert code == 0
    assert scan_table(deployment.target_table) == {
        ("A1",): {"orderId": {"S": "A1"}, "total": {"N": "5"}},
        ("A2",): {"orderId": {"S": "A2"}, "total": {"N": "7"}}}
    assert "complete/orders.csv" in keys_in_bucket()
    assert KEY not in keys_in_bucket()
    screen = io.StringIO()
    assert show_status(f"s3://{LOCAL_BUCKET}/{KEY}", DEFAULT_LEDGER_TABLE, 20,
                       Console(file=screen, width=200)) == 0
    assert '"status": "SUCCEEDED"' in screen.getvalue()
    assert '"attempts": 2' in screen.getvalue()


@pytest.mark.spark
def test_a_cli_run_ends_in_a_final_state_with_its_arguments_and_retry_reruns_it(
        aws: str, spark: Any) -> None:
    # A run nobody started through Glue (`dynamo-ingest run`) has no callback to finish it:
    # it must finish its own record, like the event flow does, so `status` and `retry` work.
    deployment = deploy_local_flow()
    catalog(deployment, [("orderId", "string"), ("amount", "double")])
    boto3.client("s3").put_object(Bucket=LOCAL_BUCKET, Key=KEY,
                                  Body=b"orderId,total\nA1,5\nA2,7\n,9\n")
    uri = f"s3://{LOCAL_BUCKET}/{KEY}"
    arguments = {"source_path": uri, "target_table": deployment.target_table,
                 "catalog_database": deployment.database,
                 "catalog_table": deployment.catalog_table}
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)

    failed = run(job_arguments_from_mapping(arguments), Runtime(spark=spark))

    record = ledger.find(uri)
    assert failed.status == "FAILED"
    assert record is not None
    assert record.status == LedgerStatus.FAILED
    assert record.finished_at is not None
    assert "unexpected columns: total" in (record.error or "")
    assert record.arguments["--source_path"] == uri
    assert record.arguments["--catalog_table"] == deployment.catalog_table

    catalog(deployment, [("orderId", "string"), ("total", "double")])
    quiet = Console(file=io.StringIO(), width=200)
    assert retry_file(uri, DEFAULT_LEDGER_TABLE, False, LOCAL_JOB, console=quiet,
                      out=quiet) == 0
    retried = ledger.find(uri)
    assert retried is not None
    assert (retried.status, retried.attempts) == (LedgerStatus.SUCCEEDED_WITH_REJECTS, 2)
    assert retried.error is None  # the first attempt's error is not this one's
    assert retried.finished_at is not None
    assert retried.finished_at > record.finished_at
    assert scan_table(deployment.target_table) == {
        ("A1",): {"orderId": {"S": "A1"}, "total": {"N": "5"}},
        ("A2",): {"orderId": {"S": "A2"}, "total": {"N": "7"}}}

    # A plain re-run of the loaded file by hand (its record is now elsewhere: complete/).
    boto3.client("s3").put_object(Bucket=LOCAL_BUCKET, Key=KEY, Body=b"orderId,total\nA3,1\n")
    again = run(job_arguments_from_mapping(arguments), Runtime(spark=spark))
    assert again.status == "SUCCEEDED", again.error
    latest = ledger.find(uri)
    assert latest is not None
    assert (latest.status, latest.error, latest.lease) == (LedgerStatus.SUCCEEDED, None, None)
    assert latest.finished_at is not None
    assert latest.arguments["--source_path"] == uri


def test_retry_of_a_local_file_refuses_and_leaves_its_record(aws: str, tmp_path: Path) -> None:
    """A local file failed (no such table): retry would start a Glue run that cannot read it
    and leave the record STARTED, so it refuses and says to run the file again."""
    source = tmp_path / "local.csv"
    source.write_text("id,v\na,1\n", encoding="utf-8")
    report = run(job_arguments_from_mapping({"source_path": str(source),
                                             "target_table": "no_such_table",
                                             "engine": "local"}))
    assert report.status == "FAILED"
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    before = ledger.find(str(source))
    assert before is not None
    assert before.status == LedgerStatus.FAILED
    errors = io.StringIO()

    code = retry_file(str(source), DEFAULT_LEDGER_TABLE, False, LOCAL_JOB,
                      console=Console(file=errors, width=200), out=Console(file=io.StringIO()))

    assert code == 1
    assert "is a local file" in errors.getvalue()
    after = ledger.find(str(source))
    assert after is not None
    assert (after.status, after.attempts) == (LedgerStatus.FAILED, before.attempts)
