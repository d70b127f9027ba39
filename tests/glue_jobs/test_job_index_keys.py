"""Secondary index keys end to end on moto: an empty index key field, which DynamoDB refuses
as an empty string but accepts as an absent attribute (the item is just not in the index).
moto refuses empty index key strings as AWS does; type mismatches it accepts, so those are
tested against dynalite (test_job_dynalite.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.glue_jobs.conftest import TABLE, scan_table

pytestmark = pytest.mark.spark


def test_an_empty_index_key_leaves_the_item_out_of_the_index(run_job: Any,
                                                              tmp_path: Path) -> None:
    boto3.client("dynamodb").create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("id", "email")],
        GlobalSecondaryIndexes=[{"IndexName": "by-email",
                                 "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}]}])
    source = tmp_path / "users.csv"
    source.write_text("id,email,note\n1,a@x.io,\n2,,hi\n3,,\n4,b@x.io,ok\n", encoding="utf-8")

    report = run_job(source_path=str(source), empty_value="empty_string")

    assert report.status == "SUCCEEDED", report.error
    assert report.counts.items_written == 4
    # --empty_value empty_string applies to the other columns; the index key is left out.
    assert scan_table(TABLE) == {
        ("1",): {"id": {"S": "1"}, "email": {"S": "a@x.io"}, "note": {"S": ""}},
        ("2",): {"id": {"S": "2"}, "note": {"S": "hi"}},
        ("3",): {"id": {"S": "3"}, "note": {"S": ""}},
        ("4",): {"id": {"S": "4"}, "email": {"S": "b@x.io"}, "note": {"S": "ok"}}}
    (page,) = boto3.client("dynamodb").get_paginator("scan").paginate(
        TableName=TABLE, IndexName="by-email")
    assert sorted(i["id"]["S"] for i in page["Items"]) == ["1", "4"]
