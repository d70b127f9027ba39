"""Lambda entry point: EventBridge "Glue Job State Change" → finish, retry or fail a file."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from typing import Any

import boto3
from dynamo_ingest.control.dispatch import dispatcher_wake
from dynamo_ingest.control.ledger import Ledger

from callback_lambda.errors import MalformedGlueEventError
from callback_lambda.events import GlueJobStateChange, is_glue_state_change
from callback_lambda.service import Clients, handle_state_change
from callback_lambda.settings import Settings

LOG = logging.getLogger("callback_lambda")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Handle one state change of our Glue job; anything else is logged and ignored."""
    LOG.setLevel(logging.INFO)
    settings = Settings.from_env(os.environ)
    if not is_glue_state_change(event):
        LOG.info("ignoring event %s from %s (%s): not a Glue Job State Change", event.get("id"),
                 event.get("source"), event.get("detail-type"))
        return {"outcome": "ignored", "detail": f"source {event.get('source')!r}, detail-type "
                                                f"{event.get('detail-type')!r}"}
    try:
        change = GlueJobStateChange.from_event(event)
    except MalformedGlueEventError as err:
        # Returned, not raised: a retry re-delivers the same broken event, so raising would
        # only loop through Lambda's retries into the DLQ. The log line is the alarm.
        LOG.error("%s", err)
        return {"outcome": "error", "detail": str(err)}
    clients = Clients(glue=boto3.client("glue"), s3=boto3.client("s3"), sns=boto3.client("sns"),
                      dispatch=dispatcher_wake(boto3.client("lambda"),
                                               settings.dispatcher_function))
    ledger = Ledger(boto3.client("dynamodb"), settings.ledger_table)
    return asdict(handle_state_change(change, settings, ledger=ledger, clients=clients))

