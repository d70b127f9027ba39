"""The Spark-free record splitter: the same records as Spark's reader, byte-exact values,
any chunk boundary, and bounded memory for a record of any length."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from dynamo_ingest.core.catalog import Column, CsvSchema
from dynamo_ingest.core.errors import ArgumentError, FileLayoutError
from dynamo_ingest.engine.layout import CORRUPT_COLUMN, RECORD_NO, parse_header, value_column
from dynamo_ingest.engine.records import Dialect, RecordSplitter, strip_line_end
from dynamo_ingest.spark.read import read_records

from dynamo_ingest_cli.datagen import generate_csv

CORPUS = Path(__file__).parents[1] / "csv_corpus"
Row = tuple[int, list[str | None], str | None]

# Files Spark's reader splits in surprising ways (each found by running Spark on it); the
# splitter must give exactly what Spark gives. (name, bytes, expected field count, dialect)
EDGE_CASES: list[tuple[str, bytes, int, Dialect]] = [
    ("empty_values_are_null", b'h1,h2,h3\n1,a,x\n2,,y\n3,"",z\n', 3, Dialect()),
    ("cr_before_lf_stays_in_value", b"h1,h2\n1,a\r\n2,b\n3,c\n", 2, Dialect()),
    ("lone_lf_in_crlf_file_is_text", b"h1,h2\r\n1,a\n2,b\r\n3,c\r\n", 2, Dialect()),
    ("lone_cr_in_crlf_file_is_text", b"h1,h2\r\n1,a\r2,b\r\n3,c\r\n", 2, Dialect()),
    ("lone_lf_after_delimiter_ends_record", b"h1,h2\r\n1,\n2,b\r\n3,\"c\"\n4,d\r\n", 2,
     Dialect()),
    ("cr_line_ends", b"h1,h2\r1,a\r2,b\r\n3,c\r", 2, Dialect()),
    ("cr_line_ends_malformed", b"h1,h2\r1\r2,b\r", 2, Dialect()),
    # In a CR file a "\n" is text, at a field's start, after a closing quote, anywhere.
    ("lf_is_text_in_a_cr_file", b'h1,h2\r1,\n\r2,"a"\nx,b\r\n3,a\nb\r4,"q"\n\r\n\r', 2,
     Dialect()),
    ("quoted_line_breaks_in_lf_file", b'h1,h2\n1,"a\r\nb"\n2,"c\rd"\n3,"e\nf"\n', 2,
     Dialect()),
    ("wrong_field_counts", b'h1,h2,h3\n1,a,x\n2,short\n3,long,x,extra\n4,"q,""",x,y\n', 3,
     Dialect()),
    ("wrong_field_counts_crlf", b'h1,h2,h3\r\n1,a,x\r\n2,short\r\n3,long,x,extra\r\n5,z,z', 3,
     Dialect()),
    ("open_quote_runs_to_eof", b'h1,h2\n1,a\n2,"open\n3,c\n', 2, Dialect()),
    ("open_quote_first_field", b'h1,h2\n1,a\n"2,open\n3,c\n', 2, Dialect()),
    ("open_quote_after_doubled_quote", b'h1,h2\n1,"ab""', 2, Dialect()),
    ("text_after_closing_quote", b'h1,h2\n1,"ab"x\n2,"cd" \n3,"e""f"g,z\n4,ok\n', 2,
     Dialect()),
    ("space_then_text_after_quote", b'h1,h2\n1,"a" x\n2,"b"\t,\n3,"c"\r\n4,"d"\x00\n', 2,
     Dialect()),
    ("quote_after_text_after_quote", b'h1,h2\n1,"a"b"c",d\n2,z\n', 2, Dialect()),
    ("quotes_inside_unquoted_values", b'h1,h2\n1,ab"c\n2,a"b"c\n3,x"\n4,ok\n', 2, Dialect()),
    ("space_before_quote", b'h1,h2\n1, "a,b"\n2,"c"\n', 2, Dialect()),
    ("blank_and_space_lines", b'h1,h2\n\n1,a\n   \n2,b\n\r\n,\n\n3,"x\n\ny"\n\n', 2, Dialect()),
    ("blank_lines_before_malformed", b"h1,h2\n1,a\n\n\n2\n3,b\n", 2, Dialect()),
    ("form_feed_line_end", b"h1,h2\n1\x0c\n2,b\n1\x0c", 2, Dialect()),
    ("no_trailing_newline", b"h1,h2\n1,a\n2,b", 2, Dialect()),
    ("malformed_last_without_newline", b"h1,h2\n1,a\n2", 2, Dialect()),
    ("bom_before_header", b"\xef\xbb\xbfh1,h2\n1,a\n", 2, Dialect()),
    ("no_header", b"1,a\n2,b\n", 2, Dialect(has_header=False)),
    ("no_header_blank_first", b"\n\n1,a\n", 2, Dialect(has_header=False)),
    ("one_column", b'id\n1\n\n2\n""\n3\n', 1, Dialect()),
    ("trailing_delimiter_as_extra_field", b"id,name,val,\n1,a,x,\n2,b,y,\n", 3, Dialect()),
    ("trailing_delimiter_as_column", b"id,name,val,\n1,a,x,\n2,b,y,z\n", 4, Dialect()),
    ("tab_delimiter", b'h1\th2\n1\ta,b\n2\t"c\td"\n', 2, Dialect(delimiter="\t")),
    ("semicolon_delimiter", b'h1;h2\n1;a,b\n2;"c;d"\n', 2, Dialect(delimiter=";")),
    ("single_quote_char", b"h1,h2\n1,'a,b'\n2,'it''s'\n3,\"x\"\n", 2, Dialect(quote_char="'")),
    ("empty_file", b"", 2, Dialect()),
    ("header_only_no_newline", b"h1,h2", 2, Dialect()),
    ("utf8_bytes", "h1,h2\n1,Zürich 😀\n".encode(), 2, Dialect()),
    ("quoted_multiline_header", b'"h\n1",h2\n1,a\n', 2, Dialect()),
    ("lf_inside_quoted_header_decides", b'"a\nb",h2\r\n1,x\r\n', 2, Dialect()),
    ("spaces_kept", b"h1,h2\n 1 , a \n", 2, Dialect()),
    ("nul_byte", b"h1,h2\n1,a\x00b\n", 2, Dialect()),
    # Lines the splitter reads in one go (a quoted last field, or every field quoted), beside
    # near misses it must leave to the scanner.
    ("quoted_last_field", b'h1,h2,h3\n1,,"c, ""d"" e"\n2,b"q,"x"\n3,b,""\n4,b,""""\n', 3,
     Dialect()),
    ("quoted_last_field_near_misses", b'h1,h2,h3\n1,b,"c"x"\n2,b,"c""\n3,"b","c"\n4,b,"c" \n'
     b'5,b,"c"""\n6,b,"c\r\nd"\n', 3, Dialect()),
    ("every_field_quoted", b'"h1","h2","h3"\n"1","a"",""b","c"\n"2","",""\n"3","a""","b"\n'
     b'"4","b",c"\n"5","a" ,"b"\n"6",b,"c"\n', 3, Dialect()),
    ("quoted_fields_crlf", b'h1,h2,h3\r\n1,a\nb,"c"\r\n"2","b\nc","d"\r\n3,\n,"e"\r\n', 3,
     Dialect()),
    ("quoted_fields_cr", b'h1,h2\r1,"a\nb"\r"2","c"\r', 2, Dialect()),
]


