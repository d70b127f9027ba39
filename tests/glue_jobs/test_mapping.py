"""Key and attribute mapping (dynamo_ingest.core.mapping) as the item builder applies it."""

from __future__ import annotations

import zlib
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from dynamo_ingest.core.arguments import job_arguments_from_mapping
from dynamo_ingest.core.catalog import Column
from dynamo_ingest.core.errors import ArgumentError, SchemaMismatchError, TargetTableError
from dynamo_ingest.core.keys import KeyAttribute, KeySchema
from dynamo_ingest.core.mapping import AttributeMapping, parse_key_template
from dynamo_ingest.engine.items import BuiltItem, ItemBuilder, Rejection
from dynamo_ingest.engine.sizing import item_size, write_units

PK = KeySchema(KeyAttribute("pk", "S"))
PK_SK = KeySchema(KeyAttribute("pk", "S"), KeyAttribute("sk", "S"))
COLUMNS = [Column("batchId"), Column("email"), Column("amount", "double"), Column("note")]


def build(mapping: AttributeMapping, row: list[str | None], columns: list[Column] = COLUMNS,
          keys: KeySchema = PK) -> BuiltItem:
    result = ItemBuilder(columns, keys, "omit", mapping).build(row)
    assert isinstance(result, BuiltItem), result
    # Every mapped item is sized by the project's one sizing rule.
    assert result.size == item_size(result.item)
    assert result.wcu == write_units(result.size)
    return result


def rejected(mapping: AttributeMapping, row: list[str | None],
             columns: list[Column] = COLUMNS, keys: KeySchema = PK) -> str:
    result = ItemBuilder(columns, keys, "omit", mapping).build(row)
    assert isinstance(result, Rejection), result
    return result.reason


# --- key templates -------------------------------------------------------------------------

def test_a_composite_template_builds_the_key_from_several_columns() -> None:
    mapping = AttributeMapping(partition_key_template="{batchId}#{email}",
                               sort_key_template="{{{amount}}}")
    built = build(mapping, ["b-1", "a@x.io", "12.5", "hi"], keys=PK_SK)
    assert built.item["pk"] == {"S": "b-1#a@x.io"}
    assert built.item["sk"] == {"S": "{12.5}"}  # {{ and }} are literal braces
    assert built.key == ("b-1#a@x.io", "{12.5}")
    # The source columns stay attributes of their own.
    assert built.item["batchId"] == {"S": "b-1"}
    assert built.item["amount"] == {"N": "12.5"}


def test_a_template_value_that_is_empty_rejects_the_row_naming_the_column() -> None:
    reason = rejected(AttributeMapping(partition_key_template="{batchId}#{email}"),
                      ["b-1", "", "1", None])
    assert "'email'" in reason
    assert "{batchId}#{email}" in reason


def test_a_numeric_key_template_must_produce_a_number() -> None:
    keys = KeySchema(KeyAttribute("id", "N"))
    columns = [Column("year"), Column("seq")]
    mapping = AttributeMapping(partition_key_template="{year}{seq}")
    assert build(mapping, ["2024", "0007"], columns, keys).item["id"] == {"N": "20240007"}
    assert "is not a number" in rejected(mapping, ["2024", "x7"], columns, keys)


def test_template_syntax_and_unknown_columns_are_refused_before_any_row() -> None:
    for text in ("{batchId", "batchId}", "{}", "plain text", "{a{b}"):
        with pytest.raises(ArgumentError):
            parse_key_template(text, "partition_key_template")
    with pytest.raises(SchemaMismatchError, match="'missing'"):
        ItemBuilder(COLUMNS, PK, mapping=AttributeMapping(partition_key_template="{missing}"))
    with pytest.raises(TargetTableError, match="no sort key"):
        ItemBuilder(COLUMNS, PK, mapping=AttributeMapping(partition_key_template="{email}",
                                                          sort_key_template="{note}"))


def test_a_column_named_like_a_templated_key_must_be_dropped_or_renamed() -> None:
    columns = [Column("pk"), Column("email")]
    with pytest.raises(SchemaMismatchError, match="drop_columns"):
        ItemBuilder(columns, PK, mapping=AttributeMapping(partition_key_template="{pk}#{email}"))
    mapping = AttributeMapping(partition_key_template="{pk}#{email}", drop_columns=("pk",))
    assert build(mapping, ["p", "e"], columns).item == {"pk": {"S": "p#e"}, "email": {"S": "e"}}


# --- renames, drops, types ------------------------------------------------------------------

