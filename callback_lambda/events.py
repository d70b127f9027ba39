"""The EventBridge "Glue Job State Change" event as a typed object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from callback_lambda.errors import MalformedGlueEventError

GLUE_SOURCE = "aws.glue"
STATE_CHANGE = "Glue Job State Change"


def is_glue_state_change(event: Mapping[str, Any]) -> bool:
    """True for ``source: aws.glue`` with ``detail-type: Glue Job State Change``."""
    return event.get("source") == GLUE_SOURCE and event.get("detail-type") == STATE_CHANGE


@dataclass(frozen=True)
class GlueJobStateChange:
    """A job run reached a final state (SUCCEEDED, FAILED, TIMEOUT or STOPPED)."""

    job_name: str
    state: str
    job_run_id: str
    message: str
    severity: str | None
    event_id: str | None
    time: str | None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> GlueJobStateChange:
        """Parse the event; :class:`MalformedGlueEventError` names what is missing."""
        detail = event.get("detail")
        if not isinstance(detail, Mapping):
            raise MalformedGlueEventError(
                f"expected a 'detail' object in the {STATE_CHANGE!r} event {event.get('id')!r}, "
                f"found {type(detail).__name__}")
        missing = [name for name in ("jobName", "state", "jobRunId")
                   if not isinstance(detail.get(name), str) or not detail.get(name)]
        if missing:
            raise MalformedGlueEventError(
                f"expected detail.{', detail.'.join(missing)} in the {STATE_CHANGE!r} event "
                f"{event.get('id')!r}, found detail keys {sorted(detail)}")
        return cls(job_name=detail["jobName"], state=detail["state"],
                   job_run_id=detail["jobRunId"], message=str(detail.get("message") or ""),
                   severity=detail.get("severity"), event_id=event.get("id"),
                   time=event.get("time"))
