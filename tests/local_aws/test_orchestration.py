"""The local event flow: events shaped like AWS's, and upload → trigger → job → callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dynamo_ingest.control.ledger import Ledger, LedgerStatus, SourceObject
from dynamo_ingest.core.arguments import parse_job_arguments

from callback_lambda.events import GlueJobStateChange
from local_aws.orchestration import (
    LocalFlowError,
    LocalFlowResult,
    ensure_local_job,
    glue_state_change_event,
    job_argv,
    run_local_flow,
    s3_put_event,
)
from tests.conftest import load_event
from tests.trigger_lambda.support import BUCKET, JOB_NAME, Flow, create_flow
from trigger_lambda.events import S3EventRecord, raw_records

DRIFT = "SchemaMismatchError: expected columns [order_id, customer], found [order_id, cust]"
CSV = b"order_id,customer\n1,ann\n2,bob\n3,cy\n"


def _shape(value: Any) -> Any:
    """The nested key structure of an event (values ignored)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


def test_the_s3_event_has_s3s_shape_and_encodes_the_key() -> None:
    key = "incoming/données 2024/été + c++ (1).csv"
    event = s3_put_event("landing", key, '"0cc175b9c0f1b6a831c399e269772661"', 42)
    assert _shape(event) == _shape(load_event("s3_put.json"))
    raw = event["Records"][0]
    assert raw["eventVersion"] == "2.1"
    assert raw["eventName"] == "ObjectCreated:Put"
    assert " " not in raw["s3"]["object"]["key"]
    assert "+" in raw["s3"]["object"]["key"]
    record = S3EventRecord.from_raw(raw_records(event)[0])
    assert (record.key, record.etag, record.size) == (key, "0cc175b9c0f1b6a831c399e269772661", 42)
    assert int(raw["s3"]["object"]["sequencer"], 16) > 0


def test_the_glue_event_has_eventbridges_shape() -> None:
    event = glue_state_change_event("job", "jr_1", "FAILED", "boom")
    assert _shape(event) == _shape(load_event("glue_failed.json"))
    change = GlueJobStateChange.from_event(event)
    assert (change.job_name, change.job_run_id, change.state, change.message, change.severity) == (
        "job", "jr_1", "FAILED", "boom", "ERROR")


def test_ensure_local_job_is_idempotent(aws: str) -> None:
    import boto3

    glue = boto3.client("glue")
    ensure_local_job(glue, "job-a", max_concurrent_runs=2,
                     default_arguments={"--write_share": "0.5"})
    ensure_local_job(glue, "job-a")
    job = glue.get_job(JobName="job-a")["Job"]
    assert job["ExecutionProperty"] == {"MaxConcurrentRuns": 2}
    assert job["DefaultArguments"] == {"--write_share": "0.5"}
    assert job_argv("job-a", "jr_1", {"--x": "1"}) == [
        "--JOB_NAME", "job-a", "--JOB_RUN_ID", "jr_1", "--x", "1"]


class StubJob:
    """Stands in for the Glue job: reads its argv like the job does and writes its run
    report into the ledger; ``failures`` runs fail (with ``error``) before one succeeds."""

    def __init__(self, ledger: Ledger, *, failures: int = 0, error: str = DRIFT,
                 rejected: int = 0, retryable: bool = False) -> None:
        self.ledger = ledger
        self.failures = failures
        self.error = error
        self.retryable = retryable
        self.rejected = rejected
        self.argvs: list[list[str]] = []

    def __call__(self, argv: list[str]) -> int:
        self.argvs.append(argv)
        args = parse_job_arguments(argv)
        run_id = argv[argv.index("--JOB_RUN_ID") + 1]
        source = SourceObject.from_uri(args.source_path, args.source_etag or "")
        self.ledger.job_started(source, run_id)
        failed = len(self.argvs) <= self.failures
        rows = CSV.count(b"\n") - 1
        self.ledger.record_report(source, run_id, {
            "status": "FAILED" if failed else
                      "SUCCEEDED_WITH_REJECTS" if self.rejected else "SUCCEEDED", "rows_read": rows,
            "items_written": 0 if failed else rows - self.rejected,
            "rows_rejected": 0 if failed else self.rejected, "wcu_consumed": float(rows),
            "error": self.error if failed else None, "retryable": self.retryable,
            "rejects_path": args.rejects_path if self.rejected else None})
        return 1 if failed else 0


