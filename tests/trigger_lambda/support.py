"""What the trigger, callback and orchestration tests share: the flow's resources on the moto
server (bucket, ledger, Glue job, SNS topic read through an SQS queue), events from
``tests/events`` pointed at them, and moto's state manager holding Glue runs RUNNING."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import boto3
from dynamo_ingest.control.ledger import Ledger, SourceObject

from callback_lambda.settings import Settings as CallbackSettings
from local_aws.orchestration import ensure_local_job
from tests.conftest import load_event
from trigger_lambda.settings import Settings as TriggerSettings

BUCKET = "dynamo-ingest-landing"  # the bucket named in tests/events/s3_*.json
JOB_NAME = "dynamo-ingest-load"  # the job named in tests/events/glue_*.json
LEDGER_TABLE = "dynamo-ingest-ledger-test"
TARGET_TABLE = "orders"


@dataclass(frozen=True)
class Flow:
    """The resources of one test's flow and the clients that reach them."""

    s3: Any
    glue: Any
    dynamodb: Any
    sns: Any
    sqs: Any
    topic_arn: str
    queue_url: str
    ledger: Ledger
    trigger_settings: TriggerSettings
    callback_settings: CallbackSettings

    def upload(self, key: str, body: bytes = b"order_id,customer\n1,ann\n",
               metadata: dict[str, str] | None = None) -> SourceObject:
        """Put an object and return its identity (with the ETag S3 gave it)."""
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=metadata or {},
                           ContentType="text/csv")
        head = self.s3.head_object(Bucket=BUCKET, Key=key)
        return SourceObject(BUCKET, key, str(head["ETag"]))

    def exists(self, key: str) -> bool:
        """True when ``key`` is in the bucket."""
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
        return any(o["Key"] == key for o in listed)

    def runs(self) -> list[dict[str, Any]]:
        """Every run of the job moto knows, oldest first."""
        return list(self.glue.get_job_runs(JobName=JOB_NAME)["JobRuns"])

    def sns_messages(self) -> list[dict[str, Any]]:
        """Every SNS message published so far (drained from the subscribed queue)."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=0).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                envelope = json.loads(message["Body"])
                messages.append({"subject": envelope.get("Subject"),
                                 "message": json.loads(envelope["Message"])})
                self.sqs.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=message["ReceiptHandle"])

    def with_max_attempts(self, max_attempts: int) -> Flow:
        """The same flow with another MAX_ATTEMPTS for the callback."""
        return replace(self, callback_settings=replace(self.callback_settings,
                                                       max_attempts=max_attempts))


def create_flow(max_concurrent_runs: int = 1, max_attempts: int = 3) -> Flow:
    """Create the flow's resources on the moto server the ``aws`` fixture points at."""
    s3, glue, dynamodb = boto3.client("s3"), boto3.client("glue"), boto3.client("dynamodb")
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    ledger = Ledger(dynamodb, LEDGER_TABLE)
    ledger.ensure_table()
    ensure_local_job(glue, JOB_NAME, max_concurrent_runs=max_concurrent_runs)
    topic_arn = sns.create_topic(Name="dynamo-ingest-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="dynamo-ingest-alerts-reader")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    trigger = TriggerSettings(glue_job_name=JOB_NAME, ledger_table=LEDGER_TABLE,
                              target_table=TARGET_TABLE, partition_key="order_id",
                              sns_topic_arn=topic_arn)
    callback = CallbackSettings(glue_job_name=JOB_NAME, ledger_table=LEDGER_TABLE,
                                sns_topic_arn=topic_arn, max_attempts=max_attempts)
    return Flow(s3=s3, glue=glue, dynamodb=dynamodb, sns=sns, sqs=sqs, topic_arn=topic_arn,
                queue_url=queue_url, ledger=ledger, trigger_settings=trigger,
                callback_settings=callback)


def s3_event(name: str, etags: dict[str, str] | None = None) -> dict[str, Any]:
    """``tests/events/<name>`` with each record's eTag replaced by the real one (by
    record index), so the event names objects that exist."""
    event = load_event(name)
    for index, etag in (etags or {}).items():
        event["Records"][int(index)]["s3"]["object"]["eTag"] = etag.strip('"')
    return event


def glue_event(name: str, job_run_id: str, message: str | None = None) -> dict[str, Any]:
    """``tests/events/<name>`` about run ``job_run_id``."""
    event = load_event(name)
    event["detail"]["jobRunId"] = job_run_id
    if message is not None:
        event["detail"]["message"] = message
    return event


def _moto_api(endpoint: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/state-manager/{path}", method="POST",
                                     data=json.dumps(body).encode("utf-8"))
    with urllib.request.urlopen(request, timeout=10):
        pass


@contextmanager
def held_glue_runs(endpoint: str) -> Iterator[None]:
    """Keep every Glue run STARTING (moto's manual state progression) so MaxConcurrentRuns
    applies, like runs that are still going in AWS; released on exit."""
    _moto_api(endpoint, "set-transition", {"model_name": "glue::job_run",
                                           "transition": {"progression": "manual",
                                                          "times": 1_000_000}})
    try:
        yield
    finally:
        _moto_api(endpoint, "unset-transition", {"model_name": "glue::job_run"})


@contextmanager
def lambda_environment(monkeypatch: Any, env: dict[str, str]) -> Iterator[None]:
    """Set a Lambda's variables for a handler call (the ``aws`` fixture's endpoint stays)."""
    with monkeypatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield
