"""S3 notifications from tests/events → typed records."""

from __future__ import annotations

import pytest

from tests.conftest import load_event
from trigger_lambda.errors import MalformedS3EventError
from trigger_lambda.events import S3EventRecord, is_test_event, raw_records


def _records(name: str) -> list[S3EventRecord]:
    return [S3EventRecord.from_raw(r) for r in raw_records(load_event(name))]


@pytest.mark.parametrize(("name", "key"), [
    ("s3_put.json", "incoming/orders.csv"),
    ("s3_put_encoded_key.json", "incoming/2024-05/customer orders (copy 1) c++.csv"),
    ("s3_put_unicode_key.json", "incoming/données/été ☀ 東京.csv"),
])
def test_keys_are_url_decoded(name: str, key: str) -> None:
    (record,) = _records(name)
    assert record.key == key
    assert record.uri == f"s3://dynamo-ingest-landing/{key}"
    assert record.is_object_created
    assert record.etag
    assert record.size == 1024
    assert record.sequencer


def test_every_record_is_parsed() -> None:
    records = _records("s3_put_multi_record.json")
    assert [r.key for r in records] == ["incoming/a.csv", "incoming/b c.csv", "archive/old.csv"]
    assert len({r.etag for r in records}) == 2


def test_removed_objects_are_not_created_ones() -> None:
    (record,) = _records("s3_object_removed.json")
    assert not record.is_object_created
    assert record.etag is None


def test_test_event_and_malformed_events() -> None:
    assert is_test_event(load_event("s3_test_event.json"))
    with pytest.raises(MalformedS3EventError, match="non-empty Records"):
        raw_records(load_event("s3_malformed_no_records.json"))
    good, bad = raw_records(load_event("s3_malformed_record.json"))
    assert S3EventRecord.from_raw(good).key == "incoming/good.csv"
    with pytest.raises(MalformedS3EventError, match="missing 'key'"):
        S3EventRecord.from_raw(bad)
    with pytest.raises(MalformedS3EventError, match=r"expected s3\.object\.eTag"):
        _records("s3_malformed_missing_etag.json")