def split(data: bytes, dialect: Dialect | None = None, width: int | None = None,
          **options: Any) -> list[Row]:
    """(record number, values, corrupt text) of every record the splitter yields."""
    return [(r.record_no, r.values, r.corrupt)
            for r in RecordSplitter(io.BytesIO(data), dialect or Dialect(), width, **options)]


def spark_rows(spark: Any, path: Path, width: int, dialect: Dialect) -> list[Row]:
    """The same triple from today's Spark path."""
    schema = CsvSchema(columns=tuple(Column(f"c{i}") for i in range(width)),
                       delimiter=dialect.delimiter, quote_char=dialect.quote_char,
                       has_header=dialect.has_header)
    rows = read_records(spark, str(path), schema).orderBy(RECORD_NO).collect()
    return [(row[RECORD_NO], [row[value_column(i)] for i in range(width)], row[CORRUPT_COLUMN])
            for row in rows]


@pytest.mark.spark
@pytest.mark.parametrize(("data", "width", "dialect"), [case[1:] for case in EDGE_CASES],
                         ids=[case[0] for case in EDGE_CASES])
def test_edge_cases_split_as_spark_splits_them(spark: Any, tmp_path: Path, data: bytes,
                                               width: int, dialect: Dialect) -> None:
    path = tmp_path / "edge.csv"
    path.write_bytes(data)

    assert split(data, dialect, width) == spark_rows(spark, path, width, dialect)


@pytest.mark.spark
@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.csv")), ids=lambda p: p.stem)
def test_corpus_files_split_as_spark_splits_them(spark: Any, path: Path) -> None:
    width = len(parse_header(path.read_bytes(), ",", '"', path.name))

    assert split(path.read_bytes(), width=width) == spark_rows(spark, path, width, Dialect())


