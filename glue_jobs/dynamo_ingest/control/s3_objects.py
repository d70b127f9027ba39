"""S3 object helpers shared by the Lambdas and the CLI: URIs, key relocation between prefixes,
moving an object (copy then delete, metadata preserved) and writing small JSON objects.

``s3://`` parsing itself lives in :mod:`dynamo_ingest.control.storage` (``split_s3``); this module
reuses it so the rule exists once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from dynamo_ingest.control.storage import split_s3
from dynamo_ingest.core.errors import SourceError

# CopyObject copies up to 5 GB in one request; above this size the managed copy (s3transfer:
# parallel UploadPartCopy) is used, which is also much faster for big files.
MANAGED_COPY_THRESHOLD = 1024**3
MANAGED_COPY_PART_SIZE = 128 * 1024**2
# What a copy must carry over besides the bytes (``HeadObject`` names them the same way).
PRESERVED_FIELDS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding",
                    "ContentLanguage", "Metadata")


def s3_uri(bucket: str, key: str) -> str:
    """``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``; :class:`SourceError` for anything else."""
    if not uri.startswith("s3://"):
        raise SourceError(f"expected an s3://bucket/key URI, found {uri!r}")
    return split_s3(uri)


def relocate_key(key: str, from_prefix: str, to_prefix: str, suffix: str = "") -> str:
    """``incoming/a/b.csv`` → ``complete/a/b.csv`` (a key outside ``from_prefix`` keeps its
    whole name under ``to_prefix``)."""
    relative = key[len(from_prefix):] if from_prefix and key.startswith(from_prefix) else key
    return f"{to_prefix}{relative}{suffix}"


def _error_text(err: ClientError) -> str:
    error = err.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', err)}"


def copy_object(s3: Any, source: str, destination: str, *, expected_etag: str | None = None,
                managed_copy_threshold: int = MANAGED_COPY_THRESHOLD,
                managed_copy_part_size: int = MANAGED_COPY_PART_SIZE, action: str = "copy") -> str:
    """Copy ``source`` to ``destination`` (``s3://``) with its metadata; returns
    ``destination``, raises :class:`SourceError` naming ``action``."""
    # expected_etag: never copy a newer object uploaded under the same key (it has its own
    # event). Objects of managed_copy_threshold bytes or more go through s3.copy (multipart).
    source_bucket, source_key = parse_s3_uri(source)
    dest_bucket, dest_key = parse_s3_uri(destination)
    try:
        head = s3.head_object(Bucket=source_bucket, Key=source_key)
    except ClientError as err:
        raise SourceError(f"cannot {action} {source}: expected the object to exist, found "
                          f"{_error_text(err)}; check whether it was already moved") from err
    etag = str(head["ETag"])
    if expected_etag and expected_etag.strip('"') != etag.strip('"'):
        raise SourceError(f"will not {action} {source}: expected ETag "
                          f"{expected_etag.strip(chr(34))}, found {etag.strip(chr(34))} (a newer "
                          "upload replaced it and has its own event)")
    copy_source = {"Bucket": source_bucket, "Key": source_key}
    try:
        if int(head["ContentLength"]) < managed_copy_threshold:
            # MetadataDirective/TaggingDirective COPY keep metadata, content type and tags.
            s3.copy_object(Bucket=dest_bucket, Key=dest_key, CopySource=copy_source,
                           CopySourceIfMatch=etag, MetadataDirective="COPY",
                           TaggingDirective="COPY")
        else:
            from boto3.s3.transfer import TransferConfig

            # A multipart copy has no MetadataDirective: pass the metadata explicitly (older
            # s3transfer releases do not carry it over by themselves).
            extra: dict[str, Any] = {k: head[k] for k in PRESERVED_FIELDS if head.get(k)}
            extra.update(MetadataDirective="REPLACE", CopySourceIfMatch=etag)
            s3.copy(CopySource=copy_source, Bucket=dest_bucket, Key=dest_key, ExtraArgs=extra,
                    Config=TransferConfig(multipart_threshold=managed_copy_threshold,
                                          multipart_chunksize=managed_copy_part_size))
    except ClientError as err:
        raise _transfer_error(action, source, destination, err) from err
    return destination


def _transfer_error(action: str, source: str, destination: str, err: ClientError) -> SourceError:
    return SourceError(f"could not {action} {source} to {destination}: {_error_text(err)}; "
                       "check the bucket policy and the role's s3:GetObject, s3:PutObject and "
                       "s3:DeleteObject permissions")


def move_object(s3: Any, source: str, destination: str, *, expected_etag: str | None = None,
                managed_copy_threshold: int = MANAGED_COPY_THRESHOLD,
                managed_copy_part_size: int = MANAGED_COPY_PART_SIZE) -> str:
    """Move ``source`` to ``destination`` (``s3://``): copy with metadata, delete; returns
    ``destination``, raises :class:`SourceError`."""
    copy_object(s3, source, destination, expected_etag=expected_etag,
                managed_copy_threshold=managed_copy_threshold,
                managed_copy_part_size=managed_copy_part_size, action="move")
    bucket, key = parse_s3_uri(source)
    try:
        s3.delete_object(Bucket=bucket, Key=key)
    except ClientError as err:
        raise _transfer_error("move", source, destination, err) from err
    return destination


def put_json(s3: Any, uri: str, payload: Mapping[str, Any]) -> str:
    """Write ``payload`` as an indented JSON object at ``uri``; returns ``uri``."""
    bucket, key = parse_s3_uri(uri)
    body = json.dumps(payload, indent=2, ensure_ascii=False, default=str).encode("utf-8")
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body + b"\n",
                      ContentType="application/json")
    except ClientError as err:
        raise SourceError(f"could not write {uri}: {_error_text(err)}") from err
    return uri
