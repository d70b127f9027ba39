"""The Spark engine's reader: the records (RFC 4180) and their key-hash partitioning.

Spark reads the file as ISO-8859-1 so that every byte is one character: parsing is the same
as UTF-8 for ASCII delimiters and quotes, and the Python workers re-decode each value as
strict UTF-8, which rejects a record with invalid UTF-8 instead of silently turning its
bytes into U+FFFD. Every value is read as a string so numbers reach DynamoDB exactly as
written. Files are read with ``multiLine`` (quoted newlines), which gives one partition per
file, so ``monotonically_increasing_id`` numbers the data records 0, 1, 2 … in file order.

Values are byte-exact: Spark's parser (univocity), when it detects the line separator itself,
turns that separator into ``\\n`` inside quoted values (a quoted CRLF of a CRLF file, a quoted
CR of a CR file). Passing the separator as ``lineSep`` turns that normalisation off (Spark's
``CSVOptions`` sets ``normalizeLineEndingsWithinQuotes`` to ``!multiLine`` then), so the reader
is told the separator the splitter detects (:func:`detect_separator`, the same rule univocity
applies) from the first line break of the file, read once through Hadoop as Spark reads it.

A runaway record (no line break, a quote left open) is bounded as the splitter bounds it: no
value may be longer than the splitter's record limit (``maxCharsPerColumn``), and Spark's
error becomes a :class:`FileLayoutError` naming the file and the record (:func:`reading`).

Compressed files: Spark decompresses gzip and bzip2 itself, by the file's suffix (a gzip
file is not splittable, so one task reads it). zstd needs a native Hadoop library that
Spark's jars lack ("libhadoop was built without zstd support"), so such a file, and one whose
name does not say its compression, is split by the in-process splitter inside one task
(:func:`split_in_one_task`). Encodings: single-byte ones are read byte for byte like UTF-8
and decoded by the workers; UTF-16 is decoded by Spark and its values handed on as UTF-8.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dynamo_ingest.core.catalog import CsvSchema
from dynamo_ingest.core.errors import FileLayoutError
from dynamo_ingest.core.formats import JAVA_NAMES, UTF8, compression_named, is_utf16
from dynamo_ingest.engine.compression import Codec
from dynamo_ingest.engine.layout import CORRUPT_COLUMN, KEY_HASH, RECORD_NO, value_column
from dynamo_ingest.engine.records import (
    DEFAULT_RECORD_LIMIT,
    DYNAMODB_ITEM_LIMIT,
    SEPARATOR_WINDOW,
    Dialect,
    RecordSplitter,
    describe_size,
    detect_separator,
)
from dynamo_ingest.engine.source import SourceOpener

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from dynamo_ingest.core.mapping import KeyHashPart, TemplatePart

LOG = logging.getLogger(__name__)
# Spark's own option (DataSource.GLOB_PATHS_KEY) that reads the path literally: '[', '*', '?',
# '{' in an object key are characters of its name, not a pattern (a pattern could even match
# another file, or fail on a neighbour's name).
NO_GLOBBING = ("__globPaths__", "false")
# What Hadoop says when it cannot take a name literally: a retry meets the same name.
_UNREADABLE_PATH = ("URISyntaxException", "Path does not exist", "PATH_NOT_FOUND")


def is_unreadable_path(err: BaseException) -> bool:
    """True when Spark failed because Hadoop could not read the path as a file name."""
    return any(marker in str(err) for marker in _UNREADABLE_PATH)


# Univocity's own words when a value outgrows maxCharsPerColumn or a record maxColumns, and
# where it was (``record`` counts from 0 over every record, the header included).
_VALUE_TOO_LONG = "exceeds the maximum number of characters defined in your parser settings"
_TOO_MANY_FIELDS = re.compile(r"ArrayIndexOutOfBoundsException - Index \d+ out of bounds")
_PARSER_STATE = re.compile(r"Internal state when error was thrown: line=\d+, column=\d+, "
                           r"record=(\d+)")
# Every field but the last takes a delimiter, so a record the splitter accepts (at most its
# record limit) never has more fields than this; Spark's default (20,480) would fail a wider
# file that the splitter reads.
MAX_FIELDS = DEFAULT_RECORD_LIMIT // 2 + 1


def line_separator(spark: SparkSession, path: str) -> str | None:
    """The file's line separator as :func:`detect_separator` finds it in its first
    :data:`SEPARATOR_WINDOW` characters, read through Hadoop (and its codecs) as Spark reads
    the file; only the bytes up to the first line break are read, in small steps. None when
    Hadoop cannot read the file here: Spark then detects the separator itself (and its own
    read reports a path it cannot open, in its words)."""
    from py4j.protocol import Py4JJavaError  # type: ignore[import-untyped]

    jvm: Any = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    try:
        stream = hadoop_path.getFileSystem(conf).open(hadoop_path)
        try:
            codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
                conf).getCodec(hadoop_path)
            head = _head_to_first_line_break(
                stream if codec is None else codec.createInputStream(stream))
        finally:
            stream.close()
    except Py4JJavaError as err:
        LOG.warning("%s: cannot read the first line break (%s); Spark detects the line "
                    "separator itself, and turns it into LF inside quoted values",
                    path, str(err).strip().splitlines()[0][:200])
        return None
    return detect_separator(head[:SEPARATOR_WINDOW].decode("latin-1"))


def _head_to_first_line_break(stream: Any) -> bytes:
    """The stream's first bytes, up to its first line break and the byte after a CR (which
    tells CR from CRLF), or :data:`SEPARATOR_WINDOW` bytes."""
    head = b""
    while len(head) < SEPARATOR_WINDOW:
        found = re.search(b"[\r\n]", head)
        if found is not None and (found.group() == b"\n" or found.end() < len(head)):
            break
        step = bytes(stream.readNBytes(min(64 * 1024, SEPARATOR_WINDOW - len(head))))
        if not step:
            break
        head += step
    return head


@contextmanager
def reading(source_name: str, has_header: bool) -> Iterator[None]:
    """Turn Spark's failure on a record its parser will not hold into a
    :class:`FileLayoutError` naming the file, the record and the bound (any other error
    passes unchanged)."""
    try:
        yield
    except Exception as err:
        text = str(err)
        too_long = _VALUE_TOO_LONG in text
        if not too_long and not _TOO_MANY_FIELDS.search(text):
            raise
        state = _PARSER_STATE.search(text)
        record = ("a record" if state is None
                  else f"record {int(state.group(1)) + (0 if has_header else 1)}")
        if state is not None and has_header and state.group(1) == "0":
            record = "the header row"
        found = (f"holds a value over {describe_size(DEFAULT_RECORD_LIMIT)}" if too_long
                 else f"has more than {MAX_FIELDS} fields")
        raise FileLayoutError(
            f"{source_name}: {record} {found} (DynamoDB items are at most "
            f"{DYNAMODB_ITEM_LIMIT}), so Spark's CSV parser stopped the read there: is a quote "
            "left open or the delimiter wrong? Fix the record, or load the file with "
            "`--engine local`, which rejects such a record and loads the rest") from err


def spark_reads_itself(path: str, codec: Codec | None) -> bool:
    """True when Spark's own reader can read ``path``: Hadoop picks a codec by the file's
    suffix, so the suffix must say the compression the bytes are in (none for plain text),
    and Glue's Hadoop must have that codec without native code (gzip, bzip2: not zstd)."""
    named = compression_named(path)
    if codec is None:
        return named is None
    return codec.spark_reads and named == codec.name


