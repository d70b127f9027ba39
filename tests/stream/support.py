"""What the stream tests share: a deployment on the test's moto server driven by
:class:`local_aws.stream_flow.StreamFlow`, small CSV files with overlapping keys, and the
table that applying the good files one after another in upload order gives."""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from dynamo_ingest.control.ledger import Ledger

from callback_lambda.settings import Settings as CallbackSettings
from dynamo_ingest_cli.flow import QuietJobRunner
from dynamo_ingest_cli.local_flow import ensure_topic
from loader_lambda.settings import Settings as LoaderSettings
from local_aws.glue_runs import ConcurrentGlue
from local_aws.lambda_invocations import LambdaInvocations
from local_aws.orchestration import LOADER_FUNCTION, LoaderContext, ensure_local_job
from local_aws.resources import ensure_resources
from local_aws.s3_events import DeliveryPlan
from local_aws.stream_flow import DISPATCHER_FUNCTION, StreamFlow
from trigger_lambda.settings import Settings as TriggerSettings

BUCKET = "stream-landing"
TABLE = "stream_orders"
LEDGER = "stream-ledger"
JOB = "stream-load"
KEY = "orderId"


@contextmanager
def one_core() -> Iterator[None]:
    """Run the in-process engine with the one worker a single core gives it (threads, not
    spawned processes): small files load in a fraction of the start-up of two processes."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@dataclass(frozen=True)
class StreamDeployment:
    """The deployment's clients and settings."""

    s3: Any
    glue: Any
    dynamodb: Any
    ledger: Ledger
    trigger: TriggerSettings
    callback: CallbackSettings
    loader: LoaderSettings

    @contextmanager
    def flow(self, *, seed: int = 0, duplicate_share: float = 0.3,
             loader_context: LoaderContext | None = None) -> Iterator[StreamFlow]:
        """A flow over this deployment, its Glue runs limited like Glue, with Lambda's Invoke
        endpoint running."""
        with LambdaInvocations() as invocations:
            yield StreamFlow(
                s3=self.s3, glue=ConcurrentGlue(self.glue), sns=boto3.client("sns"),
                ledger=self.ledger, bucket=BUCKET, trigger_settings=self.trigger,
                callback_settings=self.callback, run_job=QuietJobRunner(),
                invocations=invocations, loader_settings=self.loader,
                loader_context=loader_context,
                delivery=DeliveryPlan(duplicate_share=duplicate_share, seed=seed))

    def table(self) -> dict[str, dict[str, str]]:
        """The target table's items as plain text values, by key."""
        items: dict[str, dict[str, str]] = {}
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=TABLE):
            for item in page["Items"]:
                plain = {k: next(iter(v.values())) for k, v in item.items()}
                items[plain[KEY]] = plain
        return items

    def incoming(self) -> list[str]:
        """Keys still under incoming/."""
        page = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="incoming/")
        return [o["Key"] for o in page.get("Contents", [])]


def deploy(*, max_concurrent_runs: int = 2, upload_order: str = "serial",
           default_arguments: dict[str, str] | None = None,
           small_file_bytes: int | None = None) -> StreamDeployment:
    """What Terraform creates, on the moto server the ``aws`` fixture points at; with
    ``small_file_bytes``, the loader function takes the files under it."""
    topic = ensure_topic(boto3.client("sns"), "stream-alerts")
    ensure_resources(bucket=BUCKET, database="stream", target_table=TABLE,
                     partition_key=(KEY, "S"), sort_key=None, ledger_table=LEDGER)
    glue = boto3.client("glue")
    job_defaults = {"--engine": "local", **(default_arguments or {})}
    ensure_local_job(glue, JOB, max_concurrent_runs=max_concurrent_runs,
                     default_arguments=job_defaults)
    trigger = TriggerSettings(glue_job_name=JOB, ledger_table=LEDGER, target_table=TABLE,
                              partition_key=KEY, sns_topic_arn=topic, source_bucket=BUCKET,
                              upload_order=upload_order, table_max_loads=3,
                              # Every event is delivered here: the sweep must never queue an
                              # upload itself because the machine was slow (its own test
                              # moves the clock instead).
                              sweep_grace_s=3600.0,
                              loader_function="" if small_file_bytes is None else LOADER_FUNCTION,
                              small_file_bytes=small_file_bytes or 0)
    callback = CallbackSettings(glue_job_name=JOB, ledger_table=LEDGER, sns_topic_arn=topic)
    loader = LoaderSettings(ledger_table=LEDGER, sns_topic_arn=topic,
                            dispatcher_function=DISPATCHER_FUNCTION,
                            job_default_arguments=job_defaults)
    dynamodb = boto3.client("dynamodb")
    return StreamDeployment(boto3.client("s3"), glue, dynamodb, Ledger(dynamodb, LEDGER),
                            trigger, callback, loader)


def write_files(directory: Path, count: int, *, rows: int = 40, stride: int = 25,
                bad: int | None = None, long: Mapping[int, int] | None = None) -> list[Path]:
    """``count`` files; file i holds keys i*stride … i*stride+rows-1 (so neighbours overlap
    when rows > stride) with the file's number as the value; ``long`` gives some files more
    rows (by file number). File ``bad`` lacks the key column: its load fails for good."""
    paths = []
    for i in range(count):
        path = directory / f"batch-{i:02d}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["customer" if i == bad else KEY, "source", "line"])
            for j in range((long or {}).get(i, rows)):
                writer.writerow([f"k{i * stride + j:05d}", f"file-{i:02d}", str(j)])
        paths.append(path)
    return paths


def applied_in_order(paths: Sequence[Path]) -> dict[str, dict[str, str]]:
    """The table that applying ``paths`` one after another gives (a later file wins per key)."""
    table: dict[str, dict[str, str]] = {}
    for path in paths:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                table[row[KEY]] = dict(row)
    return table


def at_once(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` in ``count`` threads released together (a barrier, not timing);
    their results in thread order."""
    barrier = threading.Barrier(count, timeout=60)
    results: list[Any] = [None] * count

    def go(i: int) -> None:
        barrier.wait()
        results[i] = action(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
