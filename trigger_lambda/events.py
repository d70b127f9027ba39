"""The S3 event notification as typed records (every record, keys URL-decoded)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from trigger_lambda.errors import MalformedS3EventError


@dataclass(frozen=True)
class S3EventRecord:
    """One record of an S3 notification (``Records[i]``)."""

    event_name: str
    bucket: str
    key: str
    etag: str | None
    size: int | None
    sequencer: str | None
    event_time: str | None

    @property
    def is_object_created(self) -> bool:
        """True for ``ObjectCreated:*`` (Put, Post, Copy, CompleteMultipartUpload)."""
        return self.event_name.startswith("ObjectCreated:")

    @property
    def uri(self) -> str:
        """``s3://bucket/key`` with the decoded key."""
        return f"s3://{self.bucket}/{self.key}"

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> S3EventRecord:
        """Parse one raw record; the key arrives URL-encoded with ``+`` for spaces."""
        try:
            s3 = raw["s3"]
            event_name = str(raw["eventName"])
            bucket = str(s3["bucket"]["name"])
            obj = s3["object"]
            key = unquote_plus(str(obj["key"]), encoding="utf-8")
        except (KeyError, TypeError) as err:
            raise MalformedS3EventError(
                f"expected an S3 notification record with eventName, s3.bucket.name and "
                f"s3.object.key, found {_snippet(raw)} (missing {err})") from err
        etag = obj.get("eTag")
        if event_name.startswith("ObjectCreated:") and not etag:
            raise MalformedS3EventError(
                f"expected s3.object.eTag in the ObjectCreated record for s3://{bucket}/{key}, "
                "found none")
        size = obj.get("size")
        return cls(event_name=event_name, bucket=bucket, key=key,
                   etag=None if etag is None else str(etag),
                   size=None if size is None else int(size), sequencer=obj.get("sequencer"),
                   event_time=raw.get("eventTime"))


def is_test_event(event: Mapping[str, Any]) -> bool:
    """S3 sends ``s3:TestEvent`` (no Records) when a notification is configured."""
    return event.get("Event") == "s3:TestEvent"


def raw_records(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The event's ``Records``; :class:`MalformedS3EventError` when there are none."""
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        raise MalformedS3EventError(
            f"expected an S3 notification with a non-empty Records list, found {_snippet(event)}")
    return records


def _snippet(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
