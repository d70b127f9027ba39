"""The file names a load accepts: one setting for the trigger, the job and Terraform.

A source is delimited text (``.csv``, ``.tsv``), plain or compressed (``.gz``, ``.bz2``,
``.zst``), any case. The trigger starts a load only for these names; Terraform's S3
notification filters are generated from the same list (``terraform/incoming_suffixes.json``,
which a test holds equal to :func:`incoming_suffixes`). The bytes decide in the end: a file's
compression is recognised by its signature (:mod:`dynamo_ingest.engine.compression`), so a
mislabelled file is still read as what it is.
"""

from __future__ import annotations

DATA_SUFFIXES = (".csv", ".tsv")
# Compression name → the file-name suffixes that say it (lower case; names match any case).
COMPRESSION_SUFFIXES: dict[str, tuple[str, ...]] = {
    "gzip": (".gz",),
    "bzip2": (".bz2",),
    "zstd": (".zst",),
}


def incoming_suffixes() -> tuple[str, ...]:
    """Every accepted suffix, in lower case: each data suffix, plain and compressed."""
    compressed = [suffix for suffixes in COMPRESSION_SUFFIXES.values() for suffix in suffixes]
    return tuple(data + codec for data in DATA_SUFFIXES for codec in ("", *compressed))


def is_incoming_name(key: str) -> bool:
    """True when an object key (or file name) ends with an accepted suffix, in any case."""
    return key.lower().endswith(incoming_suffixes())


def compression_named(name: str) -> str | None:
    """The compression a file name's last suffix says (``gzip`` …), or None."""
    lowered = name.lower()
    for codec, suffixes in COMPRESSION_SUFFIXES.items():
        if lowered.endswith(suffixes):
            return codec
    return None


# A compressed CSV rarely expands more than 20× (the generated orders file: gzip 7.2×, bzip2
# 11.8×, zstd 6.8×); 10 MB that expand to 10 GB (1000×) are a decompression bomb.
DEFAULT_MAX_EXPANSION = 200.0

# The encodings a source may be in (Python's codec names; aliases such as latin-1 or
# windows-1252 normalise to them). UTF-16 is transcoded to UTF-8 as the file is read; the
# single-byte ones are read as bytes and each value is decoded by the item builder.
UTF8 = "utf-8"
UTF16 = ("utf-16", "utf-16-le", "utf-16-be")
SINGLE_BYTE = ("cp1252", "iso8859-1", "iso8859-15", "cp1250", "cp1251")
SUPPORTED_ENCODINGS = (UTF8, *UTF16, *SINGLE_BYTE)
# Java's names of the UTF-16 forms, for Spark's `encoding` option.
JAVA_NAMES = {"utf-16": "UTF-16", "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE"}
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class UnknownEncodingError(ValueError):
    """An encoding name that is not one of :data:`SUPPORTED_ENCODINGS`."""


def normalise_encoding(name: str) -> str:
    """``name`` as :data:`SUPPORTED_ENCODINGS` spells it (``Latin-1`` → ``iso8859-1``);
    :class:`UnknownEncodingError` listing the supported ones otherwise."""
    import codecs

    try:
        normal = codecs.lookup(name.strip()).name
    except LookupError:
        normal = ""
    if normal not in SUPPORTED_ENCODINGS:
        raise UnknownEncodingError(
            f"expected one of {', '.join(SUPPORTED_ENCODINGS)} (or an alias such as latin-1, "
            f"windows-1252, utf8), found {name!r}")
    return normal


def resolve_encoding(requested: str | None, head: bytes) -> str:
    """The encoding a source is read in: the one requested, else UTF-16 when the text starts
    with a UTF-16 byte order mark, else UTF-8. A BOM also picks the byte order of a plain
    ``utf-16`` request."""
    chosen = normalise_encoding(requested) if requested else UTF8
    if head.startswith(_UTF16_BOMS) and chosen in (UTF8, "utf-16"):
        return "utf-16"
    return chosen


def is_utf16(encoding: str) -> bool:
    """True for the UTF-16 forms (transcoded to UTF-8 while reading)."""
    return encoding in UTF16


def value_encoding(encoding: str) -> str:
    """The encoding the item builder decodes values with: UTF-16 arrives as UTF-8."""
    return UTF8 if is_utf16(encoding) else encoding
