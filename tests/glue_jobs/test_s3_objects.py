"""S3 helpers against moto: URIs, key relocation, moves that keep metadata, JSON objects."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.s3_objects import (
    move_object,
    parse_s3_uri,
    put_json,
    relocate_key,
    s3_uri,
)
from dynamo_ingest.core.errors import SourceError

BUCKET = "objects-under-test"
MIB = 1024 * 1024


@pytest.fixture
def s3(aws: str) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def _put(s3: Any, key: str, body: bytes) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="text/csv",
                  Metadata={"uploaded-by": "ingest-test", "batch": "7"},
                  Tagging="team=data")
    return str(s3.head_object(Bucket=BUCKET, Key=key)["ETag"])


def test_uris_and_relocation() -> None:
    assert parse_s3_uri("s3://b/incoming/a b.csv") == ("b", "incoming/a b.csv")
    assert s3_uri("b", "k/x.csv") == "s3://b/k/x.csv"
    with pytest.raises(SourceError, match="expected an s3://bucket/key URI"):
        parse_s3_uri("/tmp/x.csv")
    with pytest.raises(SourceError):
        parse_s3_uri("s3://bucket-only")
    assert relocate_key("incoming/2024/a.csv", "incoming/", "complete/") == "complete/2024/a.csv"
    assert relocate_key("incoming/a.csv", "incoming/", "error/", ".rejects.csv") == \
        "error/a.csv.rejects.csv"
    assert relocate_key("elsewhere/a.csv", "incoming/", "error/") == "error/elsewhere/a.csv"


@pytest.mark.parametrize("size", [1024, 6 * MIB], ids=["copy_object", "managed_copy"])
def test_move_keeps_bytes_metadata_and_content_type(s3: Any, size: int) -> None:
    body = bytes(range(256)) * (size // 256)
    etag = _put(s3, "incoming/été 1.csv", body)
    destination = move_object(s3, f"s3://{BUCKET}/incoming/été 1.csv",
                              f"s3://{BUCKET}/complete/été 1.csv", expected_etag=etag,
                              managed_copy_threshold=5 * MIB, managed_copy_part_size=5 * MIB)
    assert destination == f"s3://{BUCKET}/complete/été 1.csv"
    head = s3.head_object(Bucket=BUCKET, Key="complete/été 1.csv")
    assert head["Metadata"] == {"uploaded-by": "ingest-test", "batch": "7"}
    assert head["ContentType"] == "text/csv"
    assert s3.get_object(Bucket=BUCKET, Key="complete/été 1.csv")["Body"].read() == body
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="incoming/")
    # the managed (multipart) copy gets a multipart ETag: proof it took that path
    assert ("-" in str(head["ETag"])) == (size >= 5 * MIB)


def test_small_move_keeps_tags(s3: Any) -> None:
    _put(s3, "incoming/a.csv", b"x")
    move_object(s3, f"s3://{BUCKET}/incoming/a.csv", f"s3://{BUCKET}/complete/a.csv")
    tags = s3.get_object_tagging(Bucket=BUCKET, Key="complete/a.csv")["TagSet"]
    assert tags == [{"Key": "team", "Value": "data"}]


def test_move_refuses_a_replaced_object(s3: Any) -> None:
    _put(s3, "incoming/a.csv", b"new content")
    with pytest.raises(SourceError, match=r"found .* \(a newer upload replaced it"):
        move_object(s3, f"s3://{BUCKET}/incoming/a.csv", f"s3://{BUCKET}/complete/a.csv",
                    expected_etag="0123456789abcdef0123456789abcdef")
    assert s3.get_object(Bucket=BUCKET, Key="incoming/a.csv")["Body"].read() == b"new content"
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="complete/")


def test_move_of_a_missing_object_is_a_source_error(s3: Any) -> None:
    with pytest.raises(SourceError, match="expected the object to exist"):
        move_object(s3, f"s3://{BUCKET}/incoming/gone.csv", f"s3://{BUCKET}/complete/gone.csv")


def test_put_json(s3: Any) -> None:
    uri = put_json(s3, f"s3://{BUCKET}/error/a.csv.error.json", {"error": "schema ☀", "n": 3})
    obj = s3.get_object(Bucket=BUCKET, Key="error/a.csv.error.json")
    assert obj["ContentType"] == "application/json"
    assert json.loads(obj["Body"].read()) == {"error": "schema ☀", "n": 3}
    assert uri == f"s3://{BUCKET}/error/a.csv.error.json"
