"""EventBridge events from tests/events → typed state changes."""

from __future__ import annotations

import pytest

from callback_lambda.errors import MalformedGlueEventError
from callback_lambda.events import GlueJobStateChange, is_glue_state_change
from tests.conftest import load_event


@pytest.mark.parametrize(("name", "state", "severity"), [
    ("glue_succeeded.json", "SUCCEEDED", "INFO"), ("glue_failed.json", "FAILED", "ERROR"),
    ("glue_timeout.json", "TIMEOUT", "WARN"), ("glue_stopped.json", "STOPPED", "INFO"),
    ("glue_running.json", "RUNNING", "INFO"), ("glue_other_job.json", "FAILED", "ERROR"),
])
def test_state_changes_parse(name: str, state: str, severity: str) -> None:
    event = load_event(name)
    assert is_glue_state_change(event)
    change = GlueJobStateChange.from_event(event)
    assert (change.state, change.severity) == (state, severity)
    assert change.job_run_id.startswith("jr_")
    assert change.message
    assert change.event_id == event["id"]


@pytest.mark.parametrize("name", ["non_glue_event.json", "glue_job_run_status.json"])
def test_other_events_are_not_state_changes(name: str) -> None:
    assert not is_glue_state_change(load_event(name))


@pytest.mark.parametrize(("name", "match"), [
    ("glue_malformed_no_detail.json", "expected a 'detail' object"),
    ("glue_malformed_missing_fields.json", "detail.state, detail.jobRunId"),
])
def test_malformed_events_name_what_is_missing(name: str, match: str) -> None:
    with pytest.raises(MalformedGlueEventError, match=match):
        GlueJobStateChange.from_event(load_event(name))
