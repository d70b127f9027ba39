"""Twenty files through the local event flow: every file settles, once, in upload order;
small files through the loader Lambda, a bigger one through Glue."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from dynamo_ingest.control.ledger import LedgerRecord, LedgerStatus
from dynamo_ingest.control.load_request import LAMBDA_RUN_PREFIX
from dynamo_ingest.control.queue import ENTRY_PREFIX, queue_id

from local_aws.orchestration import LocalLambdaContext
from tests.stream.support import (
    BUCKET,
    JOB,
    KEY,
    TABLE,
    StreamDeployment,
    applied_in_order,
    deploy,
    one_core,
    write_files,
)

# The routing threshold for these files: 40 rows are about 700 bytes, 400 about 7 KB.
SMALL_FILE_BYTES = 2_000
BIG = "batch-05.csv"


def _glue_sources(deployment: StreamDeployment) -> list[str]:
    """The --source_path of every Glue run of the job."""
    runs = deployment.glue.get_job_runs(JobName=JOB)["JobRuns"]
    return [str(run["Arguments"]["--source_path"]) for run in runs]


def _through_loader(record: LedgerRecord) -> bool:
    return bool(record.job_run_ids) and all(run.startswith(LAMBDA_RUN_PREFIX)
                                            for run in record.job_run_ids)


def test_twenty_files_settle_once_each_in_upload_order(aws: str, tmp_path: Path) -> None:
    deployment = deploy(max_concurrent_runs=2, small_file_bytes=SMALL_FILE_BYTES)
    paths = write_files(tmp_path, 20, bad=13, long={5: 400})
    assert (tmp_path / BIG).stat().st_size > SMALL_FILE_BYTES
    with one_core(), deployment.flow(seed=7, duplicate_share=0.3) as flow:
        uploads = flow.upload(paths)
        records = flow.settle(uploads)
    # Some events came twice and out of order; the dispatcher still kept upload order.
    assert flow.counters.events_duplicated > 0
    assert flow.counters.events_delivered == len(paths) + flow.counters.events_duplicated
    by_name = {Path(r.source.key).name: r for r in records}
    bad = by_name.pop("batch-13.csv")
    assert bad.status == LedgerStatus.FAILED
    assert bad.file_location == f"s3://{BUCKET}/error/batch-13.csv"
    assert "orderId" in (bad.error or "")
    assert {r.status for r in by_name.values()} == {LedgerStatus.SUCCEEDED}
    assert {r.file_location for r in by_name.values()} == {
        f"s3://{BUCKET}/complete/{name}" for name in by_name}
    assert deployment.incoming() == []
    # nothing queued or stranded: the table's queue is empty once every file settled
    assert deployment.ledger.query_control_items(queue_id(TABLE), ENTRY_PREFIX) == []
    # the ledger holds each file once
    runs = deployment.ledger.recent(limit=1000)
    assert sorted(r.source.key for r in runs) == sorted(f"incoming/{p.name}" for p in paths)
    good = [p for p in paths if p.name != "batch-13.csv"]
    assert deployment.table() == applied_in_order(good)
    # Routed as AWS routes them: the small files (the bad one too) in the loader Lambda, with
    # no Glue run; the big one as one Glue run.
    big = by_name.pop(BIG)
    small = [*by_name.values(), bad]
    assert all(_through_loader(r) and r.engine == "local" for r in small), [
        (r.source.key, r.job_run_ids, r.engine) for r in small]
    assert not _through_loader(big)
    assert _glue_sources(deployment) == [big.source.uri]
    assert flow.counters.runs_executed == 1
    assert flow.counters.loader_invocations >= len(small)


def test_the_flows_glue_limit_defaults_to_terraforms() -> None:
    from dynamo_ingest_cli.flow import DEFAULT_MAX_CONCURRENT_RUNS
    from tests.terraform.hcl import TerraformConfig

    terraform = TerraformConfig.load()
    assert terraform.variable_default("glue_max_concurrent_runs") == DEFAULT_MAX_CONCURRENT_RUNS
    assert terraform.variable_default("upload_order") == "serial"


def test_the_flow_command_prints_a_row_per_file_and_fails_when_one_failed(
        aws: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dynamo_ingest_cli.main import app
    from local_aws.resources import ensure_resources

    # the user's table: on an endpoint the user set, flow loads into a table it finds
    ensure_resources(bucket=BUCKET, database="cli", target_table="cli_orders",
                     partition_key=(KEY, "S"), sort_key=None, ledger_table="cli-ledger")
    good, bad = write_files(tmp_path, 2, bad=1)
    with one_core():
        result = CliRunner().invoke(app, [
            "flow", str(good), str(bad), "--target_table", "cli_orders",
            "--partition_key", "orderId", "--engine", "local", "--ledger_table", "cli-ledger",
            "--max_concurrent_runs", "1", "--drop_columns", "line"], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│ incoming/")]
    assert len(rows) == 2
    assert "complete/batch-00.csv" in rows[0]
    assert "SUCCEEDED" in rows[0]
    assert "error/batch-01.csv" in rows[1]
    assert "FAILED" in rows[1]
    assert "incoming/batch-01.csv failed: " in result.output
    assert "'orderId' has no value" in result.output
    # A job option is one of the Glue job's default arguments, which the loader Lambda
    # applies too: the small file's items have no "line".
    items = boto3.client("dynamodb").scan(TableName="cli_orders")["Items"]
    assert len(items) == 40
    assert all(set(item) == {"orderId", "source"} for item in items), items[0]


def test_under_the_parallel_policy_glues_limit_keeps_files_queued_not_failed(
        aws: str, tmp_path: Path) -> None:
    # Three files of the table may load at once, Glue allows two runs: the third start is
    # refused with ConcurrentRunsExceededException and waits in the queue.
    deployment = deploy(max_concurrent_runs=2, upload_order="parallel")  # no loader: Glue
    paths = write_files(tmp_path, 6, stride=40)  # keys never overlap
    with one_core(), deployment.flow(seed=1, duplicate_share=0.0) as flow:
        records = flow.settle(flow.upload(paths))
    assert flow.counters.concurrency_refusals > 0
    assert flow.counters.max_runs_going == 2
    # no invocation failed: each event was delivered once and nothing was dead-lettered
    assert flow.counters.events_delivered == len(paths)
    assert flow.counters.events_dead_lettered == 0
    assert {r.status for r in records} == {LedgerStatus.SUCCEEDED}
    assert all(r.attempts == 1 for r in records)
    assert deployment.table() == applied_in_order(paths)


class OutOfTimeFirst:
    """Lambda's contexts for the flow's loader invocations: the first has no time left (its
    deadline watch stops the load as it starts), every later one has Lambda's 900 s."""

    def __init__(self) -> None:
        self.made: list[LocalLambdaContext] = []

    def __call__(self, name: str) -> LocalLambdaContext:
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        context = LocalLambdaContext(name, f"request-{len(self.made) + 1}", arn,
                                     timeout_s=0 if not self.made else 900)
        self.made.append(context)
        return context


