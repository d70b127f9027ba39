"""The header parser: exact names, BOM, and the limits it enforces."""

from __future__ import annotations

from typing import Any

import pytest
from dynamo_ingest.core.errors import SourceError
from dynamo_ingest.engine.layout import HEADER_PROBE_BYTES, parse_header, read_header, value_column
from dynamo_ingest.spark.read import key_hash


def test_header_keeps_case_and_drops_bom() -> None:
    head = b"\xef\xbb\xbfbatchId,Order Id,amount\r\n1,2,3\r\n"
    assert parse_header(head, ",", '"', "f.csv") == ["batchId", "Order Id", "amount"]


def test_full_probe_with_many_rows_is_fine() -> None:
    head = (b"id,v\n" + b"1,abcdefgh\n" * HEADER_PROBE_BYTES)[:HEADER_PROBE_BYTES]
    assert parse_header(head, ",", '"', "f.csv") == ["id", "v"]


def test_header_longer_than_the_probe_is_refused() -> None:
    head = b"".join(b"c%d," % i for i in range(HEADER_PROBE_BYTES // 4))
    with pytest.raises(SourceError, match="longer than"):
        parse_header(head[:HEADER_PROBE_BYTES], ",", '"', "f.csv")


@pytest.mark.parametrize(("head", "reason"), [
    (b"", "empty"),
    (b"id,,v\n1,2,3\n", "no name"),
    (b"id,v,id\n1,2,3\n", "repeat"),
    (b"id,caf\xe9\n1,2\n", "not valid UTF-8"),
])
def test_bad_headers_name_the_problem(head: bytes, reason: str) -> None:
    with pytest.raises(SourceError, match=reason):
        parse_header(head, ",", '"', "f.csv")


def test_bad_bytes_after_the_header_do_not_matter() -> None:
    assert parse_header(b"id,v\n1,\xff\xfe\n", ",", '"', "f.csv") == ["id", "v"]


@pytest.mark.spark
def test_number_keys_hash_alike_around_every_space_python_strips(spark: Any) -> None:
    # The item builder strips str.isspace() characters from an N key; Spark must put the
    # stripped and unstripped forms in one hash group or the duplicate escapes de-duplication.
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    values = ["1", "1.0", "01", "1e0", *(f"{s}1{s}" for s in spaces), "2", "\u200b1"]
    # As Spark hands them over: the file's UTF-8 bytes read as ISO-8859-1.
    rows = [(v.encode("utf-8").decode("latin-1"),) for v in values]
    frame = spark.createDataFrame(rows, [value_column(0)])

    hashes = [r[0] for r in frame.select(key_hash([((0,), "N")])).collect()]

    assert set(hashes[:-2]) == {hashes[0]}  # every spelling of 1, every space stripped
    assert hashes[-2] != hashes[0]  # 2 is another key
    assert hashes[-1] != hashes[0]  # a zero-width space is not whitespace to Python either


def test_a_delimiter_ending_every_line_drops_the_unnamed_last_column() -> None:
    header = read_header(b"id,name,val,\r\n1,a,2,\r\n", ",", '"', "f.csv")
    assert (header.names, header.trailing_delimiter) == (["id", "name", "val"], True)
    assert not read_header(b"id,name\n", ",", '"', "f.csv").trailing_delimiter
    # Only the last column may be unnamed.
    with pytest.raises(SourceError, match=r"header column\(s\) \[2\] have no name"):
        read_header(b"id,,val\n", ",", '"', "f.csv")
