"""`dynamo-ingest retry` routes a file as the trigger does (routing.start_load): a small file
that failed in the loader Lambda is retried in the loader Lambda, with no Glue run."""

from __future__ import annotations

import io
from dataclasses import replace

import boto3
from dynamo_ingest.control.ledger import Ledger, LedgerStatus
from dynamo_ingest.control.load_request import LAMBDA_RUN_PREFIX
from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE
from rich.console import Console

from dynamo_ingest_cli.local_flow import LOCAL_BUCKET, LOCAL_JOB
from dynamo_ingest_cli.status import retry_file
from local_aws.orchestration import LOADER_FUNCTION
from tests.conftest import deploy_local_flow
from tests.dynamo_ingest_cli.test_status_retry import (
    KEY,
    catalog,
    keys_in_bucket,
    load_a_drifted_file,
)
from tests.glue_jobs.conftest import scan_table

URI = f"s3://{LOCAL_BUCKET}/{KEY}"


def _no_glue(argv: list[str]) -> int:
    raise AssertionError(f"a Glue run was started for a small file: {argv}")


def test_retry_of_a_small_file_goes_through_the_loader_lambda(aws: str) -> None:
    deployment = replace(deploy_local_flow(), loader_function=LOADER_FUNCTION)
    failed = load_a_drifted_file(deployment, _no_glue, deployment.loader_settings())
    assert failed.record.status == LedgerStatus.FAILED
    assert "unexpected columns: total" in (failed.record.error or "")
    assert "error/orders.csv" in keys_in_bucket()

    catalog(deployment, [("orderId", "string"), ("total", "double")])
    screen = io.StringIO()
    quiet = Console(file=screen, width=200)
    code = retry_file(URI, DEFAULT_LEDGER_TABLE, False, LOCAL_JOB, console=quiet, out=quiet)

    assert code == 0, screen.getvalue()
    assert f"started {LOADER_FUNCTION} run {LAMBDA_RUN_PREFIX}" in screen.getvalue()
    record = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE).find(URI)
    assert record is not None
    assert (record.status, record.attempts, record.engine) == (LedgerStatus.SUCCEEDED, 2,
                                                               "local")
    assert all(run.startswith(LAMBDA_RUN_PREFIX) for run in record.job_run_ids)
    assert boto3.client("glue").get_job_runs(JobName=LOCAL_JOB)["JobRuns"] == []
    assert scan_table(deployment.target_table) == {
        ("A1",): {"orderId": {"S": "A1"}, "total": {"N": "5"}},
        ("A2",): {"orderId": {"S": "A2"}, "total": {"N": "7"}}}
    assert "complete/orders.csv" in keys_in_bucket()
    assert KEY not in keys_in_bucket()

