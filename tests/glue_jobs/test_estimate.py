"""``estimate``: the corpus counts, a record too long to hold in bounded memory, and write units
equal to what an AWS-like endpoint charges for the same items."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.core.catalog import Column, CsvSchema
from dynamo_ingest.core.keys import KeyAttribute, KeySchema
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.engine.items import BuiltItem, ItemBuilder, decode_utf8
from dynamo_ingest.engine.layout import parse_header
from dynamo_ingest.engine.sizing import item_size, write_units
from dynamo_ingest.engine.transport import BotocoreTransport
from dynamo_ingest.engine.writer import BatchWriter, RetryPolicy, WriteRequest
from dynamo_ingest.estimate import (
    GlueWorkers,
    Prices,
    estimate_source,
    secondary_indexes,
)

from local_aws.dynamodb_double import DynamoDBDouble, FaultPlan
from tests.glue_jobs.conftest import create_table

CORPUS = Path(__file__).parents[1] / "csv_corpus"
EXPECTED: dict[str, Any] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
ID_S = KeySchema(KeyAttribute("id", "S"))


# Records are split by the engine's RecordSplitter, whose agreement with Spark's reader
# tests/glue_jobs/test_records.py checks; here, that estimate's counts are the job's.


# --- the corpus: estimate's counts are the job's -------------------------------------------

def corpus_schema(path: Path) -> CsvSchema:
    catalog = CsvSchema((Column("id", "bigint"), Column("name"), Column("amount", "double")))
    return catalog.with_header_names(parse_header(path.read_bytes()[:4096], ",", '"', str(path)))


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_corpus_counts_equal_the_jobs(case: str) -> None:
    expected = EXPECTED[case]
    path = CORPUS / f"{case}.csv"

    result = estimate_source(path, schema=corpus_schema(path), key_schema=ID_S)

    assert result.items == len(expected["items"])
    assert result.duplicate_rows == expected["duplicates"]
    assert result.rejected_rows == len(expected["rejected"])
    assert result.rows == result.items + result.rejected_rows + result.duplicate_rows
    reasons = {str(n): reason for n, reason in result.rejected_examples}
    assert sorted(reasons) == sorted(expected["rejected"])
    for record_no, fragment in expected["rejected"].items():
        assert fragment in reasons[record_no]
    written = [{"id": {"S": key}, **attrs} for key, attrs in expected["items"].items()]
    assert result.wcu_total == sum(write_units(item_size(item)) for item in written)


# --- write units: estimate vs what an AWS-like endpoint charges -----------------------------

def generated_csv(path: Path, rows: int, seed: int) -> None:
    """Rows of varied sizes (some over 1 KB, multi-byte text), duplicate keys, bad rows."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "city", "note", "qty"])
        for _ in range(rows):
            key = str(rng.randrange(rows * 3 // 4))
            note = rng.choice(["", "x" * rng.randrange(2500), "é€😀" * rng.randrange(300)])
            qty = rng.choice([str(rng.randrange(10**6)), "1.250", "bad", ""])
            writer.writerow([key, rng.choice(["Paris", "Oslo", ""]), note, qty])


SCHEMA = CsvSchema((Column("id"), Column("city"), Column("note"), Column("qty", "double")))


def load_like_the_job(path: Path, keys: KeySchema, mapping: AttributeMapping | None
                      ) -> list[WriteRequest]:
    """The items the job writes (last row per key), read with Python's csv module."""
    builder = ItemBuilder(SCHEMA.columns, keys, "omit", mapping)
    winners: dict[tuple[str, ...], BuiltItem] = {}
    with path.open(encoding="latin-1", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            decoded = decode_utf8(row)
            built = builder.build(decoded) if isinstance(decoded, tuple) else decoded
            if isinstance(built, BuiltItem):
                winners.pop(built.key, None)
                winners[built.key] = built
    return [WriteRequest(n, n + 1, b.item, b.key, b.size, b.wcu)
            for n, b in enumerate(winners.values())]


def test_estimated_wcu_equals_the_consumed_wcu_of_the_matching_write(aws: str,
                                                                      tmp_path: Path) -> None:
    create_table("orders", [("id", "S", "HASH")])
    source = tmp_path / "orders.csv"
    generated_csv(source, 600, seed=7)
    mapping = AttributeMapping(column_types=(("qty", "N"),), ttl_attribute="ttl",
                               ttl_seconds=3600, load_time=1_700_000_000)
    table = boto3.client("dynamodb").describe_table(TableName="orders")["Table"]

    result = estimate_source(source, schema=SCHEMA, key_schema=ID_S, mapping=mapping,
                             table_description=table)
    requests = load_like_the_job(source, ID_S, mapping)
    with DynamoDBDouble(aws, FaultPlan(unprocessed_share=0.1, seed=2)) as double:
        transport = BotocoreTransport.from_config(double.url, "us-east-1",
                                                  ("testing", "testing", None))
        outcome = BatchWriter(transport, "orders",
                              policy=RetryPolicy(base_delay_s=0.001, max_delay_s=0.01)
                              ).write_all(requests)

    assert not outcome.failed
    assert result.items == outcome.stats.items_written == len(requests)
    assert result.wcu_total == outcome.stats.wcu_consumed
    assert result.wcu_total > result.items  # some items are over 1 KB
    assert result.rows == result.items + result.rejected_rows + result.duplicate_rows


# --- indexes, hot keys, time and cost ------------------------------------------------------

def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def test_index_writes_count_only_items_in_the_index_and_their_projection(tmp_path: Path) -> None:
    table = {
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in
                                 (("id", "S"), ("email", "S"), ("city", "S"), ("zip", "S"))],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {"IndexName": "by-email", "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}},
            {"IndexName": "by-city", "KeySchema": [{"AttributeName": "city", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}},
            {"IndexName": "by-zip", "KeySchema": [{"AttributeName": "zip", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["note"]}}],
        "ItemCount": 10}
    columns = ["id", "email", "city", "zip", "note"]
    rows = [[str(n), f"u{n}@x.io" if n % 2 else "", "Oslo" if n % 3 else "", "", "n" * 900 * n]
            for n in range(6)]
    rows.append(["6", "", "", "12345", "short"])
    rows.append(["7", "", "", "", "z"])
    path = write_rows(tmp_path / "users.csv", columns, rows)
    schema = CsvSchema(tuple(Column(c) for c in columns))
    schema_zip_n = CsvSchema(tuple(Column(c, "bigint" if c == "zip" else "string")
                                   for c in columns))

    result = estimate_source(path, schema=schema, key_schema=ID_S, table_description=table)

    items = {row[0]: {k: {"S": v} for k, v in zip(columns, row, strict=True) if v}
             for row in rows}
    assert result.wcu_table == sum(write_units(item_size(i)) for i in items.values())
    assert result.wcu_indexes == {
        "by-email": sum(write_units(item_size(i)) for i in items.values() if "email" in i),
        "by-city": sum(write_units(item_size({k: i[k] for k in ("id", "city")}))
                       for i in items.values() if "city" in i),
        "by-zip": write_units(item_size({k: items["6"][k] for k in ("id", "zip", "note")}))}
    assert result.wcu_total == result.wcu_table + sum(result.wcu_indexes.values())
    assert result.costs.import_from_s3 is None  # the table holds items
    # The catalog types zip as a number but the GSI declares it S: like the job, the estimate
    # stores the text, so the item is written and counted in the index.
    by_index = estimate_source(path, schema=schema_zip_n, key_schema=ID_S, table_description=table)
    assert by_index.rejected_rows == 0
    assert by_index.wcu_indexes == result.wcu_indexes
    # A value the index key cannot hold rejects its row, naming the index.
    numeric = {**table, "AttributeDefinitions": [
        {"AttributeName": n, "AttributeType": "N" if n == "city" else "S"}
        for n in ("id", "email", "city", "zip")]}
    wrong = estimate_source(path, schema=schema, key_schema=ID_S, table_description=numeric)
    assert wrong.rejected_rows == 4  # the rows whose city is "Oslo"
    assert wrong.rejected_examples[0] == (
        2, "column 'city': 'Oslo' is not a number, and GSI by-city declares city as N")


def test_the_item_collection_check_applies_only_with_a_local_index(tmp_path: Path) -> None:
    keys = KeySchema(KeyAttribute("pk", "S"), KeyAttribute("sk", "S"))
    base = {"AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"}
                                     for n in ("pk", "sk", "day")],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "sk", "KeyType": "RANGE"}]}
    lsi = {**base, "LocalSecondaryIndexes": [{
        "IndexName": "by-day", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                             {"AttributeName": "day", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"}}]}
    rows = [["big", str(n), "mon", "x" * 500] for n in range(20)] + [["small", "1", "", "y"]]
    path = write_rows(tmp_path / "c.csv", ["pk", "sk", "day", "v"], rows)
    schema = CsvSchema(tuple(Column(c) for c in ("pk", "sk", "day", "v")))

    without = estimate_source(path, schema=schema, key_schema=keys, table_description=base)
    with_lsi = estimate_source(path, schema=schema, key_schema=keys, table_description=lsi)

    assert without.item_collections is None
    assert any("does not apply" in note for note in without.notes)
    collections = with_lsi.item_collections
    assert collections is not None
    assert collections.largest_partition_key == "big"
    big = [{"pk": {"S": "big"}, "sk": {"S": r[1]}, "day": {"S": "mon"}, "v": {"S": r[3]}}
           for r in rows[:20]]
    entry = [item_size({k: i[k] for k in ("pk", "sk", "day")}) + 100 for i in big]
    assert collections.largest_bytes == sum(map(item_size, big)) + sum(entry)
    assert collections.within_limit


def test_a_hot_key_limits_the_load_and_sharding_spreads_it(tmp_path: Path) -> None:
    keys = KeySchema(KeyAttribute("batch", "S"), KeyAttribute("user", "S"))
    rows = [["b1", f"u{n}", "x" * 1500] for n in range(3000)] + [["b2", "u1", "y"]]
    path = write_rows(tmp_path / "hot.csv", ["batch", "user", "data"], rows)
    schema = CsvSchema((Column("batch"), Column("user"), Column("data")))

    hot = estimate_source(path, schema=schema, key_schema=keys, write_rate_wcu_s=36000.0)
    spread = estimate_source(path, schema=schema, key_schema=keys, write_rate_wcu_s=36000.0,
                             mapping=AttributeMapping(partition_key_shards=10))

    assert hot.hottest_keys[0].partition_key == "b1"
    assert hot.hottest_keys[0].wcu == 3000 * 2
    assert hot.hottest_key_share == pytest.approx(6000 / 6001)
    assert hot.load_s_at_key_limit == pytest.approx(6.0)
    assert hot.predicted_load_s == pytest.approx(6.0)  # the key, not the table, limits it
    assert spread.partition_keys == 11
    assert spread.wcu_total == hot.wcu_total
    assert spread.load_s_at_key_limit < hot.load_s_at_key_limit / 5


def test_time_and_costs_follow_the_stated_model(tmp_path: Path) -> None:
    rows = [[str(n), "x" * (n % 3000)] for n in range(2000)]
    path = write_rows(tmp_path / "c.csv", ["id", "v"], rows)
    schema = CsvSchema((Column("id"), Column("v")))
    prices = Prices(on_demand_per_million_wru=1.0, provisioned_per_wcu_hour=0.001,
                    glue_per_dpu_hour=0.5, import_per_gb=0.2)
    table = {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
             "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
             "BillingModeSummary": {"BillingMode": "PROVISIONED"},
             "ProvisionedThroughput": {"WriteCapacityUnits": 500}, "ItemCount": 0}

    result = estimate_source(path, schema=schema, key_schema=ID_S, table_description=table,
                             prices=prices, workers=GlueWorkers(4, "G.2X"))

    assert (result.capacity_wcu_s, result.write_rate_wcu_s) == (500.0, 450.0)
    assert result.load_s_at_capacity == pytest.approx(result.wcu_total / 500)
    assert result.predicted_load_s == pytest.approx(result.wcu_total / 450)
    costs = result.costs
    assert costs.on_demand == pytest.approx(result.wcu_total / 1e6)
    assert costs.provisioned_rate_wcu_s == pytest.approx(450.0)
    assert costs.provisioned == pytest.approx(450.0 * 1 * 0.001)  # one started hour
    assert costs.glue == pytest.approx(8 * 60 / 3600 * 0.5)  # 8 DPU, 1-minute minimum
    assert costs.import_from_s3 == pytest.approx(path.stat().st_size / 1024**3 * 0.2)
    sizes = result.item_sizes
    assert sizes is not None
    assert sizes.min <= sizes.p50 <= sizes.p90 <= sizes.p99 <= sizes.max
    # Without a sort key every item is its own partition key; the largest is the hottest.
    assert result.partition_keys == result.items == 2000
    assert result.hottest_keys[0].wcu == max(write_units(item_size(
        {"id": {"S": r[0]}, **({"v": {"S": r[1]}} if r[1] else {})})) for r in rows)
    assert json.loads(json.dumps(result.to_dict()))["costs"]["glue"] == costs.glue


def test_secondary_indexes_read_provisioned_gsi_capacity() -> None:
    table = {"AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "N"}],
             "GlobalSecondaryIndexes": [{"IndexName": "g1",
                                         "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                         "Projection": {"ProjectionType": "ALL"},
                                         "ProvisionedThroughput": {"WriteCapacityUnits": 5}}]}
    (index,) = secondary_indexes(table)
    assert (index.keys, index.write_capacity, index.local) == ((("g", "N"),), 5.0, False)
    on_demand = {**table, "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}
    assert secondary_indexes(on_demand)[0].write_capacity is None


def test_estimate_matches_the_independent_oracle_of_the_demo_data(tmp_path: Path) -> None:
    from dynamo_ingest_cli.datagen import expected_outcome, generate_csv, schema_for_layout

    generated = generate_csv(tmp_path / "orders.csv", 3000, duplicate_every=40, bad_every=70)
    schema = CsvSchema(tuple(Column(n, t) for n, t in schema_for_layout()))
    oracle = expected_outcome(generated.path, key_columns=("orderId",),
                              column_types={n: "N" if t in ("bigint", "double") else
                                            "BOOL" if t == "boolean" else "S"
                                            for n, t in schema_for_layout()})

    result = estimate_source(generated.path, schema=schema,
                             key_schema=KeySchema(KeyAttribute("orderId", "S")))

    assert result.rows == oracle.rows_read == 3000
    assert result.items == len(oracle.items)
    assert result.duplicate_rows == oracle.duplicate_rows
    assert result.rejected_rows == len(oracle.rejected)
    assert result.wcu_total == sum(write_units(item_size(i)) for i in oracle.items.values())
    sizes = sorted(item_size(i) for i in oracle.items.values())
    assert result.item_sizes is not None
    assert (result.item_sizes.min, result.item_sizes.max) == (sizes[0], sizes[-1])
    assert result.item_sizes.total == sum(sizes)


def test_a_delimiter_ending_every_line_is_counted_as_the_job_loads_it(tmp_path: Path) -> None:
    from crawlers.local_crawler import infer_schema

    path = tmp_path / "trailing.csv"
    path.write_bytes(b"id,name,val,\n1,ann,5,\n2,bob,,\n3,cy,7,x\n")

    result = estimate_source(path, schema=infer_schema(path), key_schema=ID_S)

    assert (result.rows, result.items, result.rejected_rows) == (3, 2, 1)
    assert result.rejected_examples == [
        (3, "a value 'x' after the last named column (the header ends with an unnamed column)")]


# --- a record too long to hold -------------------------------------------------------------

ESTIMATE_CHILD = """
import json, re, sys
from pathlib import Path
from dynamo_ingest.core.catalog import Column, CsvSchema
from dynamo_ingest.core.keys import KeyAttribute, KeySchema
from dynamo_ingest.estimate import estimate_source

schema = CsvSchema((Column("id"), Column("note")))
result = estimate_source(Path(sys.argv[1]), schema=schema, key_schema=KeySchema(
    KeyAttribute("id", "S")))
# VmHWM: the peak resident size of this process's own memory since it started. Not
# ru_maxrss, which Linux carries over from the process that forked it (pytest, large).
with open("/proc/self/status", encoding="ascii") as status:
    peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))
print(json.dumps({"rows": result.rows, "items": result.items,
                  "rejected": result.rejected_examples, "peak_kib": peak}))
"""
HUGE_RECORD_BYTES = 256 * 1024 * 1024


def test_a_record_far_over_the_limit_is_rejected_in_bounded_memory(tmp_path: Path) -> None:
    # A child process, so its peak resident size (VmHWM) is the estimate's alone.
    import subprocess
    import sys

    path = tmp_path / "huge.csv"
    with path.open("wb") as out:
        out.write(b"id,note\n1,a\n2,")
        block = b"x" * (1024 * 1024)
        for _ in range(HUGE_RECORD_BYTES // len(block)):
            out.write(block)
        out.write(b"\n3,c\n")
    try:
        done = subprocess.run([sys.executable, "-c", ESTIMATE_CHILD, str(path)],
                              capture_output=True, text=True, timeout=600, check=False)
    finally:
        path.unlink()  # pytest keeps the last runs' folders: never keep 256 MiB there
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["rows"], result["items"]) == (3, 2)
    assert result["rejected"] == [[2, "record 2 is over 4 MiB (DynamoDB items are at most "
                                      "400 KB)"]]
    # The splitter holds its chunk and at most twice its record limit (a few MiB), well
    # under the record: holding it whole took over twice its size.
    assert result["peak_kib"] * 1024 < HUGE_RECORD_BYTES / 2, result["peak_kib"]