# The deadline watch sees no time left before the engine is up: it must not die raising.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_small_file_nearing_the_loaders_deadline_continues_in_a_fresh_invocation(
        aws: str, tmp_path: Path) -> None:
    deployment = deploy(max_concurrent_runs=2, small_file_bytes=SMALL_FILE_BYTES)
    paths = write_files(tmp_path, 3)
    contexts = OutOfTimeFirst()
    with one_core(), deployment.flow(seed=2, duplicate_share=0.0,
                                     loader_context=contexts) as flow:
        records = flow.settle(flow.upload(paths))
    assert {r.status for r in records} == {LedgerStatus.SUCCEEDED}
    assert all(_through_loader(r) for r in records)
    # The first file's load was handed on (the loader invoked itself) and finished in the
    # second invocation; the others took one each.
    assert [len(r.job_run_ids) for r in records] == [2, 1, 1]
    assert flow.counters.loader_invocations == len(contexts.made) == 4
    assert _glue_sources(deployment) == []
    assert deployment.table() == applied_in_order(paths)


def test_under_the_parallel_policy_the_tables_limit_bounds_the_loader_lambdas_loads(
        aws: str, tmp_path: Path) -> None:
    # Glue's limit (one run) is not the loader's: Lambda queues asynchronous invocations.
    # The table's own limit (three loads) is what bounds the small files loading at once.
    deployment = deploy(max_concurrent_runs=1, upload_order="parallel",
                        small_file_bytes=SMALL_FILE_BYTES)
    paths = write_files(tmp_path, 8, stride=40)  # keys never overlap
    with one_core(), deployment.flow(seed=4, duplicate_share=0.0) as flow:
        records = flow.settle(flow.upload(paths))
    assert deployment.trigger.table_max_loads == 3
    assert flow.counters.max_loader_requests_waiting == 3
    assert flow.counters.concurrency_refusals == 0
    assert {r.status for r in records} == {LedgerStatus.SUCCEEDED}
    assert all(_through_loader(r) for r in records)
    assert deployment.table() == applied_in_order(paths)
