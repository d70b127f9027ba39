"""Lambda entry point: S3 ``ObjectCreated`` notifications → the table's queue → loads started
(loader Lambda or Glue job run); also the dispatcher (``{"dispatch": TABLE}`` from the
callback and the loader) and the scheduled sweep."""

from __future__ import annotations

import logging
import os
from typing import Any

import boto3
from dynamo_ingest.control.ledger import Ledger

from trigger_lambda.dispatching import dispatch_request, dispatch_table, is_schedule
from trigger_lambda.errors import JobNotStartedError, MalformedS3EventError
from trigger_lambda.service import handle_event, sweep
from trigger_lambda.settings import Settings

LOG = logging.getLogger("trigger_lambda")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Queue every new object and dispatch; fail the invocation (so Lambda retries it) only
    when a file could not be queued."""
    LOG.setLevel(logging.INFO)
    settings = Settings.from_env(os.environ)
    glue, sns, s3 = boto3.client("glue"), boto3.client("sns"), boto3.client("s3")
    lambda_ = boto3.client("lambda")
    ledger = Ledger(boto3.client("dynamodb"), settings.ledger_table)
    if is_schedule(event):
        return sweep(settings, ledger=ledger, glue=glue, sns=sns, s3=s3,
                     lambda_=lambda_).to_dict()
    if dispatch_request(event) is not None:
        return dispatch_table(settings, ledger=ledger, glue=glue, sns=sns, s3=s3,
                              lambda_=lambda_).to_dict()
    try:
        result = handle_event(event, settings, ledger=ledger, glue=glue, sns=sns, s3=s3,
                              lambda_=lambda_)
    except MalformedS3EventError as err:
        # Not re-raised: a retry delivers the same unparsable event again.
        LOG.error("%s", err)
        return {"outcomes": [], "error": str(err)}
    if result.not_started:
        raise JobNotStartedError(
            "not queued: " + "; ".join(f"{o.file} ({o.detail})" for o in result.not_started)
            + ": this invocation is retried")
    return result.to_dict()
