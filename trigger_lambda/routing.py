"""Where a file loads: the one function that starts a queued file's load.

Every start goes through :func:`start_load`, for the trigger's dispatch, the callback's (via
the dispatcher) and the scheduled sweep. Today it starts the Glue job; the Lambda path for
small files is routed here too.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from dynamo_ingest.control.dispatch import StartOutcome
from dynamo_ingest.control.ledger import LedgerRecord

from trigger_lambda.settings import Settings

LOG = logging.getLogger(__name__)
GLUE_ENGINE = "glue"


def error_text(err: BaseException) -> str:
    """``Code: Message`` of a botocore error, else the exception's name and text."""
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return f"{type(err).__name__}: {err}"


def notify_not_started(sns: Any, settings: Settings, file: str, reason: str) -> None:
    """Tell the topic that a file could not be started (a fault a person fixes)."""
    message = {"event": "dynamo-ingest: load not started", "file": file, "reason": reason,
               "glue_job": settings.glue_job_name, "ledger_table": settings.ledger_table}
    try:
        sns.publish(TopicArn=settings.sns_topic_arn,
                    Subject="dynamo-ingest: a file could not be started",
                    Message=json.dumps(message, ensure_ascii=False, indent=2))
    except (ClientError, BotoCoreError):
        LOG.exception("could not publish to %s: %s", settings.sns_topic_arn, message)


def start_load(record: LedgerRecord, settings: Settings, *, glue: Any,
               sns: Any) -> StartOutcome:
    """Start the load of one claimed file with the arguments its record holds.

    ``ConcurrentRunsExceededException`` is back-pressure, not a fault: ``limited`` (the file
    stays queued, no alert). Any other refusal alerts SNS and is ``failed``."""
    try:
        run_id = str(glue.start_job_run(JobName=settings.glue_job_name,
                                        Arguments=dict(record.arguments))["JobRunId"])
    except (ClientError, BotoCoreError) as err:
        reason = f"glue:StartJobRun failed: {error_text(err)}"
        limited = (isinstance(err, ClientError) and
                   err.response.get("Error", {}).get("Code") == "ConcurrentRunsExceededException")
        if limited:
            return StartOutcome("limited", reason=reason)
        notify_not_started(sns, settings, record.source.uri, reason)
        return StartOutcome("failed", reason=reason)
    return StartOutcome("started", run_id=run_id, engine=GLUE_ENGINE)
