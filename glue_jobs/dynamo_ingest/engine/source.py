"""The one place a source file (a local path or ``s3://``) is opened for reading: the record
splitter of the in-process engine, the header probe of the job, the estimate and the crawler
all read the bytes :func:`open_source` gives.

What it gives is the file's text as a stream of bytes, whatever the file is stored as:

- decompressed, when its first bytes are a compression's signature
  (:mod:`dynamo_ingest.engine.compression`), whatever its name says;
- transcoded to UTF-8 when it is UTF-16 (the splitter and the item builder read bytes, and
  UTF-16's NUL bytes are no CSV text); single-byte encodings stay as they are and the item
  builder decodes the values (:func:`dynamo_ingest.core.formats.value_encoding`);
- bounded: decompressing past :class:`SourceLimits` raises :class:`DecompressionLimitError`
  (a decompression bomb, or a genuine file that needs a higher limit), so a 10 MB file that
  expands to 10 GB fills neither memory nor disk.

Nothing is held beyond the codecs' windows and a read buffer; nothing is written to disk.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from dynamo_ingest.core.errors import FileLayoutError, SourceError
from dynamo_ingest.core.formats import (
    DEFAULT_MAX_EXPANSION,
    is_utf16,
    resolve_encoding,
)
from dynamo_ingest.engine.compression import SIGNATURE_BYTES, Codec, recognise

READ_BUFFER = 1024 * 1024
# How much of a compressed file the expansion is measured on (the first few MB).
EXPANSION_PROBE_BYTES = 4 * 1024 * 1024


class DecompressionLimitError(FileLayoutError):
    """A compressed source expands past the limits a run allows (a decompression bomb?)."""


@dataclass(frozen=True)
class SourceLimits:
    """How far a compressed source may expand: ``max_expansion`` times its stored size, and
    at most ``max_uncompressed_bytes`` (None: no absolute cap)."""

    max_expansion: float = DEFAULT_MAX_EXPANSION
    max_uncompressed_bytes: int | None = None

    def limit(self, stored_bytes: int) -> int:
        """The most bytes a source of ``stored_bytes`` may decompress to."""
        by_ratio = int(self.max_expansion * max(stored_bytes, 1))
        if self.max_uncompressed_bytes is None:
            return by_ratio
        return min(by_ratio, self.max_uncompressed_bytes)

    def over_ratio(self, produced: int, consumed: int,
                   floor: int = EXPANSION_PROBE_BYTES) -> bool:
        """True when ``produced`` text bytes from ``consumed`` stored ones expand more than
        ``max_expansion``: the ratio is held once ``floor`` stored bytes are read (before,
        the floor's share), so a file expanding late is stopped as it expands, and a
        genuine file's first blocks (or a compressor's header) never are."""
        return produced > self.max_expansion * max(consumed, floor)

    def ratio_refusal(self, source: str, codec: Codec, produced: int, consumed: int) -> str:
        """The message of a source :meth:`over_ratio` stops."""
        return (f"{source}: its {codec.name} data expands {produced / max(1, consumed):,.1f}× "
                f"in its first {_size(consumed)} stored ({_size(produced)} of text), over "
                f"--max_expansion {self.max_expansion:g}: a decompression bomb? If the file "
                "is genuine, raise --max_expansion")

    def refusal(self, source: str, codec: Codec, stored_bytes: int, found: str) -> str:
        """The message of a source that expands past :meth:`limit`."""
        cap = (f", --max_uncompressed_bytes {self.max_uncompressed_bytes}"
               if self.max_uncompressed_bytes is not None else "")
        return (f"{source}: its {codec.name} data {found} past {_size(self.limit(stored_bytes))}"
                f" (the limit for {_size(stored_bytes)} stored: --max_expansion "
                f"{self.max_expansion:g}{cap}): a decompression bomb? If the file is genuine, "
                "raise --max_expansion or --max_uncompressed_bytes")


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


@dataclass(frozen=True)
class SourceFormat:
    """What a source's first bytes say: its compression (None: plain) and its encoding."""

    codec: Codec | None
    encoding: str  # normalised (core.formats.resolve_encoding)