def read_records(spark: SparkSession, path: str, schema: CsvSchema,
                 source_name: str | None = None, encoding: str = UTF8) -> DataFrame:
    """All data records as strings ``c0…cN``, plus the raw text of malformed ones and the
    1-based record number; ``path`` is read literally (no glob), as text in ``encoding``
    (its values handed on as UTF-8 bytes for UTF-16, see the module doc)."""
    from pyspark.sql import functions as F

    reader = spark.read.format("csv")
    # UTF-16's separator is two bytes a byte-wise look cannot tell: Spark detects it itself.
    separator = None if is_utf16(encoding) else line_separator(spark, path)
    if separator is not None:
        # Given, not detected: Spark keeps line breaks inside quoted values as written then.
        reader = reader.option("lineSep", separator)
    width = len(schema.columns) + schema.trailing_delimiter
    frame = (
        reader
        .schema(_record_schema(schema, with_number=False))
        .option("header", schema.has_header)
        .option("multiLine", True)
        .option("maxCharsPerColumn", DEFAULT_RECORD_LIMIT)
        .option("maxColumns", max(MAX_FIELDS, width + 1))
        # UTF-16 needs Spark to decode it; any other encoding is read byte for byte.
        .option("encoding", JAVA_NAMES.get(encoding, "ISO-8859-1"))
        .option("sep", schema.delimiter)
        .option("quote", schema.quote_char)
        .option("escape", schema.quote_char)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
        .option("ignoreLeadingWhiteSpace", False)
        .option("ignoreTrailingWhiteSpace", False)
        .option("enforceSchema", True)
        .option(*NO_GLOBBING)
        .load(path)
    )
    partitions = frame.rdd.getNumPartitions()
    if partitions == 0 and path.rstrip("/").rsplit("/", 1)[-1][:1] in ("_", "."):
        # Hadoop skips names that start with '_' or '.' as hidden: never load nothing silently.
        # (An empty file also gives no partition, and rightly no records.)
        raise FileLayoutError(
            f"{source_name or path}: Spark found no file to read at {path} (Hadoop skips file "
            "names that begin with '_' or '.' as hidden); read it through a copy under another "
            "name, as the job does, or rename the file")
    if partitions != 1:
        # Record numbers rely on one partition per file (multiLine files are not split).
        frame = frame.coalesce(1)
    if is_utf16(encoding):
        # The pipeline decodes UTF-8 bytes read as ISO-8859-1: hand the text over so.
        frame = frame.select(*(F.decode(F.encode(F.col(name), "UTF-8"), "ISO-8859-1").alias(name)
                               for name in frame.columns))
    return frame.withColumn(RECORD_NO, F.monotonically_increasing_id() + F.lit(1))


