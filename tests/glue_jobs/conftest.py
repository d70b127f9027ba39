"""Fixtures for job tests: a target table and catalog on moto, and a runner on local Spark."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.checkpoints import Checkpoint
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.catalog import Column, CsvSchema
from dynamo_ingest.core.report import RunReport
from dynamo_ingest.spark.runtime import Runtime

from local_aws.dynamodb_double import DynamoDBDouble, FaultPlan

TABLE = "orders"
DATABASE = "sales"
CATALOG_TABLE = "orders_csv"


@contextmanager
def dynamodb_double(upstream: str, plan: FaultPlan,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoDBDouble]:
    """The AWS-like double in front of moto, with the job's DynamoDB endpoint pointed at it."""
    with DynamoDBDouble(upstream, plan) as double:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", double.url)
        try:
            yield double
        finally:
            # The variable must not outlive the double: later clients would dial a dead port.
            monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")


@dataclass
class MemoryCheckpoints:
    """The ledger's checkpoints of one file; like the ledger, a checkpoint never moves back."""

    saved: dict[int, Checkpoint] = field(default_factory=dict)

    def load(self, partition: int) -> Checkpoint | None:
        return self.saved.get(partition)

    def save(self, partition: int, checkpoint: Checkpoint) -> None:
        current = self.saved.get(partition)
        if current is None or current.positions_done <= checkpoint.positions_done:
            self.saved[partition] = checkpoint


def create_table(name: str, keys: list[tuple[str, str, str]], **extra: Any) -> None:
    """Create a DynamoDB table on the current endpoint: keys = (name, type, HASH|RANGE)."""
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": n, "KeyType": k} for n, _, k in keys],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t, _ in keys],
        BillingMode=extra.pop("BillingMode", "PAY_PER_REQUEST"), **extra)


def scan_table(name: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """Every item of a table keyed by its key attribute values (small tables only)."""
    client = boto3.client("dynamodb")
    keys = [k["AttributeName"] for k in client.describe_table(TableName=name)["Table"]["KeySchema"]]
    items: dict[tuple[str, ...], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=name):
        for item in page["Items"]:
            items[tuple(next(iter(item[k].values())) for k in keys)] = item
    return items


def read_rejects(path: str | Path) -> list[list[str]]:
    """The rejects CSV's rows (header first)."""
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        return list(csv.reader(handle))


def register_catalog(columns: list[tuple[str, str]], location: str = "s3://bucket/schema/") -> None:
    """Register the crawled catalog table the job reads its schema from."""
    from crawlers.local_crawler import register_table

    schema = CsvSchema(tuple(Column(n, t) for n, t in columns))
    register_table(boto3.client("glue"), DATABASE, CATALOG_TABLE, schema, location)


@pytest.fixture
def run_job(aws: str, spark: Any) -> Callable[..., RunReport]:
    """Run the job on local Spark against moto with JobArguments given as keywords."""
    from dynamo_ingest.job import run

    def runner(**kwargs: Any) -> RunReport:
        kwargs.setdefault("target_table", TABLE)
        return run(JobArguments(**kwargs), Runtime(spark=spark))

    return runner
