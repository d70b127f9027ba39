"""The job against dynalite, a second DynamoDB implementation (Node.js, installed by `make
test` into local_aws/dynalite/): the lean HTTP transport, the conditional writer and the
ledger must work against a server that is not moto. Like AWS, dynalite normalises numbers
(``172.50`` is stored as ``172.5``) and reports real ``ConsumedCapacity``."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from dynamo_ingest_cli.datagen import generate_csv
from local_aws.moto_server import free_port, stop_process
from tests.glue_jobs.conftest import TABLE, create_table, read_rejects, scan_table

pytestmark = pytest.mark.spark

DYNALITE = Path(__file__).resolve().parents[2] / "local_aws/dynalite/node_modules/.bin/dynalite"


def dynalite_missing() -> str | None:
    """Why dynalite cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm), so dynalite cannot run"
    if not DYNALITE.exists():
        return f"{DYNALITE} is missing: `make test` installs it with npm"
    return None


@pytest.fixture
def dynalite(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A dynalite server for DynamoDB (S3, Glue and the rest stay on moto)."""
    reason = dynalite_missing()
    if reason:
        pytest.skip(reason)
    port = free_port()
    process = subprocess.Popen(
        [str(DYNALITE), "--port", str(port), "--createTableMs", "0", "--deleteTableMs", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"dynalite exited with code {process.returncode}"
            try:
                boto3.client("dynamodb").list_tables()
                break
            except EndpointConnectionError:
                assert time.monotonic() < deadline, f"dynalite did not answer on {url}"
                time.sleep(0.05)
        yield url
    finally:
        monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")
        stop_process(process)


def test_a_file_loads_exactly_into_dynalite(dynalite: str, run_job: Any,
                                            tmp_path: Path) -> None:
    create_table(TABLE, [("orderId", "S", "HASH")])
    source = generate_csv(tmp_path / "orders.csv", 3000, duplicate_every=300, bad_every=500)

    report = run_job(source_path=str(source.path), partitions=4, checkpoint_every=2)

    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert report.counts.identity_holds
    expected = source.expected_items(numbers="canonical")
    assert report.counts.items_written == len(expected)
    assert report.counts.rows_rejected == len(source.expected_rejects)
    assert report.counts.duplicate_rows == source.expected_duplicates
    assert scan_table(TABLE) == expected
    # dynalite's ConsumedCapacity is AWS's rule (moto's is not): it equals our own sizing.
    assert report.counts.wcu_consumed == report.counts.wcu_estimated


def test_conditional_modes_against_dynalite(dynalite: str, run_job: Any,
                                            tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    client = boto3.client("dynamodb")
    client.put_item(TableName=TABLE, Item={"id": {"S": "1"}, "v": {"S": "old"},
                                           "kept": {"S": "yes"}, "version": {"N": "5"}})
    first = tmp_path / "insert.csv"
    first.write_text("id,v,version\n1,new,6\n2,new,1\n", encoding="utf-8")
    second = tmp_path / "merge.csv"
    second.write_text("id,v,version\n1,merged,4\n3,merged,1.50\n", encoding="utf-8")

    inserted = run_job(source_path=str(first), write_mode="insert")
    # 1.50 is not kept as written, so the crawled column is text; an explicit N accepts that
    # DynamoDB stores it as 1.5.
    guarded = run_job(source_path=str(second), write_mode="merge", version_column="version",
                      column_types="version:N")

    assert inserted.status == "SUCCEEDED", inserted.error
    assert inserted.counts.items_skipped_existing == 1
    assert guarded.status == "SUCCEEDED", guarded.error
    assert guarded.counts.items_skipped_stale == 1  # version 4 is older than the stored 5
    assert inserted.counts.identity_holds
    assert guarded.counts.identity_holds
    assert scan_table(TABLE) == {
        ("1",): {"id": {"S": "1"}, "v": {"S": "old"}, "kept": {"S": "yes"},
                 "version": {"N": "5"}},
        ("2",): {"id": {"S": "2"}, "v": {"S": "new"}, "version": {"N": "1"}},
        ("3",): {"id": {"S": "3"}, "v": {"S": "merged"}, "version": {"N": "1.5"}}}


def test_index_keys_are_typed_as_the_indexes_declare(dynalite: str, run_job: Any,
                                                     tmp_path: Path) -> None:
    """dynalite, like AWS, refuses an index key of another type ("Type mismatch for Index
    Key") and so the whole BatchWriteItem holding it; moto accepts any type there."""
    boto3.client("dynamodb").create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in
                              (("orderId", "S"), ("customerId", "S"), ("score", "N"))],
        GlobalSecondaryIndexes=[
            {"IndexName": name, "Projection": {"ProjectionType": "KEYS_ONLY"},
             "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}]}
            for name, key in (("by-customer", "customerId"), ("by-score", "score"))])
    source = tmp_path / "orders.csv"
    # Numeric-looking customer ids (the crawler types them bigint) and one score that is not
    # a number (so the crawler types the column string).
    rows = [f"o{n},{5000 + n % 7},{'oops' if n == 17 else n * 3}" for n in range(40)]
    source.write_text("orderId,customerId,score\n" + "\n".join(rows) + "\n", encoding="utf-8")

    report = run_job(source_path=str(source), partitions=2)

    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert (report.counts.items_written, report.counts.rows_rejected) == (39, 1)
    assert scan_table(TABLE) == {
        (f"o{n}",): {"orderId": {"S": f"o{n}"}, "customerId": {"S": str(5000 + n % 7)},
                     "score": {"N": str(n * 3)}}
        for n in range(40) if n != 17}
    (rejected,) = read_rejects(report.rejects_path or "")[1:]
    assert rejected[:2] == [
        "18", "column 'score': 'oops' is not a number, and GSI by-score declares score as N"]
