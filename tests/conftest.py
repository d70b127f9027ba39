"""Shared fixtures: one moto server (real HTTP) and one local SparkSession per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_aws.moto_server import ENDPOINT_VARIABLES, MotoServer, local_environment

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
    from dynamo_ingest.runtime import local_spark_session

    session = local_spark_session(app_name="dynamo-ingest-tests", shuffle_partitions=4)
    yield session
    session.stop()
    os.environ.pop("PYSPARK_SUBMIT_ARGS", None)
