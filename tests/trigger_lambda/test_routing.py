"""Routing a new file: the loader Lambda under the threshold, Glue above it, one function."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from dynamo_ingest.control.load_request import LoadRequest

from local_aws.lambda_invocations import LambdaInvocations
from tests.trigger_lambda.support import JOB_NAME, create_flow
from trigger_lambda.routing import (
    Routing,
    choose_engine,
    estimated_bytes,
    start_load,
)

ROUTING = Routing(JOB_NAME, loader_function="dynamo-ingest-loader", small_file_bytes=1000)
ARGUMENTS = {"--source_path": "s3://b/incoming/a.csv", "--source_etag": "e1",
             "--target_table": "orders", "--partition_key": "order_id"}


@pytest.fixture
def invocations(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaInvocations]:
    with LambdaInvocations() as inbox:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", inbox.url)
        yield inbox


def test_the_threshold_decides_and_a_compressed_object_counts_as_its_estimate() -> None:
    assert choose_engine(999, ROUTING) == "local"
    assert choose_engine(1000, ROUTING) == "spark"
    assert choose_engine(None, ROUTING) == "spark"  # unknown size: Glue copes with any
    assert choose_engine(10, Routing(JOB_NAME)) == "spark"  # no loader function deployed
    assert estimated_bytes("incoming/a.csv", 200) == 200
    assert estimated_bytes("incoming/a.CSV.GZ", 200) == 1600
    assert choose_engine(estimated_bytes("incoming/a.csv.gz", 200), ROUTING) == "spark"


def test_a_small_file_is_handed_to_the_loader_asynchronously(
        aws: str, invocations: LambdaInvocations) -> None:
    started = start_load("incoming/a.csv", 999, ARGUMENTS, ROUTING, glue=boto3.client("glue"),
                         lambda_=boto3.client("lambda"))

    assert started.engine == "local"
    (invocation,) = invocations.received
    assert (invocation.function_name, invocation.invocation_type) == (
        "dynamo-ingest-loader", "Event")
    request = LoadRequest.from_event(invocation.payload)
    assert request == LoadRequest(started.job_run_id, ARGUMENTS)
    assert json.loads(request.to_payload())["continuation"] == 0


def test_a_big_file_starts_a_glue_run(aws: str, invocations: LambdaInvocations) -> None:
    flow = create_flow()

    started = start_load("incoming/a.csv", 1000, ARGUMENTS, ROUTING, glue=flow.glue,
                         lambda_=boto3.client("lambda"))

    assert started.engine == "spark"
    assert [r["Id"] for r in flow.runs()] == [started.job_run_id]
    assert flow.runs()[0]["Arguments"] == ARGUMENTS
    assert invocations.received == []