@pytest.fixture
def flow(aws: str) -> Flow:
    return create_flow()


def _run(flow: Flow, run_job: Callable[[list[str]], int], key: str = "incoming/orders 1.csv",
         aws_environ: dict[str, str] | None = None) -> LocalFlowResult:
    flow.upload(key, CSV)
    return run_local_flow(s3=flow.s3, glue=flow.glue, dynamodb=flow.dynamodb, bucket=BUCKET,
                          key=key, trigger_settings=flow.trigger_settings,
                          callback_settings=flow.callback_settings, run_job=run_job,
                          aws_environ=aws_environ)


def test_the_whole_flow_loads_and_completes_a_file(flow: Flow) -> None:
    job = StubJob(flow.ledger)
    result = _run(flow, job, aws_environ={"AWS_DEFAULT_REGION": "us-east-1"})
    assert result.exit_codes == (0,)
    assert result.file_location == f"s3://{BUCKET}/complete/orders 1.csv"
    assert flow.exists("complete/orders 1.csv")
    assert not flow.exists("incoming/orders 1.csv")
    record = result.record
    assert (record.status, record.rows_read, record.items_written, record.attempts) == (
        LedgerStatus.SUCCEEDED, 3, 3, 1)
    (argv,) = job.argvs
    assert argv[:4] == ["--JOB_NAME", JOB_NAME, "--JOB_RUN_ID", record.job_run_id]
    assert parse_job_arguments(argv).source_path == f"s3://{BUCKET}/incoming/orders 1.csv"
    assert result.callback_results[0]["outcome"] == "succeeded"
    assert flow.sns_messages() == []


def test_a_failed_run_is_retried_and_resumes(flow: Flow) -> None:
    job = StubJob(flow.ledger, failures=1, error="WriteFailedError: throttled", retryable=True)
    result = _run(flow, job)
    assert result.exit_codes == (1, 0)
    assert (result.record.status, result.record.attempts) == (LedgerStatus.SUCCEEDED, 2)
    assert len(result.job_run_ids) == 2
    assert job.argvs[1][3] == result.job_run_ids[1]
    assert all("--restart" not in argv for argv in job.argvs)
    assert [r["outcome"] for r in result.callback_results] == ["retried", "succeeded"]


@pytest.mark.parametrize("retryable", [False, True], ids=["permanent", "transient"])
def test_a_failing_file_ends_in_error_with_an_alert(flow: Flow, retryable: bool) -> None:
    job = StubJob(flow.ledger, failures=99, retryable=retryable)
    result = _run(flow, job)
    # A failure the job calls permanent (drift) repeats on every attempt: it is not retried.
    runs = flow.callback_settings.max_attempts if retryable else 1
    assert len(result.exit_codes) == runs
    assert result.record.status == LedgerStatus.FAILED
    assert DRIFT in (result.record.error or "")
    assert result.file_location == f"s3://{BUCKET}/error/orders 1.csv"
    assert flow.exists("error/orders 1.csv.error.json")
    (alert,) = flow.sns_messages()
    assert DRIFT in alert["message"]["message"]


def test_rejected_rows_end_succeeded_with_rejects(flow: Flow) -> None:
    result = _run(flow, StubJob(flow.ledger, rejected=1))
    assert result.record.status == LedgerStatus.SUCCEEDED_WITH_REJECTS
    assert result.record.rejects_location == f"s3://{BUCKET}/error/orders 1.csv.rejects.csv"
    assert (result.record.items_written, result.record.rows_rejected) == (2, 1)
    assert flow.exists("complete/orders 1.csv")


def test_a_file_outside_incoming_is_an_explicit_error(flow: Flow) -> None:
    with pytest.raises(LocalFlowError, match="started no run"):
        _run(flow, StubJob(flow.ledger), key="elsewhere/orders.csv")
