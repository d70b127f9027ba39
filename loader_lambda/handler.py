"""Lambda entry point: a load request from the trigger (or from a loader handing on its file)
→ load the file with the in-process engine."""

from __future__ import annotations

import logging
import os
from typing import Any

import boto3
from dynamo_ingest.control.load_request import LoadRequest

from loader_lambda.service import Clients, handle_load
from loader_lambda.settings import Settings

LOG = logging.getLogger("loader_lambda")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Load the file the request names; hand it on to a fresh invocation near the deadline."""
    LOG.setLevel(logging.INFO)
    settings = Settings.from_env(os.environ)
    request = LoadRequest.from_event(event)
    clients = Clients(s3=boto3.client("s3"), sns=boto3.client("sns"),
                      lambda_=boto3.client("lambda"))
    return handle_load(request, settings, clients, function_arn=context.invoked_function_arn,
                       remaining_ms=context.get_remaining_time_in_millis)
