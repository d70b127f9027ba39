"""Write modes and key mapping through the whole job (Spark + moto over HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.glue_jobs.conftest import TABLE, create_table, scan_table

pytestmark = pytest.mark.spark


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def put(item: dict[str, Any]) -> None:
    boto3.client("dynamodb").put_item(TableName=TABLE, Item=item)


def test_insert_keeps_existing_items_and_counts_them(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    put({"id": {"S": "1"}, "v": {"S": "old"}})
    source = write_csv(tmp_path / "in.csv", "id,v\n1,new\n2,new\n3,new\n")

    report = run_job(source_path=str(source), write_mode="insert")

    assert report.status == "SUCCEEDED", report.error
    assert report.counts.items_skipped_existing == 1
    assert report.counts.items_written == 2
    assert report.counts.identity_holds
    assert {k: v["v"]["S"] for k, v in scan_table(TABLE).items()} == {
        ("1",): "old", ("2",): "new", ("3",): "new"}


def test_merge_sets_only_the_file_columns(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    put({"id": {"S": "1"}, "kept": {"S": "yes"}, "v": {"S": "old"}})
    source = write_csv(tmp_path / "in.csv", "id,v\n1,new\n")

    report = run_job(source_path=str(source), write_mode="merge")

    assert report.status == "SUCCEEDED", report.error
    assert scan_table(TABLE)[("1",)] == {"id": {"S": "1"}, "kept": {"S": "yes"},
                                         "v": {"S": "new"}}


@pytest.mark.parametrize("order", ["old_then_new", "new_then_old"])
def test_version_guard_keeps_the_newest_whatever_the_file_order(run_job: Any, tmp_path: Path,
                                                                order: str) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    old = write_csv(tmp_path / "old.csv", "id,version,v\n1,1,old\n2,1,old\n")
    new = write_csv(tmp_path / "new.csv", "id,version,v\n1,2,new\n3,2,new\n")
    files = [old, new] if order == "old_then_new" else [new, old]

    reports = [run_job(source_path=str(f), version_column="version") for f in files]

    assert all(r.status == "SUCCEEDED" for r in reports), [r.error for r in reports]
    assert {k: v["v"]["S"] for k, v in scan_table(TABLE).items()} == {
        ("1",): "new", ("2",): "old", ("3",): "new"}
    stale = sum(r.counts.items_skipped_stale for r in reports)
    assert stale == (1 if order == "new_then_old" else 0)
    assert all(r.counts.identity_holds for r in reports)


def test_composite_key_rename_drop_and_ttl(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("pk", "S", "HASH")])
    source = write_csv(tmp_path / "in.csv",
                       "batchId,email,amount,secret,expires\n"
                       "b1,a@x.io,1.5,s,1700000000\nb1,c@x.io,2,s,2023-11-14T22:13:20Z\n")

    report = run_job(source_path=str(source), partition_key_template="{batchId}#{email}",
                     rename="amount:total", drop_columns="secret", ttl_attribute="expiresAt",
                     ttl_from_column="expires")

    assert report.status == "SUCCEEDED", report.error
    table = scan_table(TABLE)
    assert set(table) == {("b1#a@x.io",), ("b1#c@x.io",)}
    first = table[("b1#a@x.io",)]
    assert first["total"] == {"N": "1.5"}
    assert "secret" not in first
    assert "amount" not in first
    assert first["expiresAt"] == {"N": "1700000000"}
    assert table[("b1#c@x.io",)]["expiresAt"] == {"N": "1700000000"}


def test_sharded_partition_key_spreads_one_batch(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("batchId", "S", "HASH"), ("orderId", "S", "RANGE")])
    rows = "".join(f"b1,o{i}\n" for i in range(200))
    source = write_csv(tmp_path / "in.csv", "batchId,orderId\n" + rows)

    report = run_job(source_path=str(source), partition_key_shards=4)

    assert report.counts.items_written == 200
    shards = {key[0] for key in scan_table(TABLE)}
    assert shards == {"b1#0", "b1#1", "b1#2", "b1#3"}


def test_template_keys_equal_only_after_the_split_are_one_item_and_one_duplicate(
        run_job: Any, tmp_path: Path) -> None:
    # Each pair builds the same key from differently split text ("x#y" + "z" and "x" + "y#z"),
    # and "café" checks that literal text hashes like the file's UTF-8 values. Spread over 8
    # partitions, a hash of the separate columns would put most pairs apart and write both.
    create_table(TABLE, [("pk", "S", "HASH")])
    pairs = 40
    lines = ["a,b,v"]
    for i in range(pairs):
        lines.append(f"k{i}#café,z{i},first")
    for i in range(pairs):
        lines.append(f"k{i},café#z{i},second")
    source = write_csv(tmp_path / "in.csv", "\n".join(lines) + "\n")

    report = run_job(source_path=str(source), partition_key_template="{a}#{b}", partitions=8)

    assert report.status == "SUCCEEDED", report.error
    assert report.counts.identity_holds
    assert report.counts.duplicate_rows == pairs
    assert report.counts.items_written == pairs
    table = scan_table(TABLE)
    assert {v["v"]["S"] for v in table.values()} == {"second"}  # the later row wins
    assert set(table) == {(f"k{i}#café#z{i}",) for i in range(pairs)}


def test_numeric_template_keys_hash_by_value(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("n", "N", "HASH")])
    rows = "".join(f"{i},0,first\n" for i in range(1, 31))
    rows += "".join(f"0{i},0.0,second\n" for i in range(1, 31))
    source = write_csv(tmp_path / "in.csv", "a,b,v\n" + rows)

    report = run_job(source_path=str(source), partition_key_template="{a}{b}", partitions=8)

    assert report.status == "SUCCEEDED", report.error
    assert report.counts.duplicate_rows == 30
    assert {v["v"]["S"] for v in scan_table(TABLE).values()} == {"second"}


@pytest.mark.parametrize("write_mode", ["overwrite", "merge"])
def test_version_guard_sends_the_newest_version_of_a_key_repeated_in_one_file(
        run_job: Any, tmp_path: Path, write_mode: str) -> None:
    # The newer row comes first: keeping the last row would send ver 0, which the stored ver 1
    # refuses, and the file's ver 2 would never reach the table.
    create_table(TABLE, [("id", "S", "HASH")])
    put({"id": {"S": "b"}, "ver": {"N": "1"}})
    source = write_csv(tmp_path / "in.csv", "id,x,z,ver\nb,newb,,2\nb,newb0,,0\n")

    report = run_job(source_path=str(source), write_mode=write_mode, version_column="ver")

    assert report.status == "SUCCEEDED", report.error
    assert scan_table(TABLE)[("b",)] == {"id": {"S": "b"}, "x": {"S": "newb"}, "ver": {"N": "2"}}
    assert report.counts.duplicate_rows == 1
    assert report.counts.items_skipped_stale == 0
    assert report.counts.items_written == 1
    assert report.counts.identity_holds
