"""The Lambda path of the event flow on moto: a small upload → trigger → loader Lambda (the
in-process engine) → the one finish; no Glue run. And a load that nears the Lambda's deadline
continues in a fresh invocation to the exact table."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.ledger import Ledger, LedgerStatus, SourceObject
from rich.console import Console

from dynamo_ingest_cli.datagen import (
    ExpectedOutcome,
    attribute_types_for_layout,
    expected_outcome,
    generate_csv,
)
from dynamo_ingest_cli.local_flow import LocalDeployment
from dynamo_ingest_cli.status import show_status
from local_aws.dynamodb_double import DynamoDBDouble, FaultPlan
from local_aws.orchestration import (
    LOADER_FUNCTION,
    LocalFlowResult,
    LocalLambdaContext,
    RunJob,
    run_local_flow,
)
from tests.conftest import deploy_local_flow
from tests.glue_jobs.conftest import dynamodb_double, scan_table

REPO = Path(__file__).resolve().parents[2]


def _no_glue(argv: list[str]) -> int:
    raise AssertionError(f"a Glue run was started for a small file: {argv}")


def _deploy() -> LocalDeployment:
    """What Terraform deploys, with the loader function for small files."""
    return replace(deploy_local_flow(), loader_function=LOADER_FUNCTION)


def _upload(deployment: LocalDeployment, path: Path, key: str) -> None:
    """Register the file's catalog table (the crawler, as the demo does), then upload it."""
    from crawlers.local_crawler import crawl

    s3 = boto3.client("s3")
    s3.upload_file(str(path), deployment.bucket, "schema/orders.csv")
    crawl(boto3.client("glue"), s3, f"s3://{deployment.bucket}/schema/orders.csv",
          deployment.database, deployment.catalog_table)
    s3.upload_file(str(path), deployment.bucket, key)


def _flow(deployment: LocalDeployment, key: str, *, run_job: RunJob = _no_glue,
          **kwargs: Any) -> LocalFlowResult:
    return run_local_flow(s3=boto3.client("s3"), glue=boto3.client("glue"),
                          dynamodb=boto3.client("dynamodb"), bucket=deployment.bucket, key=key,
                          trigger_settings=deployment.trigger_settings(),
                          callback_settings=deployment.callback_settings(),
                          loader_settings=deployment.loader_settings(), run_job=run_job,
                          aws_environ={}, **kwargs)