def test_a_renamed_column_can_be_the_key() -> None:
    columns = [Column("customer_id"), Column("name")]
    mapping = AttributeMapping(rename=(("customer_id", "pk"), ("name", "fullName")))
    built = build(mapping, ["c-7", "Ada"], columns)
    assert built.item == {"pk": {"S": "c-7"}, "fullName": {"S": "Ada"}}
    assert built.key == ("c-7",)


def test_rename_conflicts_and_lost_keys_are_refused() -> None:
    columns = [Column("pk"), Column("a"), Column("b")]
    with pytest.raises(SchemaMismatchError, match="'x'"):
        ItemBuilder(columns, PK, mapping=AttributeMapping(rename=(("a", "x"), ("b", "x"))))
    with pytest.raises(TargetTableError, match="'pk'"):
        ItemBuilder(columns, PK, mapping=AttributeMapping(rename=(("pk", "id"),)))
    with pytest.raises(TargetTableError, match="drop_columns"):
        ItemBuilder(columns, PK, mapping=AttributeMapping(drop_columns=("pk",)))
    with pytest.raises(SchemaMismatchError, match="'nope'"):
        ItemBuilder(columns, PK, mapping=AttributeMapping(drop_columns=("nope",)))


def test_dropped_columns_are_not_stored_but_templates_may_read_them() -> None:
    mapping = AttributeMapping(partition_key_template="{batchId}#{email}",
                               drop_columns=("batchId", "note"))
    built = build(mapping, ["b-1", "a@x.io", "3", "long note"])
    assert built.item == {"pk": {"S": "b-1#a@x.io"}, "email": {"S": "a@x.io"},
                          "amount": {"N": "3"}}


def test_type_overrides_replace_the_catalog_type() -> None:
    columns = [Column("pk"), Column("zip", "bigint"), Column("qty"), Column("flag"),
               Column("raw", "bigint")]
    mapping = AttributeMapping(column_types=(("zip", "S"), ("qty", "N"), ("flag", "BOOL")))
    built = build(mapping, ["k", "00501", " 042 ", "TRUE", "7"], columns)
    assert built.item["zip"] == {"S": "00501"}  # leading zeros kept as text
    assert built.item["qty"] == {"N": "042"}  # an explicit N: DynamoDB normalises it
    assert built.item["flag"] == {"BOOL": True}
    assert built.item["raw"] == {"N": "7"}
    assert "not a boolean" in rejected(mapping, ["k", "1", "2", "maybe", "3"], columns)


def test_a_key_column_keeps_the_tables_key_type() -> None:
    with pytest.raises(ArgumentError, match="key schema"):
        ItemBuilder(COLUMNS, KeySchema(KeyAttribute("batchId", "S")),
                    mapping=AttributeMapping(column_types=(("batchId", "N"),)))


def test_json_columns_become_maps_and_lists_with_exact_numbers() -> None:
    columns = [Column("pk"), Column("doc")]
    mapping = AttributeMapping(column_types=(("doc", "JSON"),))
    text = ('{"price": 1.10, "big": 12345678901234567890123456789012345678, '
            '"tags": ["a", 2.50e3, true, null, {}], "nested": {"x": [[-0.000]]}}')
    built = build(mapping, ["k", text], columns)
    assert built.item["doc"] == {"M": {
        "price": {"N": "1.10"},
        "big": {"N": "12345678901234567890123456789012345678"},
        "tags": {"L": [{"S": "a"}, {"N": "2.50e3"}, {"BOOL": True}, {"NULL": True}, {"M": {}}]},
        "nested": {"M": {"x": {"L": [{"L": [{"N": "-0.000"}]}]}}}}}
    assert build(mapping, ["k", "[1, \"two\"]"], columns).item["doc"] == {
        "L": [{"N": "1"}, {"S": "two"}]}
    assert build(mapping, ["k", "\"just text\""], columns).item["doc"] == {"S": "just text"}
    assert "doc" not in build(mapping, ["k", "  "], columns).item


@pytest.mark.parametrize(("text", "fragment"), [
    ("{not json", "is not JSON"),
    ('{"a": NaN}', "NaN"),
    ('{"a": 1234567890123456789012345678901234567890}', "38"),
    ("[" * 33 + "]" * 33, "32 levels"),
])
def test_json_that_dynamodb_cannot_hold_rejects_the_row(text: str, fragment: str) -> None:
    columns = [Column("pk"), Column("doc")]
    reason = rejected(AttributeMapping(column_types=(("doc", "JSON"),)), ["k", text], columns)
    assert "'doc'" in reason
    assert fragment in reason