@pytest.mark.spark
@pytest.mark.parametrize("line_ending", ["crlf", "lf"])
def test_generated_file_splits_as_spark_splits_it(spark: Any, tmp_path: Path,
                                                  line_ending: Any) -> None:
    generated = generate_csv(tmp_path / "orders.csv", 3000, duplicate_every=7, bad_every=11,
                             line_ending=line_ending)
    width = len(generated.header)

    mine = split(generated.path.read_bytes(), width=width, chunk_bytes=4096)

    assert mine == spark_rows(spark, generated.path, width, Dialect())
    assert len(mine) == generated.rows
    malformed = {number for number, _, corrupt in mine if corrupt is not None}
    assert malformed == {n for n, why in generated.expected_rejects.items()
                         if why.startswith("column_count")}
    assert malformed  # the file does hold rows with a wrong field count


@pytest.mark.spark
def test_line_breaks_in_quoted_values_stay_as_written(spark: Any, tmp_path: Path) -> None:
    # Spark, given the separator, keeps a quoted separator (and a lone CR in a CR file) as
    # written, as the splitter does; detecting it itself, it turned them into "\n".
    cases = [b'h1,h2\r\n1,"a\r\nb"\r\n2,"c\rd"\r\n3,"e\nf"\r\n4,"m\r\nl",x\r\n',
             b'h1,h2\r1,"a\r\nb"\r2,"c\rd"\r3,"e\nf"\r']
    for data in cases:
        path = tmp_path / "quoted.csv"
        path.write_bytes(data)

        mine = split(data, width=2)
        theirs = spark_rows(spark, path, 2, Dialect())

        assert [values[1] for _, values, _ in mine] == ["a\r\nb", "c\rd", "e\nf", "m\r\nl"][
            :len(mine)]
        assert mine == theirs


TRICKY = ('id,name,note\r\n1,"Zürich, ""Altstadt""","a\r\nb"\r\n\r\n2,😀,"x"\r\n'
          '3,"\r\n\r\n",plain "quote"\r\n4,"open').encode()
TRICKY_ROWS: list[Row] = [
    (1, ["1", 'Zürich, "Altstadt"'.encode().decode("latin-1"), "a\r\nb"], None),
    (2, ["2", "😀".encode().decode("latin-1"), "x"], None),
    (3, ["3", "\r\n\r\n", 'plain "quote"'], None),
    (4, ["4", "open", None], '4,"open'),
]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 64, 1 << 20])
def test_chunk_boundaries_change_nothing(chunk_bytes: int) -> None:
    # Boundaries fall inside quotes, doubled quotes, CRLF pairs and multi-byte UTF-8.
    assert split(TRICKY, chunk_bytes=chunk_bytes) == TRICKY_ROWS


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7])
@pytest.mark.parametrize(("data", "width", "dialect"), [case[1:] for case in EDGE_CASES],
                         ids=[case[0] for case in EDGE_CASES])
def test_edge_cases_do_not_depend_on_chunk_size(data: bytes, width: int, dialect: Dialect,
                                                chunk_bytes: int) -> None:
    assert split(data, dialect, width, chunk_bytes=chunk_bytes) == split(data, dialect, width)


def test_values_are_the_file_bytes_read_as_latin1() -> None:
    rows = split("id,city\n1,Zürich\n2,caf\xe9\n".encode() + b"3,\xff\xfe\n")
    assert [values[1].encode("latin-1") for _, values, _ in rows if values[1]] == [
        "Zürich".encode(), "caf\xe9".encode(), b"\xff\xfe"]


@pytest.mark.parametrize(("data", "expected"), [
    (b"id,v\n1,a\n2,b", [(1, ["1", "a"], None), (2, ["2", "b"], None)]),
    (b"id,v\n\n1,a\n\n\n2,b\n\n", [(1, ["1", "a"], None), (2, ["2", "b"], None)]),
    (b"id,v\r1,a\r2,b\r", [(1, ["1", "a"], None), (2, ["2", "b"], None)]),
    (b"\xef\xbb\xbfid,v\r\n1,a\r\n", [(1, ["1", "a"], None)]),
    (b"id,v,\n1,a,\n", [(1, ["1", "a", None], None)]),
])
def test_line_layouts(data: bytes, expected: list[Row]) -> None:
    assert split(data) == expected


def test_bom_is_dropped_from_the_header_and_from_a_file_without_one() -> None:
    splitter = RecordSplitter(io.BytesIO(b"\xef\xbb\xbfid,v\n1,a\n"), Dialect())
    assert [r.values for r in splitter] == [["1", "a"]]
    assert splitter.header == ["id", "v"]
    # Spark keeps the BOM in the first value of a headerless file; a BOM is never data.
    assert split(b"\xef\xbb\xbf1,a\n", Dialect(has_header=False)) == [(1, ["1", "a"], None)]


