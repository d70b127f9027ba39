"""The header parser: exact names, BOM, and the limits it enforces."""

from __future__ import annotations

import pytest
from dynamo_ingest.errors import SourceError
from dynamo_ingest.read import HEADER_PROBE_BYTES, parse_header


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