def _record_schema(schema: CsvSchema, *, with_number: bool) -> StructType:
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    # A delimiter ending every line makes one more (unnamed) field: read it, so the row is
    # not malformed and a value there can be rejected for what it is.
    width = len(schema.columns) + schema.trailing_delimiter
    fields = [StructField(value_column(i), StringType()) for i in range(width)]
    fields.append(StructField(CORRUPT_COLUMN, StringType()))
    if with_number:
        fields.append(StructField(RECORD_NO, LongType(), nullable=False))
    return StructType(fields)


def split_in_one_task(spark: SparkSession, opener: SourceOpener, schema: CsvSchema) -> DataFrame:
    """The records :func:`read_records` gives, split by the in-process splitter inside one
    Spark task, for a file Spark cannot read itself (zstd, or a name that does not say the
    file's compression): a compressed file is one task's stream either way, and the key
    repartition spreads the writes over every task after it."""
    width = len(schema.columns) + schema.trailing_delimiter
    dialect = Dialect(schema.delimiter, schema.quote_char, schema.has_header)

    def records(_: Iterable[int]) -> Iterator[tuple[object, ...]]:
        with opener() as stream:
            for record in RecordSplitter(stream, dialect, width, source=opener.name):
                # A record too long to hold is a malformed one here, named by its reason.
                corrupt = record.corrupt if record.rejected is None else record.rejected
                yield (*record.values, corrupt, record.record_no)

    rows = spark.sparkContext.parallelize([0], 1).mapPartitions(records)
    return spark.createDataFrame(rows, _record_schema(schema, with_number=True))


def key_hash(key_parts: Sequence[KeyHashPart]) -> SparkColumn:
    """A stable 64-bit hash of the key as the item will hold it; numbers hash by value
    (1 = 1.0 = 01), and a template key hashes its whole text.

    Two different keys may share a hash (the writer groups by the exact key), but the same
    key always lands in the same partition and next to its duplicates.
    """
    from pyspark.sql import functions as F

    def text(part: TemplatePart) -> SparkColumn:
        if isinstance(part, int):
            return F.col(value_column(part))
        # Values arrive as their UTF-8 bytes read as ISO-8859-1; literal text must match.
        return F.lit(part.encode("utf-8").decode("latin-1"))

    columns = []
    for parts, key_type in key_parts:
        value = text(parts[0]) if len(parts) == 1 else F.concat(*map(text, parts))
        if key_type == "N":
            # The builder strips what Python's str.strip() does (Unicode spaces too, like a
            # no-break space) from the decoded text; Spark's cast trims only ASCII. Strip the
            # same characters from the UTF-8 text, or " 1" and "1" land apart.
            decoded = F.decode(F.encode(value, "ISO-8859-1"), "UTF-8")
            value = F.regexp_replace(decoded, _EDGE_SPACE, "").cast("double")
        columns.append(value)
    return F.xxhash64(*columns)


# Java regex for the characters Python's str.isspace() accepts, at either end of a value.
_SPACE_CLASS = ("[\\x{09}-\\x{0D}\\x{1C}-\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"
                "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}]")
_EDGE_SPACE = f"^{_SPACE_CLASS}+|{_SPACE_CLASS}+$"


def partitioned_for_writing(records: DataFrame, key_parts: Sequence[KeyHashPart],
                            partitions: int) -> DataFrame:
    """Hash-partition into a fixed count and order each partition by (key hash, record).

    Deterministic for a given file and partition count, which is what resume relies on, and
    the hash order spreads writes over DynamoDB partitions instead of rolling through them.
    """
    return (records.withColumn(KEY_HASH, key_hash(key_parts))
            .repartition(partitions, KEY_HASH)
            .sortWithinPartitions(KEY_HASH, RECORD_NO))
