"""The callback handler against moto: complete/, error/, retries, duplicates, alerts."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from dynamo_ingest.control.ledger import LedgerStatus, SourceObject

from callback_lambda.handler import handler
from local_aws.orchestration import s3_put_event
from tests.conftest import load_event
from tests.trigger_lambda.support import (
    BUCKET,
    JOB_NAME,
    Flow,
    create_flow,
    glue_event,
    held_glue_runs,
    lambda_environment,
)
from trigger_lambda.handler import handler as trigger_handler

EXHAUSTED = ("WriteFailedError: 1 partition(s) could not finish: partition 0: throttled "
             "beyond the retry budget")
DRIFT = ("SchemaMismatchError: expected columns [order_id, customer], found "
         "[order_id, customer, currency]")


@pytest.fixture
def flow(aws: str) -> Flow:
    return create_flow()


def _trigger(flow: Flow, monkeypatch: pytest.MonkeyPatch, key: str = "incoming/orders.csv",
             body: bytes = b"order_id,customer\n1,ann\n2,bob\n") -> tuple[SourceObject, str]:
    source = flow.upload(key, body, metadata={"origin": "partner-a"})
    with lambda_environment(monkeypatch, flow.trigger_settings.to_env()):
        trigger_handler(s3_put_event(BUCKET, key, source.etag, len(body)), None)
    record = flow.ledger.get(source)
    assert record is not None
    assert record.job_run_id is not None
    return source, record.job_run_id


def _job(flow: Flow, source: SourceObject, run_id: str, *, error: str | None = None,
         rejected: int = 0, retryable: bool = True) -> None:
    """What the job does in the ledger: register its run, write its report."""
    flow.ledger.job_started(source, run_id)
    flow.ledger.record_report(source, run_id, {"retryable": retryable,
        "status": "FAILED" if error else ("SUCCEEDED_WITH_REJECTS" if rejected else "SUCCEEDED"),
        "rows_read": 2, "items_written": 0 if error else 2 - rejected, "rows_rejected": rejected,
        "duplicate_rows": 0, "wcu_consumed": 2.0, "throttled_retries": 0, "elapsed_s": 1.5,
        "error": error,
        "rejects_path": f"s3://{BUCKET}/error/orders.csv.rejects.csv" if rejected else None})


def _callback(flow: Flow, monkeypatch: pytest.MonkeyPatch, event: dict[str, Any]) -> dict[str, Any]:
    with lambda_environment(monkeypatch, flow.callback_settings.to_env()):
        return handler(event, None)


@pytest.mark.parametrize("name", ["non_glue_event.json", "glue_job_run_status.json",
                                  "glue_other_job.json", "glue_running.json"])
def test_other_events_jobs_and_states_are_ignored(
        flow: Flow, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    source, run_id = _trigger(flow, monkeypatch)
    event = load_event(name)
    if "detail" in event and "jobRunId" in event["detail"]:
        event["detail"]["jobRunId"] = run_id
    assert _callback(flow, monkeypatch, event)["outcome"] == "ignored"
    assert flow.ledger.get(source).status == LedgerStatus.STARTED  # type: ignore[union-attr]
    assert len(flow.runs()) == 1
    assert flow.exists(source.key)


@pytest.mark.parametrize("name", ["glue_malformed_no_detail.json",
                                  "glue_malformed_missing_fields.json"])
def test_a_malformed_event_returns_a_named_error_instead_of_raising(
        flow: Flow, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    result = _callback(flow, monkeypatch, load_event(name))
    assert result["outcome"] == "error"
    assert "expected" in result["detail"]


def test_success_moves_the_file_to_complete_and_records_it(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source, run_id = _trigger(flow, monkeypatch)
    _job(flow, source, run_id)
    result = _callback(flow, monkeypatch, glue_event("glue_succeeded.json", run_id))
    assert (result["outcome"], result["file_location"]) == (
        "succeeded", f"s3://{BUCKET}/complete/orders.csv")
    assert not flow.exists("incoming/orders.csv")
    head = flow.s3.head_object(Bucket=BUCKET, Key="complete/orders.csv")
    assert head["Metadata"] == {"origin": "partner-a"}
    record = flow.ledger.get(source)
    assert record is not None
    assert (record.status, record.items_written, record.file_location) == (
        LedgerStatus.SUCCEEDED, 2, f"s3://{BUCKET}/complete/orders.csv")
    assert flow.sns_messages() == []
    again = _callback(flow, monkeypatch, glue_event("glue_succeeded.json", run_id))
    assert again["outcome"] == "duplicate"
    assert flow.exists("complete/orders.csv")


def test_rejected_rows_end_succeeded_with_rejects_and_alert(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source, run_id = _trigger(flow, monkeypatch)
    _job(flow, source, run_id, rejected=1)
    result = _callback(flow, monkeypatch, glue_event("glue_succeeded.json", run_id))
    assert result["outcome"] == "succeeded_with_rejects"
    record = flow.ledger.get(source)
    assert record is not None
    assert record.status == LedgerStatus.SUCCEEDED_WITH_REJECTS
    assert record.rejects_location == f"s3://{BUCKET}/error/orders.csv.rejects.csv"
    (alert,) = flow.sns_messages()
    assert alert["message"]["rejects_location"] == record.rejects_location
    assert alert["message"]["rows_rejected"] == 1
    assert flow.exists("complete/orders.csv")


def test_a_failed_run_is_retried_with_the_same_arguments(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source, run_id = _trigger(flow, monkeypatch)
    _job(flow, source, run_id, error="WriteFailedError: throttled past the retry budget")
    result = _callback(flow, monkeypatch, glue_event("glue_failed.json", run_id, "boom"))
    assert result["outcome"] == "retried"
    first, second = flow.runs()
    assert second["Id"] == result["new_job_run_id"]
    assert second["Arguments"] == first["Arguments"]
    record = flow.ledger.get(source)
    assert record is not None
    assert (record.status, record.attempts, record.job_run_ids) == (
        LedgerStatus.STARTED, 2, (first["Id"], second["Id"]))
    assert "throttled past the retry budget" in (record.error or "")
    assert flow.exists(source.key)
    # EventBridge delivers the same event again: no third run
    assert _callback(flow, monkeypatch, glue_event("glue_failed.json", run_id))["outcome"] == \
        "duplicate"
    assert len(flow.runs()) == 2


def test_a_manual_restart_run_is_retried_without_restart(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source = flow.upload("incoming/manual.csv")
    run_id = flow.glue.start_job_run(JobName=JOB_NAME, Arguments={
        "--source_path": source.uri, "--target_table": "orders", "--restart": "true"})["JobRunId"]
    _job(flow, source, run_id, error="boom")  # the job found the ETag itself
    result = _callback(flow, monkeypatch, glue_event("glue_failed.json", run_id))
    assert result["outcome"] == "retried"
    retry = flow.runs()[-1]
    assert retry["Arguments"] == {"--source_path": source.uri, "--target_table": "orders"}


def test_retries_exhaust_exactly_at_max_attempts(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source, run_id = _trigger(flow, monkeypatch)
    outcomes = []
    for _ in range(flow.callback_settings.max_attempts):
        _job(flow, source, run_id, error=EXHAUSTED)
        result = _callback(flow, monkeypatch, glue_event("glue_failed.json", run_id, EXHAUSTED))
        outcomes.append(result["outcome"])
        run_id = result.get("new_job_run_id") or run_id
    assert outcomes == ["retried", "retried", "failed"]
    assert len(flow.runs()) == 3
    record = flow.ledger.get(source)
    assert record is not None
    assert (record.status, record.attempts, record.file_location) == (
        LedgerStatus.FAILED, 3, f"s3://{BUCKET}/error/orders.csv")
    assert not flow.exists("incoming/orders.csv")
    assert flow.exists("error/orders.csv")
    report = json.loads(flow.s3.get_object(Bucket=BUCKET, Key="error/orders.csv.error.json")[
        "Body"].read())
    assert EXHAUSTED in report["error"]
    assert report["attempts"] == 3
    assert report["job_run_ids"] == [r["Id"] for r in flow.runs()]
    (alert,) = flow.sns_messages()
    assert alert["subject"] == "dynamo-ingest: load failed"
    assert EXHAUSTED in alert["message"]["message"]
    assert alert["message"]["counts"]["rows_read"] == 2
    assert alert["message"]["error_report"] == f"s3://{BUCKET}/error/orders.csv.error.json"


def test_a_failure_the_job_reports_as_permanent_is_not_retried(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source, run_id = _trigger(flow, monkeypatch)
    _job(flow, source, run_id, error=DRIFT, retryable=False)

    result = _callback(flow, monkeypatch, glue_event("glue_failed.json", run_id, DRIFT))

    assert result["outcome"] == "failed"
    assert len(flow.runs()) == 1  # no second Glue run billed for a failure that would repeat
    record = flow.ledger.get(source)
    assert record is not None
    assert (record.status, record.attempts, record.report_retryable) == (
        LedgerStatus.FAILED, 1, False)
    assert flow.exists("error/orders.csv")
    (alert,) = flow.sns_messages()
    assert DRIFT in alert["message"]["message"]
    assert "not retried" in alert["message"]["error"]
    assert "dynamo-ingest retry" in alert["message"]["error"]


def test_a_retryable_report_of_an_earlier_run_does_not_block_the_retry(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the failed run's own report decides: a run killed before writing one is retried.
    source, run_id = _trigger(flow, monkeypatch)
    _job(flow, source, run_id, error=DRIFT, retryable=False)
    # A later run (say, a manual one after a fix) that died without writing a report.
    later = flow.glue.start_job_run(JobName=JOB_NAME, Arguments={
        "--source_path": source.uri, "--source_etag": source.etag,
        "--target_table": "orders"})["JobRunId"]
    flow.ledger.job_started(source, later)

    result = _callback(flow, monkeypatch, glue_event("glue_failed.json", later))

    assert result["outcome"] == "retried"


@pytest.mark.parametrize("name", ["glue_timeout.json", "glue_stopped.json"])
def test_timeout_and_stopped_are_failures(
        flow: Flow, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    flow = flow.with_max_attempts(1)
    source, run_id = _trigger(flow, monkeypatch)
    flow.ledger.job_started(source, run_id)  # killed before any report
    result = _callback(flow, monkeypatch, glue_event(name, run_id))
    assert result["outcome"] == "failed"
    assert flow.exists("error/orders.csv")
    state = load_event(name)["detail"]["state"]
    assert state in flow.ledger.get(source).error  # type: ignore[union-attr, operator]


def test_a_retry_blocked_by_the_concurrency_limit_waits_in_the_queue(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source, run_id = _trigger(flow, monkeypatch)
    _job(flow, source, run_id, error="boom")
    event = glue_event("glue_failed.json", run_id)
    flow.runs()  # moto settles a run's state when it is read: the failed run is over
    with held_glue_runs(flow.glue.meta.endpoint_url):
        flow.glue.start_job_run(JobName=JOB_NAME, Arguments={"--source_path": "s3://x/other"})
        result = _callback(flow, monkeypatch, event)
    # Back-pressure is no failure: the retry waits, first in its table's queue.
    assert result["outcome"] == "requeued"
    record = flow.ledger.get(source)
    assert record is not None
    assert record.status == LedgerStatus.QUEUED
    assert "ConcurrentRunsExceededException" in (record.error or "")
    assert _callback(flow, monkeypatch, event)["outcome"] == "duplicate"  # a re-delivery
    with lambda_environment(monkeypatch, flow.trigger_settings.to_env()):
        dispatched = trigger_handler({"dispatch": "orders"}, None)
    (started,) = dispatched["started"]
    assert started[0] == source.uri
    assert [r["Id"] for r in flow.runs()][-1] == started[1]
    assert len(flow.runs()) == 3  # first run, the busy one, the retry
    record = flow.ledger.get(source)
    assert record is not None
    assert (record.status, record.attempts) == (LedgerStatus.STARTED, 2)
    assert "--restart" not in record.arguments


def test_two_callbacks_for_one_failure_start_one_retry(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source, run_id = _trigger(flow, monkeypatch)
    _job(flow, source, run_id, error="boom")
    event = glue_event("glue_failed.json", run_id)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def deliver() -> None:
        barrier.wait()
        outcomes.append(handler(event, None)["outcome"])

    with lambda_environment(monkeypatch, flow.callback_settings.to_env()):
        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert sorted(outcomes) == ["duplicate", "retried"]
    assert len(flow.runs()) == 2


def test_events_for_an_older_run_or_an_unknown_file(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source, run_id = _trigger(flow, monkeypatch)
    flow.ledger.job_started(source, "jr_newer")  # e.g. a manual retry took over
    stale = _callback(flow, monkeypatch, glue_event("glue_failed.json", run_id))
    assert stale["outcome"] == "duplicate"
    assert len(flow.runs()) == 1
    orphan = flow.glue.start_job_run(JobName=JOB_NAME, Arguments={
        "--source_path": f"s3://{BUCKET}/incoming/never.csv", "--source_etag": "abc"})["JobRunId"]
    result = _callback(flow, monkeypatch, glue_event("glue_failed.json", orphan))
    assert result["outcome"] == "error"
    assert "no ledger record" in result["detail"]
    (alert,) = flow.sns_messages()
    assert alert["message"]["job_run_id"] == orphan


def test_a_file_outside_incoming_is_left_in_place(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source = flow.upload("manual/orders.csv")
    run_id = flow.glue.start_job_run(JobName=JOB_NAME, Arguments={
        "--source_path": source.uri, "--source_etag": source.etag,
        "--target_table": "orders"})["JobRunId"]
    _job(flow, source, run_id)
    result = _callback(flow, monkeypatch, glue_event("glue_succeeded.json", run_id))
    assert (result["outcome"], result["file_location"]) == ("succeeded", source.uri)
    assert flow.exists("manual/orders.csv")


def test_a_succeeded_run_whose_report_says_failed_is_not_filed_as_loaded(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    flow = flow.with_max_attempts(1)
    source, run_id = _trigger(flow, monkeypatch)
    _job(flow, source, run_id, error="WriteFailedError: 2 rows left unwritten")
    result = _callback(flow, monkeypatch, glue_event("glue_succeeded.json", run_id))
    assert result["outcome"] == "failed"
    assert flow.exists("error/orders.csv")
    assert "2 rows left unwritten" in flow.ledger.get(source).error  # type: ignore[union-attr, operator]
