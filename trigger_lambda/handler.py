"""Lambda entry point: S3 ``ObjectCreated`` notification → loads started (loader Lambda or
Glue job run)."""

from __future__ import annotations

import logging
import os
from typing import Any

import boto3
from dynamo_ingest.control.ledger import Ledger

from trigger_lambda.errors import JobNotStartedError, MalformedS3EventError
from trigger_lambda.service import handle_event
from trigger_lambda.settings import Settings

LOG = logging.getLogger("trigger_lambda")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Start one load per new object; fail the invocation (so Lambda retries it)
    when a run could not start."""
    LOG.setLevel(logging.INFO)
    settings = Settings.from_env(os.environ)
    glue = boto3.client("glue")
    dynamodb = boto3.client("dynamodb")
    sns = boto3.client("sns")
    lambda_ = boto3.client("lambda")
    try:
        result = handle_event(event, settings, ledger=Ledger(dynamodb, settings.ledger_table),
                              glue=glue, sns=sns, lambda_=lambda_)
    except MalformedS3EventError as err:
        # Not re-raised: a retry delivers the same unparsable event again.
        LOG.error("%s", err)
        return {"outcomes": [], "error": str(err)}
    if result.not_started:
        raise JobNotStartedError(
            "no run started for " + "; ".join(f"{o.file} ({o.detail})" for o in result.not_started)
            + ": the ledger holds them and this invocation is retried")
    return result.to_dict()