def _keys(bucket: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return [o["Key"] for o in listed]


def _uploaded_orders(deployment: LocalDeployment, tmp_path: Path, rows: int, *,
                     duplicate_every: int, bad_every: int,
                     key: str = "incoming/orders.csv") -> ExpectedOutcome:
    """Upload a generated orders file with duplicates and bad rows to ``key``; the table the
    flow must leave (the independent oracle)."""
    generated = generate_csv(tmp_path / "orders.csv", rows, duplicate_every=duplicate_every,
                             bad_every=bad_every)
    expected = expected_outcome(generated.path, key_columns=("orderId",),
                                column_types=attribute_types_for_layout(), exact_numbers=False)
    _upload(deployment, generated.path, key)
    return expected


def test_a_small_file_loads_in_the_loader_lambda_with_no_glue_run(aws: str,
                                                                  tmp_path: Path) -> None:
    deployment = _deploy()
    key = "incoming/2024/orders.csv"
    expected = _uploaded_orders(deployment, tmp_path, 1500, duplicate_every=300,
                                bad_every=400, key=key)

    result = _flow(deployment, key)

    assert [r["outcome"] for r in result.loader_results] == ["succeeded_with_rejects"]
    assert boto3.client("glue").get_job_runs(JobName=deployment.job_name)["JobRuns"] == []
    record = result.record
    assert (record.status, record.engine, record.attempts) == (
        LedgerStatus.SUCCEEDED_WITH_REJECTS, "local", 1)
    assert record.job_run_id is not None
    assert record.job_run_id.startswith("lambda-")
    assert result.file_location == f"s3://{deployment.bucket}/complete/2024/orders.csv"
    assert record.rows_read == expected.rows_read == 1500
    assert record.items_written == len(expected.items)
    assert record.rows_rejected == len(expected.rejected) > 0
    assert record.duplicate_rows == expected.duplicate_rows > 0
    assert scan_table(deployment.target_table) == expected.items
    keys = _keys(deployment.bucket)
    assert "incoming/2024/orders.csv" not in keys
    assert "error/2024/orders.csv.rejects.csv" in keys
    assert record.lease is None
    screen = io.StringIO()
    assert show_status(None, deployment.ledger_table, 5, Console(file=screen, width=250)) == 0
    row = next(line for line in screen.getvalue().splitlines() if "SUCCEEDED_WITH" in line)
    assert "│ local " in row


def _reaped_children_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def test_a_small_load_runs_in_the_loaders_own_process(aws: str, tmp_path: Path) -> None:
    """A worker process costs more to start (imports, connections) than a few thousand rows
    take to load: the loader spawns none. Each worker the engine spawns is joined before the
    load returns, so its CPU would show in this process's reaped children's clock."""
    deployment = _deploy()
    expected = _uploaded_orders(deployment, tmp_path, 3000, duplicate_every=500,
                                bad_every=1000)
    children_before = _reaped_children_cpu_s()

    result = _flow(deployment, "incoming/orders.csv")

    assert _reaped_children_cpu_s() == children_before
    assert (result.record.status, result.engine) == (LedgerStatus.SUCCEEDED_WITH_REJECTS,
                                                     "local")
    assert result.file_location == f"s3://{deployment.bucket}/complete/orders.csv"
    assert scan_table(deployment.target_table) == expected.items


def test_a_file_over_the_threshold_goes_to_glue(aws: str, tmp_path: Path) -> None:
    deployment = replace(_deploy(), small_file_bytes=100)
    path = tmp_path / "orders.csv"
    path.write_bytes(b"orderId,customer\n" + b"".join(b"o%d,c\n" % i for i in range(50)))
    _upload(deployment, path, "incoming/orders.csv")
    argvs: list[list[str]] = []

    def glue_job(argv: list[str]) -> int:
        argvs.append(argv)
        raise SystemExit("stop here: the route is what this test checks")

    with pytest.raises(SystemExit):
        _flow(deployment, "incoming/orders.csv", run_job=glue_job)

    runs = boto3.client("glue").get_job_runs(JobName=deployment.job_name)["JobRuns"]
    assert len(runs) == 1
    assert argvs
    assert argvs[0][argvs[0].index("--JOB_RUN_ID") + 1] == runs[0]["Id"]


class DeadlineAfterWrites:
    """A loader invocation whose time runs out once the double has refused its first write
    (a storm that starts after ``N`` write requests holds the load there): counted, not
    timed. Reporting the deadline ends the storm, so the stop finds the load writing."""

    def __init__(self, function_name: str, arn: str, double: DynamoDBDouble,
                 plan_after: FaultPlan) -> None:
        self.function_name = function_name
        self.invoked_function_arn = arn
        self.aws_request_id = "request-1"
        self.double = double
        self.plan_after = plan_after

    def get_remaining_time_in_millis(self) -> int:
        if self.double.stats.items_throttled == 0:
            return 900_000
        if self.double.plan.fail_after_requests is not None:
            self.double.set_plan(self.plan_after)
        return 0


def test_a_load_nearing_the_deadline_continues_in_a_fresh_invocation(
        aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _deploy()
    expected = _uploaded_orders(deployment, tmp_path, 8000, duplicate_every=500,
                                bad_every=1000)
    only_target = (deployment.target_table,)
    contexts: list[Any] = []

    with dynamodb_double(aws, FaultPlan(fail_after_requests=40, tables=only_target),
                         monkeypatch) as double:
        def context(name: str) -> Any:
            arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
            made: Any = (DeadlineAfterWrites(name, arn, double, FaultPlan(tables=only_target))
                         if not contexts else
                         LocalLambdaContext(name, f"request-{len(contexts) + 1}", arn))
            contexts.append(made)
            return made

        result = _flow(deployment, "incoming/orders.csv", loader_context=context)
        accepted = double.stats.items_accepted

    outcomes = [r["outcome"] for r in result.loader_results]
    assert outcomes == ["continued", "succeeded_with_rejects"]
    record = result.record
    assert record.status == LedgerStatus.SUCCEEDED_WITH_REJECTS
    assert record.engine == "local"
    assert len(record.job_run_ids) == 2
    # The first invocation stopped part-way: the second skipped its rows and wrote the rest.
    assert record.rows_skipped_by_resume > 0
    assert record.items_written > 0
    assert result.file_location == f"s3://{deployment.bucket}/complete/orders.csv"
    assert scan_table(deployment.target_table) == expected.items
    # Every item write the table accepted beyond one per item was a row written twice.
    written_twice = accepted - len(expected.items)
    assert 0 <= written_twice <= 0.01 * expected.rows_read, written_twice
    assert boto3.client("glue").get_job_runs(JobName=deployment.job_name)["JobRuns"] == []


def test_the_loader_runs_a_load_without_importing_pyspark(aws: str, tmp_path: Path) -> None:
    deployment = _deploy()
    path = tmp_path / "orders.csv"
    path.write_bytes(b"orderId,customer\n" + b"".join(b"o%d,c%d\n" % (i, i) for i in range(200)))
    key = "incoming/small.csv"
    _upload(deployment, path, key)
    head = boto3.client("s3").head_object(Bucket=deployment.bucket, Key=key)
    source = SourceObject(deployment.bucket, key, str(head["ETag"]))
    Ledger(boto3.client("dynamodb"), deployment.ledger_table).receive(source)
    payload = {"job_run_id": "lambda-nopyspark", "arguments": {
        "--source_path": source.uri, "--source_etag": source.etag,
        "--target_table": deployment.target_table, "--partition_key": "orderId",
        "--ledger_table": deployment.ledger_table}}
    script = (
        "import json, sys\n"
        "from loader_lambda.handler import handler\n"
        "from local_aws.orchestration import LocalLambdaContext\n"
        "ctx = LocalLambdaContext('dynamo-ingest-loader', 'r', "
        "'arn:aws:lambda:us-east-1:123456789012:function:dynamo-ingest-loader')\n"
        "result = handler(json.loads(sys.argv[1]), ctx)\n"
        "print(json.dumps({'outcome': result['outcome'], "
        "'pyspark': sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pyspark', 'awsglue', 'py4j'))}))\n")
    env = {**os.environ, **deployment.loader_settings().to_env()}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(payload)], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"outcome": "succeeded", "pyspark": []}
