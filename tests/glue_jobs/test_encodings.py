"""``--encoding``: a cp1252, latin-1 or UTF-16 file loads exactly with both engines; a byte the
encoding does not define rejects its row (naming byte and encoding) and the rejects file keeps
the original bytes; the crawler records the encoding and the job reads it from the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.core.arguments import JobArguments, parse_job_arguments
from dynamo_ingest.core.catalog import ENCODING_PARAMETER, schema_from_glue_table
from dynamo_ingest.core.errors import ArgumentError
from dynamo_ingest.core.formats import normalise_encoding, resolve_encoding
from dynamo_ingest.engine.items import decode_utf8
from dynamo_ingest.engine.source import open_source
from dynamo_ingest.job import run
from dynamo_ingest.spark.runtime import Runtime

from crawlers.local_crawler import crawl, infer_schema
from tests.glue_jobs.conftest import TABLE, create_table, scan_table

ENGINES = ("spark", "local")
TEXT = 'id,Straße,note\n1,Zürich,"5 € — “quoted”"\n2,Café,"two\nlines"\n3,Ærø,plain\n'


def load(engine: str, spark: Any, **kwargs: Any) -> tuple[Any, dict[Any, Any]]:
    create_table(TABLE, [("id", "S", "HASH")])
    try:
        report = run(JobArguments(target_table=TABLE, engine=engine, partitions=2, **kwargs),
                     Runtime(spark=spark))
        return report, scan_table(TABLE)
    finally:
        boto3.client("dynamodb").delete_table(TableName=TABLE)


def test_encoding_names_normalise_and_unknown_ones_are_refused_with_the_list() -> None:
    assert [normalise_encoding(n) for n in ("latin-1", "ISO-8859-1", "windows-1252", "UTF8",
                                           "utf-16le")] == [
        "iso8859-1", "iso8859-1", "cp1252", "utf-8", "utf-16-le"]
    with pytest.raises(ArgumentError, match=r"--encoding expected one of utf-8, utf-16, .*"
                                            r"cp1252.* found 'klingon'"):
        parse_job_arguments(["--source_path", "x.csv", "--target_table", "t",
                             "--encoding", "klingon"])


def test_a_utf16_byte_order_mark_decides_unless_another_encoding_is_given() -> None:
    assert resolve_encoding(None, b"\xff\xfei\x00") == "utf-16"
    assert resolve_encoding("utf-16", b"\xfe\xff\x00i") == "utf-16"
    assert resolve_encoding("cp1252", b"\xff\xfei\x00") == "cp1252"
    assert resolve_encoding(None, b"id,n") == "utf-8"


def test_an_undefined_byte_rejects_the_row_naming_byte_column_and_encoding() -> None:
    values = ["1", b"a\x81b".decode("latin-1")]
    rejected = decode_utf8(values, ["id", "city"], "cp1252")
    assert rejected.reason == (  # type: ignore[union-attr]
        "byte 0x81 in column 2 'city' (byte offset 1) is not defined in cp1252: b'a\\x81b'")
    assert decode_utf8(["Z\xfcrich"], None, "cp1252") == ("Zürich",)


def test_utf16_is_read_as_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(TEXT.encode("utf-16"))
    with open_source(str(path)) as stream:
        assert stream.read() == TEXT.encode("utf-8")


@pytest.mark.spark
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16"])
def test_a_file_in_another_encoding_loads_exactly_the_table_of_its_utf8_copy(
        encoding: str, engine: str, aws: str, spark: Any, tmp_path: Path) -> None:
    text = TEXT if encoding != "latin-1" else TEXT.replace("€ — “quoted”", "½ «quoted»")
    utf8 = tmp_path / "utf8.csv"
    utf8.write_bytes(text.encode("utf-8"))
    _, expected = load(engine, spark, source_path=str(utf8))
    assert expected[("1",)]["Straße"] == {"S": "Zürich"}
    other = tmp_path / "other.csv"
    other.write_bytes(text.encode(encoding))
    # A UTF-16 file is recognised by its byte order mark; the others need --encoding.
    given = None if encoding == "utf-16" else encoding
    report, table = load(engine, spark, source_path=str(other), encoding=given)
    assert report.status == "SUCCEEDED", report.error
    assert table == expected


@pytest.mark.spark
@pytest.mark.parametrize("engine", ENGINES)
def test_the_rejects_file_keeps_the_original_bytes_of_a_row_cp1252_cannot_decode(
        engine: str, aws: str, spark: Any, tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_bytes(b"id,city\n1,Z\xfcrich\n2,bad\x81byte\n")
    report, table = load(engine, spark, source_path=str(source), encoding="cp1252")
    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert table[("1",)]["city"] == {"S": "Zürich"}
    assert set(table) == {("1",)}
    rejects = Path(report.rejects_path).read_bytes()
    assert b"2,bad\x81byte" in rejects
    assert b"byte 0x81 in column 2 (byte offset 3)" in rejects
    assert b"is not defined in cp1252" in rejects


def test_the_crawler_records_the_encoding_in_the_catalog(aws: str, tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_bytes(TEXT.encode("cp1252"))
    assert infer_schema(source, encoding="cp1252").names == ("id", "Straße", "note")
    crawl(boto3.client("glue"), None, str(source), "sales", "orders_csv", encoding="cp1252")
    table = boto3.client("glue").get_table(DatabaseName="sales", Name="orders_csv")["Table"]
    assert table["StorageDescriptor"]["SerdeInfo"]["Parameters"][ENCODING_PARAMETER] == "cp1252"
    assert schema_from_glue_table(table).encoding == "cp1252"
    utf8 = tmp_path / "utf8.csv"
    utf8.write_bytes(TEXT.encode("utf-8"))
    assert infer_schema(utf8).encoding is None  # UTF-8, the default, is not recorded


@pytest.mark.spark
@pytest.mark.parametrize("engine", ENGINES)
def test_the_job_reads_the_catalogs_encoding_when_none_is_given(
        engine: str, aws: str, spark: Any, tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_bytes(TEXT.encode("cp1252"))
    crawl(boto3.client("glue"), None, str(source), "sales", "orders_csv", encoding="cp1252")
    report, table = load(engine, spark, source_path=str(source), catalog_database="sales",
                         catalog_table="orders_csv")
    assert report.status == "SUCCEEDED", report.error
    assert table[("2",)]["Straße"] == {"S": "Café"}
    assert report.extra["encoding"] == "cp1252"
