"""register_table and crawl against the moto server (real HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.core.catalog import (
    Column,
    CsvSchema,
    get_catalog_schema,
    schema_from_glue_table,
)
from dynamo_ingest.core.errors import CatalogError, SourceError

from crawlers import local_crawler
from crawlers.local_crawler import crawl, infer_schema, register_table

BUCKET = "ingest-bucket"


@pytest.fixture
def glue(aws: str) -> Any:
    return boto3.client("glue")


@pytest.fixture
def s3(aws: str) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_register_round_trips_through_the_catalog(glue: Any, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("orderId|Amount|paid\n1|2.5|true\n2|3|false\n", encoding="utf-8")
    schema = infer_schema(path)

    register_table(glue, "ingest", "orders", schema, "s3://b/schema/orders/")

    table = glue.get_table(DatabaseName="ingest", Name="orders")["Table"]
    assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == [
        ("orderid", "bigint"), ("amount", "double"), ("paid", "boolean")]
    assert table["StorageDescriptor"]["Location"] == "s3://b/schema/orders/"
    from_catalog = schema_from_glue_table(table)
    assert from_catalog.columns == tuple(Column(c.name.lower(), c.type) for c in schema.columns)
    assert (from_catalog.delimiter, from_catalog.quote_char) == ("|", '"')
    assert from_catalog.with_header_names(["orderId", "Amount", "paid"]) == schema


def test_registering_again_updates_the_table(glue: Any) -> None:
    first = CsvSchema((Column("id", "bigint"), Column("name")))
    second = CsvSchema((Column("id", "string"), Column("name"), Column("Email")), delimiter=";")

    register_table(glue, "ingest", "people", first, "s3://b/schema/people/")
    register_table(glue, "ingest", "people", second, "s3://b/schema/people/")

    catalog = get_catalog_schema(glue, "ingest", "people")
    assert catalog.columns == (Column("id", "string"), Column("name"), Column("email"))
    assert catalog.delimiter == ";"
    assert [t["Name"] for t in glue.get_tables(DatabaseName="ingest")["TableList"]] == ["people"]


def test_crawl_s3_reads_only_a_range(glue: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = 4096
    monkeypatch.setattr(local_crawler, "S3_SAMPLE_BYTES", sample)
    header = b"id,flag\n"
    rows = b"".join(b"%d,true\n" % i for i in range(100_000, 120_000))  # 12 bytes a row
    # The range ends 8 bytes into a row ("100340,t"): a partial value would type flag string.
    assert (sample - len(header)) % 12 == 8
    s3.put_object(Bucket=BUCKET, Key="incoming/big.csv", Body=header + rows)
    ranges: list[str] = []
    s3.meta.events.register(
        "before-send.s3.GetObject",
        lambda request, **_: ranges.append(request.headers.get("Range", b"").decode()))

    schema = crawl(glue, s3, f"s3://{BUCKET}/incoming/big.csv", "ingest", "flags")

    assert ranges == [f"bytes=0-{sample - 1}"]
    assert [(c.name, c.type) for c in schema.columns] == [("id", "bigint"), ("flag", "boolean")]
    table = glue.get_table(DatabaseName="ingest", Name="flags")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/incoming/"
    assert schema_from_glue_table(table).names == ("id", "flag")


def test_crawl_small_s3_object_whole(glue: Any, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="schema/orders/sample.csv",
                  Body="\ufeffbatchId,total\r\n7,1.5\r\n".encode())

    schema = crawl(glue, s3, f"s3://{BUCKET}/schema/orders/sample.csv", "ingest", "orders")

    assert schema.columns == (Column("batchId", "bigint"), Column("total", "double"))
    assert get_catalog_schema(glue, "ingest", "orders").names == ("batchid", "total")


def test_crawl_local_file(glue: Any, tmp_path: Path) -> None:
    path = tmp_path / "local.csv"
    path.write_text("id\tname\n1\tann\n", encoding="utf-8")

    schema = crawl(glue, None, str(path), "ingest", "local")

    table = glue.get_table(DatabaseName="ingest", Name="local")["Table"]
    assert table["StorageDescriptor"]["Location"] == tmp_path.resolve().as_uri() + "/"
    assert schema_from_glue_table(table).delimiter == "\t"
    assert schema.names == ("id", "name")


def test_crawl_missing_object_is_a_source_error(glue: Any, s3: Any) -> None:
    with pytest.raises(SourceError, match="NoSuchKey"):
        crawl(glue, s3, f"s3://{BUCKET}/incoming/missing.csv", "ingest", "t")


def test_crawl_empty_object_says_so(glue: Any, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="incoming/empty.csv", Body=b"")
    with pytest.raises(CatalogError, match="is empty"):
        crawl(glue, s3, f"s3://{BUCKET}/incoming/empty.csv", "ingest", "t")


def test_crawl_s3_without_client_is_refused(glue: Any) -> None:
    with pytest.raises(CatalogError, match="no S3 client"):
        crawl(glue, None, "s3://bucket/incoming/a.csv", "ingest", "t")


def test_failed_crawl_registers_nothing(glue: Any, tmp_path: Path) -> None:
    path = tmp_path / "headerless.csv"
    path.write_text("1,2\n3,4\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="no header row"):
        crawl(glue, None, str(path), "ingest", "t")
    with pytest.raises(CatalogError, match="not found"):
        get_catalog_schema(glue, "ingest", "t")


def test_a_catalog_type_names_its_table_as_where_it_came_from(glue: Any, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("id,code\na,1\n", encoding="utf-8")
    register_table(glue, "sales", "orders", infer_schema(path), "s3://b/p/")

    schema = get_catalog_schema(glue, "sales", "orders")

    assert {c.origin for c in schema.columns} == {"the catalog table sales.orders"}