@pytest.mark.parametrize(("dialect", "data", "quoted"), [
    (Dialect(quote_char="'"), b"id,v\n1,'a,b'\n2,'it''s'\n", "it's"),
    (Dialect(delimiter="\t"), b'id\tv\n1\ta,b\n2\t"say ""hi""\ttab"\n', 'say "hi"\ttab'),
    (Dialect(delimiter=";"), b'id;v\n1;a,b\n2;"x;""y"""\n', 'x;"y"'),
])
def test_other_delimiters_and_quotes(dialect: Dialect, data: bytes, quoted: str) -> None:
    assert split(data, dialect) == [(1, ["1", "a,b"], None), (2, ["2", quoted], None)]


def test_width_defaults_to_the_header() -> None:
    assert split(b"id,v\n1\n2,a,b\n") == [(1, ["1", None], "1"), (2, ["2", "a"], "2,a,b")]
    assert split(b"1,a\n2\n", Dialect(has_header=False)) == [(1, ["1", "a"], None),
                                                            (2, ["2", None], "2")]


def test_one_column_file() -> None:
    assert split(b"id\n1\n\n2\n") == [(1, ["1"], None), (2, ["2"], None)]


def test_offsets_give_each_record_bytes() -> None:
    data = b'id,v\r\n1,"a\r\nb"\r\n\r\n2,x'
    records = list(RecordSplitter(io.BytesIO(data), Dialect(), chunk_bytes=3))
    assert [data[r.start:r.end] for r in records] == [b'1,"a\r\nb"', b"2,x"]


def test_malformed_text_drops_only_the_line_end() -> None:
    assert [strip_line_end(t) for t in ("a\r\n", "a\n", "a\r", "a\f", "a\n\n", "a")] == [
        "a", "a", "a\r", "a", "a\n", "a"]


class _GeneratedStream(io.RawIOBase):
    """A long stream produced piece by piece, so the test itself never holds it."""

    def __init__(self, pieces: Sequence[tuple[bytes, int]]) -> None:
        self._pieces = [(piece, count) for piece, count in pieces]
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._pending and self._pieces:
            piece, count = self._pieces[0]
            take = max(1, min(count, 65536 // len(piece)))
            self._pending = piece * take
            self._pieces[0] = (piece, count - take)
            if count - take == 0:
                self._pieces.pop(0)
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@pytest.mark.parametrize(("body", "repeat"), [
    (b"x", 64 * 1024 * 1024),  # 64 MiB without a line break
    (b"line with a quoted break\r\n", 2 * 1024 * 1024),  # 52 MiB inside one quoted value
])
def test_oversized_record_is_rejected_without_being_held(body: bytes, repeat: int) -> None:
    limit, chunk = 1024 * 1024, 64 * 1024
    opening = b'"' if b"\n" in body else b""
    stream = _GeneratedStream([(b"id,v\n1,ok\n2," + opening, 1), (body, repeat),
                               (opening + b"\n3,ok\n", 1)])
    splitter = RecordSplitter(cast(BinaryIO, stream), Dialect(), chunk_bytes=chunk,
                              record_limit=limit)

    records = list(splitter)

    assert [(r.record_no, r.values, r.rejected) for r in records] == [
        (1, ["1", "ok"], None),
        (2, [None, None], "record 2 is over 1 MiB (DynamoDB items are at most 400 KB)"),
        (3, ["3", "ok"], None)]
    assert records[1].end - records[1].start > 50 * limit
    assert splitter.max_buffered <= limit + 2 * chunk


def test_record_limit_counts_the_record_bytes() -> None:
    fits, over = b"1," + b"v" * 8, b"2," + b"v" * 9  # 10 and 11 bytes
    records = list(RecordSplitter(io.BytesIO(b"id,v\n" + fits + b"\n" + over + b"\n"),
                                  Dialect(), record_limit=10, chunk_bytes=3))
    assert [(r.values, r.rejected) for r in records] == [
        (["1", "v" * 8], None),
        ([None, None], "record 2 is over 10 bytes (DynamoDB items are at most 400 KB)")]


def test_oversized_header_is_a_layout_error() -> None:
    with pytest.raises(FileLayoutError, match="header row is over 10 bytes; expected"):
        list(RecordSplitter(io.BytesIO(b"a" * 20 + b"\n1\n"), Dialect(), record_limit=10))


@pytest.mark.parametrize(("options", "message"), [
    ({"delimiter": ",,"}, "delimiter expects one character"),
    ({"quote_char": "\n"}, "quote_char expects one character"),
    ({"delimiter": '"'}, "must differ"),
])
def test_dialect_refuses_what_it_cannot_split(options: dict[str, str], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        Dialect(**options)
