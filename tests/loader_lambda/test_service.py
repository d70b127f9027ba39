"""The loader Lambda on moto: a request delivered as Lambda would (an async Invoke over HTTP,
then the handler with a context), the same finish as a Glue run's, and requests that are not
(or no longer) a load to run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.ledger import LedgerStatus, SourceObject
from dynamo_ingest.control.load_request import LoadRequest

from loader_lambda.handler import handler
from loader_lambda.settings import Settings, SettingsError
from local_aws.lambda_invocations import LambdaInvocations
from local_aws.moto_server import patched_environ
from local_aws.orchestration import LOADER_FUNCTION, LocalLambdaContext, deliver_invocations
from tests.glue_jobs.conftest import create_table, scan_table
from tests.trigger_lambda.support import BUCKET, TARGET_TABLE, Flow, create_flow

CSV = b"order_id,customer\n1,ann\n2,bob\n3,cy\n"
ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{LOADER_FUNCTION}"


@pytest.fixture
def flow(aws: str) -> Flow:
    created = create_flow()
    create_table(TARGET_TABLE, [("order_id", "S", "HASH")])
    return created


@pytest.fixture
def invocations(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaInvocations]:
    with LambdaInvocations() as inbox:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", inbox.url)
        yield inbox


def _settings(flow: Flow, **overrides: Any) -> Settings:
    return Settings(ledger_table=flow.trigger_settings.ledger_table,
                    sns_topic_arn=flow.topic_arn, **overrides)


def _request(source: SourceObject, run_id: str = "lambda-first", **arguments: str) -> LoadRequest:
    return LoadRequest(run_id, {"--source_path": source.uri, "--source_etag": source.etag,
                                "--target_table": TARGET_TABLE, "--partition_key": "order_id",
                                "--ledger_table": "dynamo-ingest-ledger-test", **arguments})


def _invoke(request: LoadRequest) -> None:
    """The router's asynchronous Invoke, to the local endpoint."""
    boto3.client("lambda").invoke(FunctionName=LOADER_FUNCTION, InvocationType="Event",
                                  Payload=request.to_payload())


def _deliver(inbox: LambdaInvocations, settings: Settings) -> list[str]:
    return [r["outcome"] for r in deliver_invocations(inbox, loader_settings=settings,
                                                      aws_environ={})]


def test_a_small_load_ends_like_a_glue_run_in_complete(flow: Flow,
                                                       invocations: LambdaInvocations) -> None:
    source = flow.upload("incoming/a.csv", CSV)
    flow.ledger.receive(source)
    _invoke(_request(source))

    assert _deliver(invocations, _settings(flow)) == ["succeeded"]
    record = flow.ledger.get(source)
    assert record is not None
    assert (record.status, record.engine, record.items_written) == (
        LedgerStatus.SUCCEEDED, "local", 3)
    assert record.file_location == f"s3://{BUCKET}/complete/a.csv"
    assert sorted(scan_table(TARGET_TABLE)) == [("1",), ("2",), ("3",)]
    assert flow.sns_messages() == []


def test_the_jobs_default_arguments_apply_under_the_requests_own(
        flow: Flow, invocations: LambdaInvocations) -> None:
    # As Glue applies a job's DefaultArguments under a run's Arguments: --drop_columns comes
    # from the defaults only, the request's --target_table wins over the default one.
    source = flow.upload("incoming/d.csv", CSV)
    flow.ledger.receive(source)
    _invoke(_request(source))
    defaults = {"--drop_columns": "customer", "--target_table": "no_such_table"}

    assert _deliver(invocations, _settings(flow, job_default_arguments=defaults)) == [
        "succeeded"]
    items = scan_table(TARGET_TABLE)
    assert sorted(items) == [("1",), ("2",), ("3",)]
    assert all(set(item) == {"order_id"} for item in items.values()), items


