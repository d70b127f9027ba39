"""Files the job reads and writes, local or ``s3://``: staging the source, rejects parts,
the merged rejects file and the run report."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.errors import SourceError

COPY_CHUNK = 8 * 1024 * 1024


def is_s3(uri: str) -> bool:
    """True for ``s3://`` (and Hadoop's ``s3a://``) URIs."""
    return uri.startswith(("s3://", "s3a://"))


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``."""
    without = uri.split("://", 1)[1]
    bucket, _, key = without.partition("/")
    if not bucket or not key:
        raise SourceError(f"expected s3://bucket/key, found {uri!r}")
    return bucket, key


@dataclass(frozen=True)
class ResolvedSource:
    """The source as the job sees it: identity (bucket, key, ETag) and a path Spark reads."""

    uri: str
    bucket: str
    key: str
    etag: str
    size: int
    spark_path: str
    # The local file holding the bytes, which Python reads and messages name: the file itself,
    # or the staged copy of an s3:// object (None when Spark reads s3:// directly, in Glue).
    local_copy: str | None = None
    scratch: str | None = None  # the temporary folder of spark_path (a link or staged copy)
    scratch_object: str | None = None  # an s3:// copy Spark reads instead (Glue)

    def discard_staged_copy(self, storage: Storage | None = None) -> None:
        """Delete the staged copy, link or S3 copy Spark read (nothing for a source read in
        place); ``storage`` deletes an S3 copy."""
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.scratch_object and storage is not None:
            storage.delete([self.scratch_object])

    @property
    def display_name(self) -> str:
        """A short name for messages: the object key or the file path."""
        return self.key if self.bucket else self.uri


def file_md5(path: Path) -> str:
    """MD5 of a local file, streamed (the local stand-in for an S3 ETag)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# Hadoop reads a path as a glob and a URI: a name with ':' breaks its URI parsing (the local
# file system's checksum path), '[', '*', '?', '{' make it a pattern, and a name starting with
# '_' or '.' is skipped as hidden. Spark therefore reads a local file through a link, and a
# staged object through a copy, named "source" plus the name's plain extensions (which pick the
# compression codec); the user's name stays in every message.
_PLAIN_EXTENSIONS = re.compile(r"(?:\.[A-Za-z0-9]{1,16})*$")
SPARK_SAFE_STEM = "source"


def spark_safe_name(name: str) -> str:
    """A file name Hadoop reads literally, keeping ``name``'s plain extensions."""
    match = _PLAIN_EXTENSIONS.search(name)
    return SPARK_SAFE_STEM + (match.group(0) if match else "")


def hadoop_reads_name(name: str) -> bool:
    """True when Hadoop reads an ``s3://`` URI ending in this file name as it is (with
    globbing off): not hidden, and no ':' (which it may take for a scheme)."""
    return not name.startswith(("_", ".")) and ":" not in name


def _link_for_spark(path: Path) -> tuple[str, str]:
    """(link path, its temporary folder): ``path`` under a name Hadoop reads literally."""
    scratch = tempfile.mkdtemp(prefix="dynamo-ingest-read-")
    link = Path(scratch) / spark_safe_name(path.name)
    try:
        link.symlink_to(path)
    except OSError:
        # No symbolic links on this file system: a copy is slower but reads the same bytes.
        shutil.copyfile(path, link)
    return str(link), scratch