# --- TTL ---------------------------------------------------------------------------------

NEW_YEAR = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(("value", "expected"), [
    (str(NEW_YEAR), NEW_YEAR), (f"{NEW_YEAR}.75", NEW_YEAR),
    ("2025-01-01T00:00:00Z", NEW_YEAR), ("2025-01-01T00:00:00", NEW_YEAR),
    ("2025-01-01", NEW_YEAR), ("2025-01-01T01:00:00+01:00", NEW_YEAR),
    ("2025-01-01 00:00:30.9", NEW_YEAR + 30),
])
def test_ttl_from_a_column_of_epoch_seconds_or_iso_times(value: str, expected: int) -> None:
    columns = [Column("pk"), Column("expires")]
    mapping = AttributeMapping(ttl_attribute="ttl", ttl_from_column="expires")
    built = build(mapping, ["k", value], columns)
    assert built.item["ttl"] == {"N": str(expected)}
    assert built.item["expires"] == {"S": value}


def test_ttl_column_converted_in_place_empty_means_no_expiry_and_garbage_rejects() -> None:
    columns = [Column("pk"), Column("expiresAt")]
    mapping = AttributeMapping(ttl_attribute="expiresAt", ttl_from_column="expiresAt")
    assert build(mapping, ["k", "2025-01-01"], columns).item == {
        "pk": {"S": "k"}, "expiresAt": {"N": str(NEW_YEAR)}}
    assert build(mapping, ["k", ""], columns).item == {"pk": {"S": "k"}}
    assert "not a TTL time" in rejected(mapping, ["k", "next tuesday"], columns)


def test_a_ttl_in_milliseconds_is_rejected_not_stored_as_a_date_that_never_comes() -> None:
    columns = [Column("pk"), Column("expires")]
    mapping = AttributeMapping(ttl_attribute="ttl", ttl_from_column="expires")
    assert "milliseconds" in rejected(mapping, ["k", "1893456000000"], columns)
    assert build(mapping, ["k", "99999999999"], columns).item["ttl"] == {"N": "99999999999"}


def test_a_fixed_lifetime_counts_from_one_load_time_per_run() -> None:
    clock = iter([1_700_000_000.9, 1_800_000_000.0])
    mapping = AttributeMapping.from_values({"ttl_attribute": "ttl", "ttl_seconds": "86400"},
                                           now=lambda: next(clock))
    columns = [Column("pk")]
    first = build(mapping, ["b"], columns).item["ttl"]
    again = build(mapping, ["c"], columns).item["ttl"]
    assert first == again == {"N": str(1_700_000_000 + 86400)}
    explicit = AttributeMapping.from_values(
        {"ttl_attribute": "ttl", "ttl_seconds": "60", "load_time": "2025-01-01T00:00:00Z"})
    assert build(explicit, ["b"], columns).item["ttl"] == {"N": str(NEW_YEAR + 60)}


@pytest.mark.parametrize("values", [
    {"ttl_attribute": "ttl"},
    {"ttl_attribute": "ttl", "ttl_seconds": "5", "ttl_from_column": "c"},
    {"ttl_seconds": "5"},
    {"ttl_attribute": "ttl", "ttl_seconds": "0"},
    {"ttl_attribute": "ttl", "ttl_seconds": "soon"},
    {"load_time": "yesterday"},
    {"partition_key_shards": "0"},
    {"rename": "a"},
    {"rename": "a:b,a:c"},
    {"column_types": "a:DATE"},
])
def test_malformed_mapping_arguments_are_argument_errors(values: dict[str, str]) -> None:
    with pytest.raises(ArgumentError):
        AttributeMapping.from_values(values)
    with pytest.raises(ArgumentError):
        job_arguments_from_mapping({"source_path": "f.csv", "target_table": "t", **values})


# --- write sharding ------------------------------------------------------------------------

def test_shards_are_stable_and_spread_one_hot_key_evenly() -> None:
    columns = [Column("pk"), Column("sk")]
    mapping = AttributeMapping(partition_key_shards=8)
    builder = ItemBuilder(columns, PK_SK, "omit", mapping)
    keys: Counter[str] = Counter()
    for n in range(8000):
        built = builder.build(["batch-1", f"user{n}@x.io"])
        assert isinstance(built, BuiltItem)
        keys[built.item["pk"]["S"]] += 1
        # Stable: CRC-32 of the sort key, the same in every process and run.
        assert built.item["pk"]["S"] == f"batch-1#{zlib.crc32(f'user{n}@x.io'.encode()) % 8}"
        assert built.size == item_size(built.item)
    assert set(keys) == {f"batch-1#{shard}" for shard in range(8)}
    assert max(keys.values()) < 1.15 * 1000
    assert min(keys.values()) > 0.85 * 1000


