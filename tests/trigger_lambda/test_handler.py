"""The trigger handler against moto: one run per new object, never two, never none."""

from __future__ import annotations

from typing import Any

import pytest
from dynamo_ingest.control.ledger import LedgerStatus, SourceObject
from dynamo_ingest.core.arguments import parse_job_arguments

from tests.conftest import load_event
from tests.trigger_lambda.support import (
    BUCKET,
    JOB_NAME,
    Flow,
    create_flow,
    held_glue_runs,
    lambda_environment,
    s3_event,
)
from trigger_lambda.errors import JobNotStartedError
from trigger_lambda.handler import handler


@pytest.fixture
def flow(aws: str) -> Flow:
    return create_flow()


def _invoke(flow: Flow, monkeypatch: pytest.MonkeyPatch, event: dict[str, Any],
            **overrides: str) -> dict[str, Any]:
    with lambda_environment(monkeypatch, {**flow.trigger_settings.to_env(), **overrides}):
        return handler(event, None)


def test_a_new_object_starts_one_run_with_the_job_arguments(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "incoming/2024-05/customer orders (copy 1) c++.csv"
    source = flow.upload(key)
    result = _invoke(flow, monkeypatch, s3_event("s3_put_encoded_key.json", {"0": source.etag}))
    (outcome,) = result["outcomes"]
    assert outcome["outcome"] == "started"
    (run,) = flow.runs()
    assert run["Id"] == outcome["job_run_id"]
    args = parse_job_arguments([x for kv in run["Arguments"].items() for x in kv])
    assert args.source_path == f"s3://{BUCKET}/{key}"
    assert args.source_etag == source.etag
    assert (args.target_table, args.partition_key, args.ledger_table) == (
        "orders", "order_id", flow.trigger_settings.ledger_table)
    assert args.rejects_path == f"s3://{BUCKET}/error/2024-05/customer orders (copy 1) c++.csv" \
        ".rejects.csv"
    # write rate & co. stay with the job's DefaultArguments
    assert "--write_rate" not in run["Arguments"]
    assert "--restart" not in run["Arguments"]
    record = flow.ledger.get(source)
    assert record is not None
    assert (record.status, record.job_run_id, record.attempts) == (
        LedgerStatus.STARTED, run["Id"], 1)
    assert record.arguments == run["Arguments"]


def test_catalog_and_sort_key_settings_reach_the_run(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source = flow.upload("incoming/orders.csv")
    _invoke(flow, monkeypatch, s3_event("s3_put.json", {"0": source.etag}),
            SORT_KEY="line", CATALOG_DATABASE="sales", CATALOG_TABLE="orders_csv")
    (run,) = flow.runs()
    assert {k: run["Arguments"][k] for k in ("--sort_key", "--catalog_database",
                                            "--catalog_table")} == {
        "--sort_key": "line", "--catalog_database": "sales", "--catalog_table": "orders_csv"}


def test_a_duplicate_event_starts_no_second_run(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source = flow.upload("incoming/données/été ☀ 東京.csv")
    event = s3_event("s3_put_unicode_key.json", {"0": source.etag})
    first = _invoke(flow, monkeypatch, event)
    second = _invoke(flow, monkeypatch, event)
    assert [o["outcome"] for o in first["outcomes"] + second["outcomes"]] == [
        "started", "duplicate"]
    assert len(flow.runs()) == 1
    assert flow.ledger.get(source).attempts == 1  # type: ignore[union-attr]


def test_every_record_is_handled_and_others_are_ignored(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    a, bc = flow.upload("incoming/a.csv", b"id\n1\n"), flow.upload("incoming/b c.csv", b"id\n2\n")
    event = s3_event("s3_put_multi_record.json", {"0": a.etag, "1": bc.etag})
    with held_glue_runs(flow.glue.meta.endpoint_url):
        result = _invoke(flow, monkeypatch, event)
    # One file of the table at a time (upload order): the second waits in the queue.
    assert [o["outcome"] for o in result["outcomes"]] == ["started", "queued", "ignored"]
    assert [r["Arguments"]["--source_path"] for r in flow.runs()] == [f"s3://{BUCKET}/incoming/a.csv"]
    assert flow.ledger.get(bc).status == LedgerStatus.QUEUED  # type: ignore[union-attr]
    # A re-delivery queues nothing twice and starts nothing while the first file loads.
    result = _invoke(flow, monkeypatch, event)
    assert [o["outcome"] for o in result["outcomes"]] == ["duplicate", "duplicate", "ignored"]
    assert len(flow.runs()) == 1


@pytest.mark.parametrize("name", ["s3_put_outside_prefix.json", "s3_object_removed.json",
                                  "s3_test_event.json"])
def test_objects_outside_the_prefix_suffix_and_other_events_are_ignored(
        flow: Flow, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    result = _invoke(flow, monkeypatch, load_event(name))
    assert all(o["outcome"] == "ignored" for o in result["outcomes"])
    assert flow.runs() == []
    assert flow.ledger.recent() == []


def test_the_concurrency_limit_keeps_the_file_queued(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    busy, waiting = flow.upload("incoming/a.csv", b"id\n1\n"), flow.upload("incoming/orders.csv")
    event = s3_event("s3_put.json", {"0": waiting.etag})
    with held_glue_runs(flow.glue.meta.endpoint_url):
        flow.glue.start_job_run(JobName=JOB_NAME, Arguments={"--source_path": busy.uri})
        # Back-pressure, not a failure: the invocation succeeds, the file waits, no alert.
        assert _invoke(flow, monkeypatch, event)["outcomes"][0]["outcome"] == "queued"
        record = flow.ledger.get(waiting)
        assert record is not None
        assert record.status == LedgerStatus.QUEUED
        assert "ConcurrentRunsExceededException" in (record.error or "")
        assert flow.sns_messages() == []
        # the callback's dispatch request while Glue is still full: still queued
        assert _invoke(flow, monkeypatch, {"dispatch": "orders"})["requeued"] == [waiting.uri]
    # the busy run finished; the next dispatch (a load's end, or the sweep) starts the file
    assert [f for f, _ in _invoke(flow, monkeypatch, {"dispatch": "orders"})["started"]] == [
        waiting.uri]
    assert _invoke(flow, monkeypatch, event)["outcomes"][0]["outcome"] == "duplicate"
    started = [r for r in flow.runs() if r["Arguments"]["--source_path"] == waiting.uri]
    assert len(started) == 1
    record = flow.ledger.get(waiting)
    assert record is not None
    assert (record.status, record.job_run_id, record.attempts, record.engine) == (
        LedgerStatus.STARTED, started[0]["Id"], 1, "spark")


def test_another_start_failure_alerts_sns_and_fails_the_invocation(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source = flow.upload("incoming/orders.csv")
    event = s3_event("s3_put.json", {"0": source.etag})
    with pytest.raises(JobNotStartedError, match="EntityNotFoundException"):
        _invoke(flow, monkeypatch, event, GLUE_JOB_NAME="no-such-job")
    (alert,) = flow.sns_messages()
    assert alert["message"]["file"] == source.uri
    assert "EntityNotFoundException" in alert["message"]["reason"]
    assert flow.ledger.get(source).status == LedgerStatus.START_FAILED  # type: ignore[union-attr]
    # fixed configuration: the retried invocation starts the file
    assert _invoke(flow, monkeypatch, event)["outcomes"][0]["outcome"] == "started"


def test_a_missing_ledger_table_alerts_and_fails(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    source = flow.upload("incoming/orders.csv")
    with pytest.raises(JobNotStartedError, match="ResourceNotFoundException"):
        _invoke(flow, monkeypatch, s3_event("s3_put.json", {"0": source.etag}),
                LEDGER_TABLE="missing-ledger")
    (alert,) = flow.sns_messages()
    assert alert["message"]["file"] == source.uri
    assert "dynamo-ingest init" in alert["message"]["reason"]
    assert flow.runs() == []


def test_malformed_records_are_reported_not_retried(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    good = flow.upload("incoming/good.csv")
    result = _invoke(flow, monkeypatch, s3_event("s3_malformed_record.json", {"0": good.etag}))
    assert [o["outcome"] for o in result["outcomes"]] == ["started", "malformed"]
    (alert,) = flow.sns_messages()
    assert "s3.object.key" in alert["message"]["reason"]
    broken = _invoke(flow, monkeypatch, load_event("s3_malformed_no_records.json"))
    assert "non-empty Records" in broken["error"]
    assert flow.ledger.get(SourceObject(BUCKET, "incoming/good.csv", good.etag)) is not None
