"""``init``'s local mirror of the Terraform resources, against a moto server over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.errors import ArgumentError, TargetTableError

from local_aws.moto_server import ENDPOINT_VARIABLES
from local_aws.resources import (
    AwsClients,
    ResourceSetupError,
    ensure_resources,
    wait_for_table,
)

NAMES: dict[str, Any] = {"bucket": "dynamo-ingest-demo", "database": "dynamo_ingest",
                         "target_table": "orders", "ledger_table": "dynamo-ingest-ledger"}


def _key_schema(dynamodb: Any, table: str) -> dict[str, tuple[str, str]]:
    description = dynamodb.describe_table(TableName=table)["Table"]
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    return {k["KeyType"]: (k["AttributeName"], types[k["AttributeName"]])
            for k in description["KeySchema"]}


def test_creates_everything_once_then_finds_it(aws: str) -> None:
    first = ensure_resources(**NAMES, partition_key=("orderId", "S"), sort_key=None)
    second = ensure_resources(**NAMES, partition_key=("orderId", "S"), sort_key=None)

    assert [(r.kind, r.name) for r in first.created] == [
        ("s3 bucket", "dynamo-ingest-demo"), ("glue database", "dynamo_ingest"),
        ("dynamodb table", "orders"), ("ledger table", "dynamo-ingest-ledger")]
    assert first.existing == ()
    assert second.created == ()
    assert [r.name for r in second.existing] == [r.name for r in first.created]
    assert first.region == second.region == "us-east-1"

    s3, glue, dynamodb = boto3.client("s3"), boto3.client("glue"), boto3.client("dynamodb")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["dynamo-ingest-demo"]
    assert glue.get_database(Name="dynamo_ingest")["Database"]["Name"] == "dynamo_ingest"
    assert _key_schema(dynamodb, "orders") == {"HASH": ("orderId", "S")}
    orders = dynamodb.describe_table(TableName="orders")["Table"]
    assert orders["TableStatus"] == "ACTIVE"
    assert orders["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ledger = dynamodb.describe_table(TableName="dynamo-ingest-ledger")["Table"]
    assert ledger["TableStatus"] == "ACTIVE"
    assert sorted(dynamodb.list_tables()["TableNames"]) == ["dynamo-ingest-ledger", "orders"]


def test_sort_key_and_provisioned_capacity(aws: str) -> None:
    ensure_resources(**NAMES, partition_key=("batchId", "S"), sort_key=("seq", "N"),
                     billing="PROVISIONED", write_capacity=50)

    dynamodb = boto3.client("dynamodb")
    assert _key_schema(dynamodb, "orders") == {"HASH": ("batchId", "S"), "RANGE": ("seq", "N")}
    throughput = dynamodb.describe_table(TableName="orders")["Table"]["ProvisionedThroughput"]
    assert throughput["WriteCapacityUnits"] == 50


def test_existing_table_with_another_key_type_is_refused(aws: str) -> None:
    ensure_resources(**NAMES, partition_key=("orderId", "N"), sort_key=None)

    with pytest.raises(TargetTableError, match=r"orderId \(N\).*orderId \(S\)"):
        ensure_resources(**NAMES, partition_key=("orderId", "S"), sort_key=None)


def test_existing_table_with_a_sort_key_is_refused_when_none_is_asked(aws: str) -> None:
    ensure_resources(**NAMES, partition_key=("batchId", "S"), sort_key=("orderId", "S"))

    with pytest.raises(TargetTableError, match=r"sort key orderId.*no sort key"):
        ensure_resources(**NAMES, partition_key=("batchId", "S"), sort_key=None)
    assert _key_schema(boto3.client("dynamodb"), "orders")["RANGE"] == ("orderId", "S")


def test_region_comes_from_the_standard_variables(aws: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")

    summary = ensure_resources(**NAMES, partition_key=("orderId", "S"), sort_key=None)

    assert summary.region == "eu-west-1"
    location = boto3.client("s3", region_name="eu-west-1").get_bucket_location(
        Bucket="dynamo-ingest-demo")["LocationConstraint"]
    assert location == "eu-west-1"
    assert boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"] == []


def test_injected_clients_decide_the_region(aws: str) -> None:
    clients = AwsClients.from_config(AwsConfig(region="us-west-2", endpoints={"s3": aws,
                                               "glue": aws, "dynamodb": aws}))

    summary = ensure_resources(clients, **NAMES, partition_key=("orderId", "S"), sort_key=None)

    assert summary.region == clients.region == "us-west-2"
    assert boto3.client("s3").get_bucket_location(
        Bucket="dynamo-ingest-demo")["LocationConstraint"] == "us-west-2"
    assert "orders" in boto3.client("dynamodb", region_name="us-west-2").list_tables()[
        "TableNames"]
    assert boto3.client("dynamodb").list_tables()["TableNames"] == []  # the fixture's us-east-1


def test_region_defaults_to_us_east_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", *ENDPOINT_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))

    clients = AwsClients.from_config()  # builds clients only: nothing is sent

    assert clients.region == clients.dynamodb.meta.region_name == "us-east-1"


@pytest.mark.parametrize(("extra", "message"), [
    ({"billing": "PROVISIONED"}, "write_capacity"),
    ({"billing": "ON_DEMAND"}, "billing"),
    ({"partition_key": ("orderId", "BOOL")}, "S, N or B"),
])
def test_arguments_are_checked_before_anything_is_created(aws: str, extra: dict[str, Any],
                                                          message: str) -> None:
    arguments = {**NAMES, "partition_key": ("orderId", "S"), "sort_key": None, **extra}

    with pytest.raises(ArgumentError, match=message):
        ensure_resources(**arguments)
    assert boto3.client("s3").list_buckets()["Buckets"] == []


def _stubbed_dynamodb() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _table(status: str) -> dict[str, Any]:
    return {"Table": {"TableName": "orders", "TableStatus": status}}


def test_wait_for_table_polls_until_active() -> None:
    dynamodb = _stubbed_dynamodb()
    with Stubber(dynamodb) as stubber:
        for status in ("CREATING", "CREATING", "ACTIVE"):
            stubber.add_response("describe_table", _table(status), {"TableName": "orders"})
        wait_for_table(dynamodb, "orders", timeout_s=10)
        stubber.assert_no_pending_responses()


def test_wait_for_table_gives_up_after_the_timeout() -> None:
    dynamodb = _stubbed_dynamodb()
    with Stubber(dynamodb) as stubber:
        for _ in range(20):
            stubber.add_response("describe_table", _table("CREATING"), {"TableName": "orders"})
        with pytest.raises(ResourceSetupError, match="still CREATING"):
            wait_for_table(dynamodb, "orders", timeout_s=0.3)