def resolve_source(source_path: str, aws: AwsConfig, *, stage_s3: bool,
                   expected_etag: str | None = None,
                   copy_folder: str | None = None) -> ResolvedSource:
    """Identify the source and make it readable by Spark (staging ``s3://`` locally into a
    temporary folder the caller removes with :meth:`ResolvedSource.discard_staged_copy`).

    Unstaged (Glue), an object whose file name Hadoop cannot read is copied, server-side,
    under a safe name into the ``s3://`` folder ``copy_folder`` (when given), and Spark reads
    the copy.

    Raises :class:`SourceError` when it does not exist, or when ``expected_etag`` is given
    and the object has changed since the event that started this run.
    """
    from botocore.exceptions import ClientError

    if not is_s3(source_path):
        path = Path(source_path).expanduser().resolve()
        if not path.is_file():
            raise SourceError(f"source file {source_path!r} does not exist or is not a file")
        link, scratch = _link_for_spark(path)
        return ResolvedSource(str(path), "", str(path), file_md5(path), path.stat().st_size,
                              link, str(path), scratch)
    bucket, key = split_s3(source_path)
    s3 = aws.client("s3")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        raise SourceError(f"cannot read {source_path}: {err.response['Error'].get('Code')} "
                          "(check the bucket, the key and the role's s3:GetObject)") from err
    etag = str(head["ETag"]).strip('"')
    if expected_etag and expected_etag.strip('"') != etag:
        raise SourceError(f"{source_path} changed since it was received (ETag {expected_etag} "
                          f"expected, {etag} found): the new version gets its own event")
    size = int(head["ContentLength"])
    if not stage_s3:
        name = key.rpartition("/")[2]
        if copy_folder is None or hadoop_reads_name(name):
            return ResolvedSource(source_path, bucket, key, etag, size, source_path)
        from dynamo_ingest.control.s3_objects import copy_object

        copy = f"{copy_folder.rstrip('/')}/{spark_safe_name(name)}"
        copy_object(s3, source_path, copy, expected_etag=etag, action="copy for Spark")
        return ResolvedSource(source_path, bucket, key, etag, size, copy, scratch_object=copy)
    scratch = tempfile.mkdtemp(prefix="dynamo-ingest-stage-")
    local = Path(scratch) / spark_safe_name(key.rpartition("/")[2])
    s3.download_file(bucket, key, str(local))
    return ResolvedSource(source_path, bucket, key, etag, size, str(local), str(local),
                          scratch=scratch)


def _replace_local(local: Path, destination: Path) -> None:
    """Move ``local`` to ``destination`` atomically, with a new file's mode (0666 less the
    umask) instead of the 0600 of a temporary file, which would hide it from other users."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with local.open("rb") as source, staging.open("xb") as target:
            shutil.copyfileobj(source, target, COPY_CHUNK)
        os.replace(staging, destination)
    finally:
        staging.unlink(missing_ok=True)
    local.unlink(missing_ok=True)


class Storage:
    """Put, read, concatenate and delete files by local path or ``s3://`` URI."""

    def __init__(self, aws: AwsConfig) -> None:
        self._aws = aws
        self._s3: Any = None

    def _client(self) -> Any:
        if self._s3 is None:
            self._s3 = self._aws.client("s3")
        return self._s3

    def put_file(self, local: Path, uri: str) -> None:
        """Upload (S3) or move (local) a finished file to ``uri``."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self._client().upload_file(str(local), bucket, key)
            local.unlink(missing_ok=True)
            return
        _replace_local(local, Path(uri))

    def put_bytes(self, data: bytes, uri: str) -> None:
        """Write a small object or file."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self._client().put_object(Bucket=bucket, Key=key, Body=data)
            return
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        Path(uri).write_bytes(data)

    def exists(self, uri: str) -> bool:
        """True when the file or object exists."""
        if not is_s3(uri):
            return Path(uri).exists()
        from botocore.exceptions import ClientError

        bucket, key = split_s3(uri)
        try:
            self._client().head_object(Bucket=bucket, Key=key)
        except ClientError:
            return False
        return True

    def download(self, uri: str, directory: Path) -> Path:
        """A local path holding ``uri``'s bytes: the file itself, or a download into
        ``directory`` for an S3 object."""
        if not is_s3(uri):
            return Path(uri)
        bucket, key = split_s3(uri)
        local = directory / uuid.uuid4().hex
        self._client().download_file(bucket, key, str(local))
        return local

    def delete(self, uris: Iterable[str]) -> None:
        """Delete files or objects that exist (missing ones are fine), and local folders
        they leave empty."""
        folders: set[Path] = set()
        for uri in uris:
            if is_s3(uri):
                bucket, key = split_s3(uri)
                self._client().delete_object(Bucket=bucket, Key=key)
            else:
                Path(uri).unlink(missing_ok=True)
                folders.add(Path(uri).parent)
        for folder in folders:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