class _Chained(io.RawIOBase):
    """The bytes already peeked, then the rest of ``raw``; counts the bytes read from it."""

    def __init__(self, head: bytes, raw: Any) -> None:
        self._head = head
        self._raw = raw
        self.consumed = len(head)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            count = min(len(view), len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._raw.read(len(view))
        view[:len(data)] = data
        self.consumed += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _Bounded(io.RawIOBase):
    """A decompressed stream that fails once it passes its source's limit, or once it has
    expanded more than ``max_expansion`` times the stored bytes read so far."""

    def __init__(self, inner: BinaryIO, raw: _Chained, limits: SourceLimits, stored: int,
                 name: str, codec: Codec, prefix_only: bool = False) -> None:
        self._inner = inner
        self._raw = raw
        self._limits = limits
        self._limit = limits.limit(stored)
        self._refusal = limits.refusal(name, codec, stored, "expands")
        self._name = name
        self._codec = codec
        self._prefix_only = prefix_only
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._inner.read(len(view))
        except EOFError:
            if not self._prefix_only:
                raise FileLayoutError(f"{self._name}: the compressed data is cut short; "
                                      "upload the file again") from None
            data = b""  # the end of the stored prefix given
        except (OSError, ValueError) as err:
            raise FileLayoutError(f"{self._name}: the compressed data is damaged or cut "
                                  f"short ({err}); upload the file again"
                                  ) from err
        self.produced += len(data)
        if self.produced > self._limit:
            raise DecompressionLimitError(self._refusal)
        if self._limits.over_ratio(self.produced, self._raw.consumed):
            raise DecompressionLimitError(self._limits.ratio_refusal(
                self._name, self._codec, self.produced, self._raw.consumed))
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                self._raw.close()
        super().close()


class _Utf8FromUtf16(io.RawIOBase):
    """UTF-16 text (BOM or ``encoding``'s byte order) as UTF-8 bytes, streamed. A lone
    surrogate stays an invalid UTF-8 sequence, so the item builder rejects its row."""

    def __init__(self, inner: BinaryIO, encoding: str) -> None:
        self._text = io.TextIOWrapper(inner, encoding=encoding, errors="surrogatepass",
                                      newline="")
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            chunk = self._text.read(max(1, len(view) // 4))
            if not chunk:
                return 0
            self._pending = chunk.encode("utf-8", "surrogatepass")
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self._text.close()
        super().close()


def _open_raw(path: str, s3: Any | None) -> tuple[Any, int]:
    """The stored bytes as a stream, and how many there are."""
    from dynamo_ingest.control.storage import is_s3, split_s3

    if is_s3(path):
        if s3 is None:
            raise SourceError(f"{path} is in S3 but no S3 client was given")
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3(path)
        try:
            response = s3.get_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError) as err:
            raise SourceError(f"cannot read {path} ({err}): check the key and the role's "
                              "s3:GetObject") from err
        return response["Body"], int(response["ContentLength"])
    try:
        handle = open(path, "rb")  # noqa: SIM115 - the stream the caller closes
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err}") from err
    return handle, os.fstat(handle.fileno()).st_size


def _read_head(raw: Any) -> bytes:
    head = b""
    while len(head) < SIGNATURE_BYTES:
        data = raw.read(SIGNATURE_BYTES - len(head))
        if not data:
            break
        head += data
    return head


def open_source(path: str, *, s3: Any | None = None, limits: SourceLimits = SourceLimits(),
                encoding: str | None = None, name: str | None = None) -> BinaryIO:
    """The source's text as a byte stream (see the module doc); ``name`` is the file as
    messages call it (default ``path``), ``encoding`` the one the user gave (None: UTF-8,
    unless a UTF-16 byte order mark says otherwise). The caller closes the stream."""
    raw, stored = _open_raw(path, s3)
    return open_stored(raw, stored, name or path, limits=limits, encoding=encoding)


def open_stored(raw: Any, stored: int, name: str, *, limits: SourceLimits = SourceLimits(),
                encoding: str | None = None, prefix_only: bool = False) -> BinaryIO:
    """:func:`open_source` over a stream of the stored bytes (``stored`` of them in all).
    ``prefix_only``: ``raw`` holds only the start of a compressed file (a ranged GET), whose
    cut-off end is the end of the text read, not damage."""
    try:
        head = _read_head(raw)
        chained = _Chained(head, raw)
        codec = recognise(head, name)
        stream: BinaryIO = cast(BinaryIO, chained)
        if codec is not None:
            stream = cast(BinaryIO, _Bounded(codec.reader(cast(BinaryIO, chained)), chained,
                                             limits, stored, name, codec, prefix_only))
        buffered = io.BufferedReader(cast(io.RawIOBase, stream), READ_BUFFER)
        chosen = resolve_encoding(encoding, buffered.peek(4)[:4])
        if is_utf16(chosen):
            return cast(BinaryIO, io.BufferedReader(
                _Utf8FromUtf16(cast(BinaryIO, buffered), chosen), READ_BUFFER))
        return cast(BinaryIO, buffered)
    except BaseException:
        raw.close()
        raise


def source_format(path: str, *, s3: Any | None = None, encoding: str | None = None,
                  name: str | None = None) -> SourceFormat:
    """The compression and the encoding of a source, from its first bytes."""
    raw, _ = _open_raw(path, s3)
    with raw:
        return stored_format(raw, name or path, encoding)


def stored_format(raw: Any, name: str, encoding: str | None = None) -> SourceFormat:
    """:func:`source_format` of a stream of the stored bytes (read from its start)."""
    head = _read_head(raw)
    codec = recognise(head, name)
    text = head
    if codec is not None:
        with codec.reader(cast(BinaryIO, _Chained(head, raw))) as reader:
            text = _read_head(reader)
    return SourceFormat(codec, resolve_encoding(encoding, text[:4]))


def read_prefix(stream: BinaryIO, count: int) -> tuple[bytes, bool]:
    """Up to ``count`` bytes of ``stream``, and True when that is all of it."""
    data = bytearray()
    while len(data) < count:
        chunk = stream.read(count - len(data))
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), not stream.read(1)


