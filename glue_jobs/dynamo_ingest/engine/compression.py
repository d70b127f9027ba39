"""The compressions a source may come in: one :class:`Codec` per compression, the place where
a new one goes (its name, file-name suffixes, signature, streaming reader, and whether Glue's
Spark reads it natively).

A file's compression is what its first bytes say (its signature), whatever it is called: a
gzip file named ``orders.csv`` is read as gzip, and a plain file named ``orders.csv.gz`` as
plain text. Every reader is a stream: memory stays at the codec's window (gzip 32 KiB, bzip2
900 KB, zstd at most 128 MiB) and nothing is written to disk.
"""

from __future__ import annotations

import bz2
import gzip
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, cast

from dynamo_ingest.core.errors import FileLayoutError
from dynamo_ingest.core.formats import COMPRESSION_SUFFIXES

# Enough bytes to recognise every signature below.
SIGNATURE_BYTES = 16
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
# zstd frames larger windows than this are refused (the format's default decoder limit),
# which bounds the decoder's memory whatever the file claims.
ZSTD_MAX_WINDOW = 1 << 27


@dataclass(frozen=True)
class Codec:
    """One compression: how to recognise it and how to read it as a stream."""

    name: str
    tool: str  # the command that decompresses it, for messages
    matches: Callable[[bytes], bool]  # True when a file's first bytes are its signature
    reader: Callable[[BinaryIO], BinaryIO]  # the decompressed stream over the raw one
    # Hadoop in Glue 5 (Spark 3.5) decompresses it by the file's suffix without native code.
    spark_reads: bool

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The file-name suffixes that say this compression (any case)."""
        return COMPRESSION_SUFFIXES[self.name]


def _gzip_reader(raw: BinaryIO) -> BinaryIO:
    # GzipFile reads every member of a multi-member file (concatenated gzip), as gunzip does.
    return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))


def _bzip2_reader(raw: BinaryIO) -> BinaryIO:
    return cast(BinaryIO, bz2.BZ2File(raw, mode="rb"))


def _zstd_reader(raw: BinaryIO) -> BinaryIO:
    try:
        import zstandard
    except ImportError as err:
        raise FileLayoutError("reading zstd needs the zstandard package (a dependency of "
                              "dynamo-ingest): install it, or decompress the file (unzstd)"
                              ) from err
    decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    return cast(BinaryIO, decompressor.stream_reader(raw, read_across_frames=True,
                                                     closefd=False))


CODECS: tuple[Codec, ...] = (
    Codec("gzip", "gunzip", lambda head: head.startswith(b"\x1f\x8b"), _gzip_reader, True),
    Codec("bzip2", "bunzip2", lambda head: _BZIP2.match(head) is not None, _bzip2_reader,
          True),
    # Hadoop's ZStandardCodec needs libhadoop built with zstd, which Spark's own jars lack:
    # the job splits such a file with the in-process splitter instead (spark.read).
    Codec("zstd", "unzstd", lambda head: head.startswith(b"\x28\xb5\x2f\xfd"), _zstd_reader,
          False),
)
# Recognised so that the message names them, but not read: an archive holds files, not a CSV.
_ARCHIVES = ((b"PK\x03\x04", "zip", "unzip"), (b"7z\xbc\xaf\x27\x1c", "7z", "7z x"))


def codec_named(name: str) -> Codec:
    """The codec called ``name`` (``gzip``, ``bzip2``, ``zstd``)."""
    for codec in CODECS:
        if codec.name == name:
            return codec
    raise KeyError(f"expected one of {', '.join(c.name for c in CODECS)}, found {name!r}")


def recognise(head: bytes, source: str) -> Codec | None:
    """The compression ``head`` (a file's first bytes) starts with, or None for plain bytes;
    :class:`FileLayoutError` naming an archive format, which holds files rather than a CSV."""
    for codec in CODECS:
        if codec.matches(head):
            return codec
    for magic, name, tool in _ARCHIVES:
        if head.startswith(magic):
            raise FileLayoutError(
                f"{source} is a {name} archive (its first bytes are {name}'s signature), not "
                f"CSV text: extract the CSV it holds ({tool}) and load that, or compress it "
                f"with one of {', '.join(c.name for c in CODECS)} instead")
    return None
