"""One rule for where a source object's rejects, complete and error files go: the job's
default, the trigger's arguments and the callback's moves all follow
:func:`dynamo_ingest.control.locations.source_locations`."""

from __future__ import annotations

import pytest
from dynamo_ingest.control.locations import (
    BucketFolders,
    default_rejects_path,
    settings_problem,
    source_locations,
)
from dynamo_ingest.core.arguments import parse_job_arguments

from callback_lambda.handler import handler as callback_handler
from local_aws.orchestration import s3_put_event
from tests.trigger_lambda.support import BUCKET, Flow, create_flow, glue_event, lambda_environment
from trigger_lambda.handler import handler as trigger_handler

KEYS = ["incoming/2024/05/orders.csv", "incoming/orders 2024-05-01T10:00:00 [1] #%.csv",
        "incoming/été/-lead.csv"]


def test_a_manual_run_of_a_nested_incoming_file_rejects_into_error_not_incoming() -> None:
    assert default_rejects_path("b", "incoming/2024/05/orders.csv") == (
        "s3://b/error/2024/05/orders.csv.rejects.csv")
    located = source_locations("b", "incoming/2024/05/orders.csv")
    assert (located.complete, located.error) == (
        "s3://b/complete/2024/05/orders.csv", "s3://b/error/2024/05/orders.csv")


@pytest.mark.parametrize("key", ["manual/orders.csv", "orders.csv", "error/orders.csv",
                                 "complete/2024/orders.csv", "x/incoming/orders.csv"])
def test_a_file_outside_incoming_is_not_moved_and_rejects_outside_incoming(key: str) -> None:
    folders = BucketFolders()
    located = source_locations("b", key, folders)
    assert (located.complete, located.error) == (None, None)
    assert located.rejects == f"s3://b/error/{key}.rejects.csv"
    assert not located.rejects.removeprefix("s3://b/").startswith(folders.incoming)


def test_other_folders_are_honoured_everywhere() -> None:
    folders = BucketFolders(incoming="landing/", complete="done/", error="failed/")
    located = source_locations("b", "landing/a/x.csv", folders)
    assert located == type(located)("s3://b/failed/a/x.csv.rejects.csv", "s3://b/done/a/x.csv",
                                    "s3://b/failed/a/x.csv")


@pytest.mark.parametrize(("required", "folders", "known", "problem"), [
    ({"LEDGER_TABLE": "l"}, BucketFolders(), ("incoming", "complete", "error"), None),
    ({"LEDGER_TABLE": "l", "SNS_TOPIC_ARN": ""}, BucketFolders(),
     ("incoming", "complete", "error"), "SNS_TOPIC_ARN must not be empty"),
    ({"LEDGER_TABLE": "l"}, BucketFolders(complete=""), ("incoming", "complete", "error"),
     "COMPLETE_PREFIX must not be empty"),
    ({"LEDGER_TABLE": "l"}, BucketFolders(complete="incoming/done/"),
     ("incoming", "complete", "error"),
     "INCOMING_PREFIX 'incoming/' and COMPLETE_PREFIX 'incoming/done/' overlap: a file "
     "written under one would look like a new upload under the other; use disjoint folders"),
    # a folder the function does not know is not checked: the trigger moves no file
    ({"LEDGER_TABLE": "l"}, BucketFolders(complete=""), ("incoming", "error"), None),
    ({"LEDGER_TABLE": "l"}, BucketFolders(complete="incoming/done/"), ("incoming", "error"),
     None),
    # an empty value is named before an overlap: the empty prefix "contains" every other
    ({"LEDGER_TABLE": "l"}, BucketFolders(error=""), ("incoming", "error"),
     "ERROR_PREFIX must not be empty"),
])
def test_settings_problem_names_an_empty_setting_or_overlapping_folders(
        required: dict[str, str], folders: BucketFolders, known: tuple[str, ...],
        problem: str | None) -> None:
    assert settings_problem(required, folders, known) == problem


def test_a_local_file_rejects_beside_it() -> None:
    assert default_rejects_path("", "/data/in/orders.csv") == (
        "/data/in/rejects/orders.csv.rejects.csv")


@pytest.fixture
def flow(aws: str) -> Flow:
    return create_flow()


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("state", ["glue_succeeded.json", "glue_failed.json"])
def test_the_trigger_and_the_callback_use_the_one_rule(flow: Flow, monkeypatch: pytest.MonkeyPatch,
                                                       key: str, state: str) -> None:
    flow = flow.with_max_attempts(1)
    source = flow.upload(key)
    with lambda_environment(monkeypatch, flow.trigger_settings.to_env()):
        trigger_handler(s3_put_event(BUCKET, key, source.etag, 10), None)
    (run,) = flow.runs()
    arguments = parse_job_arguments([x for kv in run["Arguments"].items() for x in kv])
    located = source_locations(BUCKET, key, flow.callback_settings.folders)
    assert arguments.rejects_path == located.rejects

    flow.ledger.job_started(source, run["Id"])
    failed = state == "glue_failed.json"
    flow.ledger.record_report(source, run["Id"], {
        "status": "FAILED" if failed else "SUCCEEDED", "rows_read": 1,
        "items_written": 0 if failed else 1, "rows_rejected": 0, "wcu_consumed": 1.0,
        "error": "boom" if failed else None, "retryable": True})
    with lambda_environment(monkeypatch, flow.callback_settings.to_env()):
        result = callback_handler(glue_event(state, run["Id"]), None)
    assert result["file_location"] == (located.error if failed else located.complete)
    assert flow.exists(str(result["file_location"]).removeprefix(f"s3://{BUCKET}/"))
