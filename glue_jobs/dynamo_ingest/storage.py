"""Files the job reads and writes, local or ``s3://``: staging the source, rejects parts,
the merged rejects file and the run report."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynamo_ingest.aws import AwsConfig
from dynamo_ingest.errors import SourceError

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
    local_copy: str | None = None

    def discard_staged_copy(self) -> None:
        """Delete the local copy of a staged ``s3://`` object (nothing for other sources)."""
        if self.local_copy:
            shutil.rmtree(Path(self.local_copy).parent, ignore_errors=True)

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


def resolve_source(source_path: str, aws: AwsConfig, *, stage_s3: bool,
                   expected_etag: str | None = None) -> ResolvedSource:
    """Identify the source and make it readable by Spark (staging ``s3://`` locally into a
    temporary folder the caller removes with :meth:`ResolvedSource.discard_staged_copy`).

    Raises :class:`SourceError` when it does not exist, or when ``expected_etag`` is given
    and the object has changed since the event that started this run.
    """
    from botocore.exceptions import ClientError

    if not is_s3(source_path):
        path = Path(source_path).expanduser().resolve()
        if not path.is_file():
            raise SourceError(f"source file {source_path!r} does not exist or is not a file")
        return ResolvedSource(str(path), "", str(path), file_md5(path), path.stat().st_size,
                              str(path))
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
        return ResolvedSource(source_path, bucket, key, etag, size, source_path)
    local = Path(tempfile.mkdtemp(prefix="dynamo-ingest-stage-")) / Path(key).name
    s3.download_file(bucket, key, str(local))
    return ResolvedSource(source_path, bucket, key, etag, size, str(local), str(local))


def default_rejects_path(source: ResolvedSource) -> str:
    """``error/`` beside the input for S3; a ``rejects/`` folder beside a local file."""
    if source.bucket:
        parent, _, name = source.key.rpartition("/")
        grand = parent.rpartition("/")[0] if parent else ""
        prefix = f"{grand}/error" if grand else "error"
        return f"s3://{source.bucket}/{prefix}/{name}.rejects.csv"
    path = Path(source.uri)
    return str(path.parent / "rejects" / f"{path.name}.rejects.csv")


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
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(local), uri)

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

    def concat(self, header: bytes, parts: Sequence[str], uri: str) -> None:
        """Write ``header`` then each existing part, streamed, to ``uri``."""
        with tempfile.NamedTemporaryFile("wb", delete=False, suffix=".csv") as out:
            out.write(header)
            for part in parts:
                if not self.exists(part):
                    continue
                if is_s3(part):
                    bucket, key = split_s3(part)
                    body = self._client().get_object(Bucket=bucket, Key=key)["Body"]
                    for chunk in body.iter_chunks(COPY_CHUNK):
                        out.write(chunk)
                else:
                    with open(part, "rb") as handle:
                        shutil.copyfileobj(handle, out, COPY_CHUNK)
        self.put_file(Path(out.name), uri)

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
