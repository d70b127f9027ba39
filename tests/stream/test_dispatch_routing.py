"""The dispatcher starts a queued file through the one routing: a small file goes to the
loader Lambda (lambda:InvokeFunction, asynchronous), a bigger one to a Glue run, and the
ledger records the engine that took it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest
from dynamo_ingest.control.ledger import LedgerStatus, SourceObject

from local_aws.lambda_invocations import LambdaInvocations
from local_aws.orchestration import LOADER_FUNCTION, s3_put_event
from tests.stream.support import BUCKET, JOB, deploy
from trigger_lambda.service import handle_event

SMALL_FILE_BYTES = 100


@pytest.fixture
def invocations(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaInvocations]:
    with LambdaInvocations() as inbox:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", inbox.url)
        yield inbox


def test_a_queued_small_file_starts_in_the_loader_lambda_and_a_big_one_in_glue(
        aws: str, invocations: LambdaInvocations) -> None:
    deployment = deploy(max_concurrent_runs=5, upload_order="parallel")
    settings = replace(deployment.trigger, loader_function=LOADER_FUNCTION,
                       small_file_bytes=SMALL_FILE_BYTES)
    bodies = {"incoming/small.csv": b"orderId,source\ns1,x\n",
              "incoming/big.csv": b"orderId,source\n" + b"".join(
                  f"b{i:03d},{'y' * 20}\n".encode() for i in range(10))}
    records, sources = [], {}
    for key, body in bodies.items():
        etag = str(deployment.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"])
        sources[key] = SourceObject(BUCKET, key, etag)
        records += s3_put_event(BUCKET, key, etag.strip('"'), len(body))["Records"]

    result = handle_event({"Records": records}, settings, ledger=deployment.ledger,
                          glue=deployment.glue, sns=boto3.client("sns"), s3=deployment.s3,
                          lambda_=boto3.client("lambda"))

    assert sorted(o.outcome for o in result.outcomes) == ["started", "started"]
    small = deployment.ledger.get(sources["incoming/small.csv"])
    big = deployment.ledger.get(sources["incoming/big.csv"])
    assert small is not None
    assert big is not None
    assert (small.status, small.engine) == (LedgerStatus.STARTED, "local")
    assert (big.status, big.engine) == (LedgerStatus.STARTED, "spark")
    invocation = invocations.take()
    assert invocation is not None
    assert invocation.function_name == LOADER_FUNCTION
    assert invocation.payload["arguments"]["--source_path"] == small.source.uri
    assert invocation.payload["job_run_id"] == small.job_run_id
    assert invocations.take() is None
    runs = deployment.glue.get_job_runs(JobName=JOB)["JobRuns"]
    assert [(r["Id"], r["Arguments"]["--source_path"]) for r in runs] == [
        (big.job_run_id, big.source.uri)]