def test_job_default_arguments_must_be_a_json_object_of_job_arguments() -> None:
    env = {"LEDGER_TABLE": "ledger", "SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}
    assert Settings.from_env({**env, "JOB_DEFAULT_ARGUMENTS": '{"--write_rate": "100"}'}
                             ).job_default_arguments == {"--write_rate": "100"}
    for bad in ("[1]", '{"write_rate": "100"}', '{"--write_rate": 100}', "{"):
        with pytest.raises(SettingsError, match="JOB_DEFAULT_ARGUMENTS expects a JSON object"):
            Settings.from_env({**env, "JOB_DEFAULT_ARGUMENTS": bad})
    settings = Settings(ledger_table="ledger", sns_topic_arn="t",
                        job_default_arguments={"--rename": "a:b"})
    assert Settings.from_env(settings.to_env()) == settings


def test_a_failing_load_is_retried_then_filed_in_error_with_its_report(
        flow: Flow, invocations: LambdaInvocations) -> None:
    source = flow.upload("incoming/b.csv", CSV)
    flow.ledger.receive(source)
    # A catalog table that is not there (yet): a failure another attempt may not meet.
    _invoke(_request(source, **{"--catalog_database": "sales", "--catalog_table": "none"}))

    assert _deliver(invocations, _settings(flow, max_attempts=2)) == ["retried", "failed"]
    record = flow.ledger.get(source)
    assert record is not None
    assert (record.status, record.attempts, len(record.job_run_ids)) == (
        LedgerStatus.FAILED, 2, 2)
    assert record.file_location == f"s3://{BUCKET}/error/b.csv"
    assert flow.exists("error/b.csv")
    assert not flow.exists("incoming/b.csv")
    report = json.loads(flow.s3.get_object(Bucket=BUCKET, Key="error/b.csv.error.json")[
        "Body"].read())
    assert report["engine"] == "local"
    assert report["function_name"] == LOADER_FUNCTION
    assert "catalog table sales.none not found" in report["error"]
    messages = flow.sns_messages()
    assert [m["subject"] for m in messages] == ["dynamo-ingest: load failed"]
    assert messages[0]["message"]["file"] == source.uri


def test_a_redelivered_request_of_a_finished_load_is_ignored(
        flow: Flow, invocations: LambdaInvocations) -> None:
    source = flow.upload("incoming/c.csv", CSV)
    flow.ledger.receive(source)
    request = _request(source)
    _invoke(request)
    _invoke(request)  # Lambda's asynchronous delivery is at least once

    assert _deliver(invocations, _settings(flow)) == ["succeeded", "duplicate"]
    record = flow.ledger.get(source)
    assert record is not None
    assert record.job_run_ids == ("lambda-first",)


def test_a_request_of_a_run_already_handed_on_is_ignored(flow: Flow,
                                                         invocations: LambdaInvocations) -> None:
    source = flow.upload("incoming/d.csv", CSV)
    flow.ledger.receive(source)
    flow.ledger.mark_started(source, "lambda-first", {})
    flow.ledger.mark_retrying(source, "lambda-first", "deadline; continues as lambda-second")
    _invoke(_request(source))

    assert _deliver(invocations, _settings(flow)) == ["duplicate"]
    assert scan_table(TARGET_TABLE) == {}


def test_a_malformed_request_is_dropped_with_the_reason(flow: Flow,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _settings(flow).to_env().items():
        monkeypatch.setenv(key, value)

    result = handler({"arguments": {}}, LocalLambdaContext(LOADER_FUNCTION, "r", ARN))

    assert result["outcome"] == "error"
    assert "job_run_id" in result["detail"]


def test_settings_name_the_variable_that_is_wrong() -> None:
    env = {"LEDGER_TABLE": "l", "SNS_TOPIC_ARN": "arn:t"}
    assert Settings.from_env(env) == Settings("l", "arn:t")
    assert Settings.from_env(Settings("l", "arn:t", max_continuations=3).to_env()) == Settings(
        "l", "arn:t", max_continuations=3)
    with pytest.raises(SettingsError, match="SNS_TOPIC_ARN"):
        Settings.from_env({"LEDGER_TABLE": "l"})
    with pytest.raises(SettingsError, match="DEADLINE_MARGIN_S expects a whole number"):
        Settings.from_env({**env, "DEADLINE_MARGIN_S": "soon"})


def test_the_environment_contract_is_read_with_literal_names() -> None:
    from loader_lambda import settings as loader_settings
    from tests.trigger_lambda.test_settings import _environ_reads

    assert _environ_reads(loader_settings) == {
        "LEDGER_TABLE": None, "SNS_TOPIC_ARN": None, "MAX_ATTEMPTS": "3",
        "MAX_CONTINUATIONS": "20", "DEADLINE_MARGIN_S": "60", "INCOMING_PREFIX": "incoming/",
        "COMPLETE_PREFIX": "complete/", "ERROR_PREFIX": "error/", "DISPATCHER_FUNCTION": "",
        "JOB_DEFAULT_ARGUMENTS": "{}"}
    assert Settings("l", "t").deadline_margin_s == 60


def test_a_finished_load_wakes_the_dispatcher_of_its_table(flow: Flow,
                                                           invocations: LambdaInvocations) -> None:
    # As the callback does for a Glue run: the table's next queued file starts at once.
    source = flow.upload("incoming/a.csv", CSV)
    flow.ledger.receive(source)
    _invoke(_request(source))
    settings = _settings(flow, dispatcher_function="dynamo-ingest-trigger")
    request = invocations.take()
    assert request is not None
    assert invocations.take() is None

    with patched_environ(settings.to_env()):
        result = handler(request.payload, LocalLambdaContext(
            LOADER_FUNCTION, "request-1", f"arn:aws:lambda:us-east-1:000000000000:function:"
                                          f"{LOADER_FUNCTION}"))

    assert result["outcome"] == "succeeded"
    wake = invocations.take()
    assert wake is not None
    assert (wake.function_name, wake.invocation_type, wake.payload) == (
        "dynamo-ingest-trigger", "Event", {"dispatch": TARGET_TABLE})
    assert invocations.take() is None