def test_rows_with_the_same_key_get_the_same_shard_and_stay_duplicates() -> None:
    numeric = KeySchema(KeyAttribute("pk", "S"), KeyAttribute("sk", "N"))
    builder = ItemBuilder([Column("pk"), Column("sk")], numeric, "omit",
                          AttributeMapping(partition_key_shards=16))
    same = [builder.build(["p", text]) for text in ("10", "010", "1e1", "10.0")]
    assert all(isinstance(b, BuiltItem) for b in same)
    assert len({b.key for b in same if isinstance(b, BuiltItem)}) == 1


def test_sharding_needs_a_string_partition_key() -> None:
    with pytest.raises(TargetTableError, match="string"):
        ItemBuilder([Column("pk")], KeySchema(KeyAttribute("pk", "N")),
                    mapping=AttributeMapping(partition_key_shards=4))


def test_sharding_needs_a_sort_key_to_spread_by() -> None:
    # The shard hashes the sort key; with none, each partition-key value would keep one shard.
    sharded = AttributeMapping(partition_key_shards=4)
    with pytest.raises(TargetTableError, match="no sort key") as caught:
        ItemBuilder([Column("pk"), Column("v")], PK, mapping=sharded)
    assert "'pk'" in str(caught.value)
    assert "drop --partition_key_shards" in str(caught.value)
    with pytest.raises(TargetTableError, match="no sort key"):
        sharded.key_hash_parts([Column("pk"), Column("v")], PK)


# --- what Spark hashes -------------------------------------------------------------------

def test_key_hash_parts_are_the_key_as_it_is_built() -> None:
    identity = AttributeMapping()
    keys = KeySchema(KeyAttribute("email", "S"), KeyAttribute("amount", "N"))
    assert identity.key_hash_parts(COLUMNS, keys) == [((1,), "S"), ((2,), "N")]
    composite = AttributeMapping(partition_key_template="{batchId}#{email}",
                                 sort_key_template="{amount}", partition_key_shards=4)
    assert composite.key_hash_parts(COLUMNS, PK_SK) == [((0, "#", 1), "S"), ((2,), "S")]
    numeric = KeySchema(KeyAttribute("pk", "S"), KeyAttribute("sk", "N"))
    assert composite.key_hash_parts(COLUMNS, numeric) == [((0, "#", 1), "S"), ((2,), "N")]
    renamed = AttributeMapping(rename=(("note", "pk"),))
    assert renamed.key_hash_parts(COLUMNS, PK) == [((3,), "S")]


def test_the_identity_mapping_is_recognised_and_version_attribute_follows_renames() -> None:
    assert AttributeMapping.from_values({}, now=lambda: 5.0).is_identity
    assert not AttributeMapping(drop_columns=("a",)).is_identity
    mapping = AttributeMapping(rename=(("v", "version"),), version_column="v")
    assert mapping.version_attribute() == "version"


def test_a_row_without_a_version_is_rejected_under_the_version_guard() -> None:
    columns = [Column("pk"), Column("v", "bigint")]
    mapping = AttributeMapping(version_column="v")
    assert build(mapping, ["k", "3"], columns).item["v"] == {"N": "3"}
    assert "--version_column" in rejected(mapping, ["k", ""], columns)
    with pytest.raises(ArgumentError, match="version_column"):
        ItemBuilder(columns, PK, mapping=AttributeMapping(version_column="v",
                                                          drop_columns=("v",)))


def test_write_mode_arguments_are_checked() -> None:
    base: dict[str, Any] = {"source_path": "f.csv", "target_table": "t"}
    assert job_arguments_from_mapping({**base, "write_mode": "merge"}).write_mode == "merge"
    with pytest.raises(ArgumentError, match="overwrite, insert or merge"):
        job_arguments_from_mapping({**base, "write_mode": "upsert"})
    with pytest.raises(ArgumentError, match="insert"):
        job_arguments_from_mapping({**base, "write_mode": "insert", "version_column": "v"})
    parsed = job_arguments_from_mapping({**base, "partition_key_shards": "8", "ttl_seconds": "60",
                                         "ttl_attribute": "ttl"})
    assert (parsed.partition_key_shards, parsed.ttl_seconds) == (8, 60)
    assert parsed.to_glue_arguments()["--partition_key_shards"] == "8"