@dataclass(frozen=True)
class Expansion:
    """A source's stored size and its text's size: exact when the probe read all of it,
    else extrapolated from the ratio of a decompressed prefix."""

    stored_bytes: int
    text_bytes: int
    estimated: bool

    @property
    def ratio(self) -> float:
        """Text bytes per stored byte."""
        return self.text_bytes / max(1, self.stored_bytes)


def measure_expansion(path: str, *, s3: Any | None = None,
                      limits: SourceLimits = SourceLimits(), name: str | None = None,
                      probe_bytes: int = EXPANSION_PROBE_BYTES) -> Expansion:
    """How big the source's text is: its stored size for a plain file; for a compressed one,
    the first ``probe_bytes`` stored bytes decompressed and the ratio extrapolated.
    Raises :class:`DecompressionLimitError` when the prefix already expands past
    ``limits`` (so a bomb fails before any engine reads it)."""
    shown = name or path
    raw, stored = _open_raw(path, s3)
    with raw:
        head = _read_head(raw)
        codec = recognise(head, shown)
        if codec is None:
            return Expansion(stored, stored, False)
        chained = _Chained(head, raw)
        reader = codec.reader(cast(BinaryIO, chained))
        produced = 0
        try:
            # The reading's own rule (_Bounded), with the probe as its floor.
            while (chained.consumed < probe_bytes
                   and not limits.over_ratio(produced, chained.consumed, probe_bytes)):
                data = reader.read(READ_BUFFER)
                if not data:
                    return _checked(Expansion(stored, produced, False), limits, shown, codec)
                produced += len(data)
        except (OSError, EOFError, ValueError) as err:
            raise FileLayoutError(f"{shown}: the {codec.name} data is damaged or cut short "
                                  f"({err}); upload the file again") from err
        ratio = produced / max(1, chained.consumed)
        if limits.over_ratio(produced, chained.consumed, probe_bytes):
            raise DecompressionLimitError(limits.refusal(
                shown, codec, stored, f"expands {ratio:,.0f}× in its first "
                f"{_size(chained.consumed)}, which would take it"))
        return _checked(Expansion(stored, int(stored * ratio), True), limits, shown, codec)


def _checked(expansion: Expansion, limits: SourceLimits, shown: str, codec: Codec) -> Expansion:
    if expansion.text_bytes > limits.limit(expansion.stored_bytes):
        word = "would expand" if expansion.estimated else "expands"
        raise DecompressionLimitError(limits.refusal(shown, codec, expansion.stored_bytes, word))
    return expansion


@dataclass(frozen=True)
class SourceOpener:
    """:func:`open_source` as a picklable callable, for a Spark task or a worker process:
    an ``s3://`` path is read with a client built from ``aws`` where it runs."""

    path: str
    name: str
    encoding: str | None = None
    limits: SourceLimits = SourceLimits()
    aws: Any | None = None  # dynamo_ingest.core.aws.AwsConfig, for an s3:// path

    def __call__(self) -> BinaryIO:
        s3 = self.aws.client("s3") if self.aws is not None and "://" in self.path else None
        return open_source(self.path, s3=s3, limits=self.limits, encoding=self.encoding,
                           name=self.name)
