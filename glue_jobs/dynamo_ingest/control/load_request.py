"""The loader Lambda's invocation payload: written by the router (trigger, dispatcher) and by
a loader handing its file on to a fresh invocation, read by the loader. One shape, here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from dynamo_ingest.core.errors import DynamoIngestError

LAMBDA_RUN_PREFIX = "lambda-"


class MalformedLoadRequestError(DynamoIngestError):
    """A loader invocation's payload lacks a field the router always sends."""

    retryable = False


def new_lambda_run_id() -> str:
    """A run id for a load in the loader Lambda (Glue names its runs ``jr_…``)."""
    return f"{LAMBDA_RUN_PREFIX}{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class LoadRequest:
    """Load one file with the in-process engine as run ``job_run_id``.

    ``arguments`` are the job's (Glue's ``--name`` form, as StartJobRun would pass them);
    ``attempt`` counts runs after failures (like the callback's Glue retries) and
    ``continuation`` the fresh invocations a load needed because it neared the deadline.
    """

    job_run_id: str
    arguments: Mapping[str, str]
    attempt: int = 1
    continuation: int = 0

    @property
    def source_path(self) -> str:
        """The file's ``s3://`` URI."""
        return self.arguments["--source_path"]

    def handed_on(self, *, continuation: bool) -> LoadRequest:
        """The request of the next run of this file: a continuation (the deadline came
        first) or a retry (the run failed in a way another may not)."""
        return replace(self, job_run_id=new_lambda_run_id(),
                       attempt=self.attempt + (0 if continuation else 1),
                       continuation=self.continuation + (1 if continuation else 0))

    def to_payload(self) -> bytes:
        """The ``Payload`` of ``lambda:Invoke``."""
        return json.dumps({"job_run_id": self.job_run_id, "arguments": dict(self.arguments),
                           "attempt": self.attempt, "continuation": self.continuation},
                          ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> LoadRequest:
        """Parse the event the loader receives; :class:`MalformedLoadRequestError` names
        what is missing."""
        arguments = event.get("arguments")
        run_id = event.get("job_run_id")
        if (not isinstance(run_id, str) or not run_id or not isinstance(arguments, Mapping)
                or not arguments.get("--source_path")):
            raise MalformedLoadRequestError(
                "expected a load request with job_run_id and arguments holding --source_path, "
                f"found keys {sorted(event)}; the router (trigger_lambda.routing) sends it")
        try:
            return cls(run_id, {str(k): str(v) for k, v in arguments.items()},
                       int(event.get("attempt", 1)), int(event.get("continuation", 0)))
        except (TypeError, ValueError) as err:
            raise MalformedLoadRequestError(
                f"expected whole numbers for attempt and continuation, found "
                f"{event.get('attempt')!r} and {event.get('continuation')!r}") from err
