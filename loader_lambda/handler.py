"""Lambda entry point: a load request from the router → the file loaded in this function."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from typing import Any

import boto3
from dynamo_ingest.control.dispatch import dispatcher_wake
from dynamo_ingest.control.interrupt import Interrupt
from dynamo_ingest.control.ledger import Ledger
from dynamo_ingest.control.load_request import LoadRequest, MalformedLoadRequestError
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.report import RunReport
from dynamo_ingest.load import run_load

from loader_lambda.service import Clients, RunLoad, handle_load
from loader_lambda.settings import Settings

LOG = logging.getLogger("loader_lambda")


def _run_load(args: JobArguments, job_run_id: str, interrupt: Interrupt) -> RunReport:
    """The job's own run with the in-process engine only: this function ships no Spark."""
    return run_load(args, job_run_id=job_run_id, interrupt=interrupt)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Load the requested file; a malformed request is logged and dropped."""
    return handle(event, context, _run_load)


def handle(event: dict[str, Any], context: Any, run: RunLoad) -> dict[str, Any]:
    """The handler's work, the load run by ``run`` (`retry` on a terminal adds its progress
    bar to the same load)."""
    LOG.setLevel(logging.INFO)
    settings = Settings.from_env(os.environ)
    try:
        request = LoadRequest.from_event(event)
    except MalformedLoadRequestError as err:
        # Returned, not raised: Lambda's retries would deliver the same broken request.
        LOG.error("%s", err)
        return {"outcome": "error", "detail": str(err)}
    lambda_ = boto3.client("lambda")
    clients = Clients(s3=boto3.client("s3"), sns=boto3.client("sns"), lambda_=lambda_,
                      dispatch=dispatcher_wake(lambda_, settings.dispatcher_function))
    ledger = Ledger(boto3.client("dynamodb"), settings.ledger_table)
    result = handle_load(request, settings, ledger=ledger, clients=clients, context=context,
                         run_load=run)
    return asdict(result)
