"""Shared fixtures: one moto server (real HTTP) and one local SparkSession per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from local_aws.moto_server import ENDPOINT_VARIABLES, MotoServer, local_environment

if TYPE_CHECKING:
    from dynamo_ingest_cli.local_flow import LocalDeployment

EVENTS_DIR = Path(__file__).parent / "events"


def load_event(name: str) -> dict:  # type: ignore[type-arg]
    """A raw AWS event kept as JSON under ``tests/events/``."""
    import json

    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A moto server child process for the whole session; always stopped at the end."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point every boto3 client at a freshly reset moto server; yields the endpoint URL."""
    moto_server.reset()
    for name in ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for key, value in local_environment(moto_server.url).items():
        monkeypatch.setenv(key, value)
    yield moto_server.url
    moto_server.reset()


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One local SparkSession (2 cores) for the whole test session."""
    from dynamo_ingest.spark.runtime import local_spark_session

    session = local_spark_session(app_name="dynamo-ingest-tests", shuffle_partitions=4)
    yield session
    session.stop()
    os.environ.pop("PYSPARK_SUBMIT_ARGS", None)


def deploy_local_flow() -> LocalDeployment:
    """What Terraform would create for the event flow, on the test's moto server: the bucket,
    catalog database, target table (key ``orderId``), ledger, topic and a one-run Glue job."""
    import boto3

    from dynamo_ingest_cli.local_flow import LocalDeployment, ensure_topic
    from local_aws.orchestration import ensure_local_job
    from local_aws.resources import ensure_resources

    deployment = LocalDeployment(topic_arn=ensure_topic(boto3.client("sns")))
    ensure_resources(bucket=deployment.bucket, database=deployment.database,
                     target_table=deployment.target_table,
                     partition_key=(deployment.partition_key, "S"), sort_key=None,
                     ledger_table=deployment.ledger_table)
    ensure_local_job(boto3.client("glue"), deployment.job_name, max_concurrent_runs=1)
    return deployment
