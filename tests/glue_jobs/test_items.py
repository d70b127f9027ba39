"""Row → DynamoDB item: typing, validation, keys, empty values, sizes (engine.items)."""

from __future__ import annotations

import base64
import random

import pytest
from dynamo_ingest.core.arguments import EmptyPolicy
from dynamo_ingest.core.catalog import Column
from dynamo_ingest.core.errors import ArgumentError, SchemaMismatchError, TargetTableError
from dynamo_ingest.core.keys import IndexKey, KeyAttribute, KeySchema, key_schema_from_description
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.engine.items import (
    BuiltItem,
    ItemBuilder,
    Rejection,
    _kept_decimal_size,
    canonical_number,
    decode_utf8,
    number_kept_as_written,
)
from dynamo_ingest.engine.sizing import MAX_ITEM_BYTES, item_size, number_size, write_units

ID_S = KeySchema(KeyAttribute("id", "S"))
ID_N = KeySchema(KeyAttribute("id", "N"))


def built(result: BuiltItem | Rejection) -> BuiltItem:
    assert isinstance(result, BuiltItem), result
    return result


def rejected(result: object) -> str:
    assert isinstance(result, Rejection), result
    return result.reason


def one_column(glue_type: str, value: str | None,
               empty: EmptyPolicy = "omit") -> BuiltItem | Rejection:
    """Build a row of an ``id`` key plus one column ``v`` of the given Glue type."""
    builder = ItemBuilder([Column("id"), Column("v", glue_type)], ID_S, empty)
    return builder.build(["k", value])


def explicit_number(value: str) -> BuiltItem | Rejection:
    """Build a row whose column ``v`` is typed N by ``--column_types v:N``."""
    builder = ItemBuilder([Column("id"), Column("v")], ID_S,
                          mapping=AttributeMapping(column_types=(("v", "N"),)))
    return builder.build(["k", value])


def as_read(data: bytes) -> str:
    """A field as the Spark reader hands it over: the file's bytes read as ISO-8859-1."""
    return data.decode("latin-1")


# --- attribute names and types ---------------------------------------------------------

def test_attribute_names_keep_the_header_case() -> None:
    builder = ItemBuilder([Column("batchId"), Column("ID", "bigint")],
                          KeySchema(KeyAttribute("batchId", "S")))
    item = built(builder.build(["b-1", "7"])).item
    assert item == {"batchId": {"S": "b-1"}, "ID": {"N": "7"}}


@pytest.mark.parametrize("glue_type", [
    "bigint", "int", "smallint", "tinyint", "double", "float", "long", "decimal(10,2)",
    "DECIMAL(38,0)",
])
def test_numeric_glue_types_become_numbers(glue_type: str) -> None:
    assert built(one_column(glue_type, "12.5")).item["v"] == {"N": "12.5"}


@pytest.mark.parametrize("glue_type", ["string", "date", "timestamp", "varchar(10)", "binary"])
def test_other_glue_types_become_strings_as_written(glue_type: str) -> None:
    assert built(one_column(glue_type, " 2024-01-02 ")).item["v"] == {"S": " 2024-01-02 "}


# --- numbers -----------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "sent"), [
    ("42", "42"), ("007", "007"), ("12.50", "12.50"), ("-17e5", "-17e5"),
    ("-17.4E37", "-17.4E37"), (".123", ".123"), ("1e+5", "1e+5"), ("0e1000", "0e1000"),
    (" 42 ", "42"), ("\t3.5\n", "3.5"),   # surrounding whitespace stripped
    ("+3", "3"), ("5.", "5"), ("1.e3", "1e3"), ("-2.E-1", "-2E-1"),
])
def test_explicit_numbers_are_sent_as_written(written: str, sent: str) -> None:
    assert built(explicit_number(written)).item["v"] == {"N": sent}


@pytest.mark.parametrize(("written", "stored"), [
    ("02869", "2869"), ("007", "7"), ("-01", "-1"), ("+3", "3"), ("5.0", "5"),
    ("12.50", "12.5"), ("1e5", "100000"), ("1E+2", "100"), ("-0", "0"), (".5", "0.5"),
    ("5.", "5"), ("0.0", "0"),
])
def test_a_catalog_number_dynamodb_would_change_rejects_the_row(written: str,
                                                                stored: str) -> None:
    builder = ItemBuilder([Column("id"), Column("zip", "bigint")], ID_S)
    assert rejected(builder.build(["k", written])) == (
        f"column 'zip': {written!r} would be stored by DynamoDB as {stored}, not as written: "
        "`--column_types zip:S` keeps the text; `--column_types zip:N` stores numbers as "
        "DynamoDB normalises them")
    # An explicit N is the user accepting DynamoDB's normalisation.
    assert built(explicit_number(written)).item["v"]["N"] in (written, written.lstrip("+"),
                                                              written.rstrip("."))


@pytest.mark.parametrize("written", ["0", "2869", "-7", "12.5", "-0.25", "0.001", " 42 ",
                                     "12345678901234567890123456789012345678"])
def test_a_catalog_number_dynamodb_keeps_as_written_is_a_number(written: str) -> None:
    assert built(one_column("double", written)).item["v"] == {"N": written.strip()}


@pytest.mark.parametrize("text", [
    "12x", "NaN", "nan", "Infinity", "-Infinity", "inf", "1_000", "0x1F", "1,5", "1 000",
    "--1", "+-1", ".", "-", "e5", "1e", "1e+", "1.2.3", "١٢٣", "²", "1e5e5",
])
def test_non_numbers_reject_the_row_naming_column_and_value(text: str) -> None:
    reason = rejected(one_column("bigint", text))
    assert reason == f"column 'v': {text.strip()!r} is not a number"


SAMPLED = "the crawler's sample of the first 1,000 rows"


def test_a_number_typed_from_the_crawlers_sample_says_so_and_how_to_keep_text() -> None:
    builder = ItemBuilder([Column("id"), Column("code", "bigint", SAMPLED)], ID_S)
    assert rejected(builder.build(["k", "N/A"])) == (
        "column 'code': 'N/A' is not a number (the column is typed bigint from the crawler's "
        "sample of the first 1,000 rows; `--column_types code:S` loads it as text)")


def test_a_catalog_type_says_it_came_from_the_catalog_table() -> None:
    builder = ItemBuilder([Column("id"), Column("flag", "boolean", "the catalog table db.t")],
                          ID_S)
    assert rejected(builder.build(["k", "12a"])) == (
        "column 'flag': '12a' is not a boolean (expected true or false) (the column is typed "
        "boolean from the catalog table db.t; `--column_types flag:S` loads it as text)")


def test_a_number_the_user_typed_gives_no_hint_about_where_the_type_came_from() -> None:
    builder = ItemBuilder([Column("id"), Column("code", "bigint", SAMPLED)], ID_S,
                          mapping=AttributeMapping(column_types=(("code", "N"),)))
    assert rejected(builder.build(["k", "N/A"])) == "column 'code': 'N/A' is not a number"


def test_reason_for_amount_reads_naturally() -> None:
    builder = ItemBuilder([Column("id"), Column("amount", "decimal(10,2)")], ID_S)
    assert rejected(builder.build(["k", "12x"])) == "column 'amount': '12x' is not a number"


def test_38_significant_digits_fit_and_39_do_not() -> None:
    digits38 = "12345678901234567890123456789012345678"
    assert built(one_column("decimal(38,0)", digits38)).item["v"] == {"N": digits38}
    assert built(one_column("double", "-0.000" + digits38)).item["v"]["N"] == "-0.000" + digits38
    # zeros before and after the significant digits do not count
    assert built(explicit_number("000" + digits38 + "000")).item["v"]["N"].endswith("000")
    reason = rejected(one_column("bigint", digits38 + "9"))
    assert "39 significant digits" in reason
    assert "at most 38" in reason
    assert reason.startswith("column 'v': '1234567890123456789012345678901234567")


@pytest.mark.parametrize("text", [
    "1E-130", "-1E-130", "9.9999999999999999999999999999999999999E+125",
    "-9.9999999999999999999999999999999999999E+125", "0.1E-129", "1" + "0" * 125,
])
def test_numbers_at_the_edges_of_dynamodb_range_are_kept(text: str) -> None:
    assert built(explicit_number(text)).item["v"] == {"N": text}


@pytest.mark.parametrize("text", ["1E-131", "-1E-131", "0.9E-130", "1E+126", "-1E+126",
                                  "10E+125", "1" + "0" * 126, "1e99999999999999"])
def test_numbers_outside_dynamodb_range_reject_the_row(text: str) -> None:
    assert "outside DynamoDB's number range" in rejected(one_column("double", text))


@pytest.mark.parametrize(("a", "b"), [
    ("1", "1.0"), ("1", "01"), ("1", "1e0"), ("1", "+1"), ("1", "1."), ("1", "0.1e1"),
    ("100", "1E+2"), ("0.5", ".5"), ("-0.5", "-5e-1"), ("0", "-0.00"), ("0", "0e1000"),
    ("12.5", "0012.5000"), ("1E-130", "0." + "0" * 129 + "1"),
])
def test_canonical_number_makes_equal_numbers_equal(a: str, b: str) -> None:
    assert canonical_number(a) is not None
    assert canonical_number(a) == canonical_number(b)


def test_canonical_number_keeps_different_numbers_apart() -> None:
    texts = ["1", "10", "0.1", "-1", "1.5", "15", "0.15", "1E+38",
             "12345678901234567890123456789012345678", "12345678901234567890123456789012345677"]
    assert len({canonical_number(t) for t in texts}) == len(texts)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "", " ", "abc", "1E+126", "1E-131",
                                  "1234567890123456789012345678901234567890"])
def test_canonical_number_is_none_for_what_dynamodb_cannot_hold(text: str) -> None:
    assert canonical_number(text) is None


# --- booleans ----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("false", False), ("TRUE", True), ("False", False), (" true ", True),
])
def test_booleans_from_true_and_false_in_any_case(text: str, value: bool) -> None:
    assert built(one_column("boolean", text)).item["v"] == {"BOOL": value}


@pytest.mark.parametrize("text", ["yes", "1", "0", "t", "truee", "nope"])
def test_other_boolean_text_rejects_the_row(text: str) -> None:
    assert rejected(one_column("boolean", text)) == (
        f"column 'v': {text!r} is not a boolean (expected true or false)")


# --- empty values ------------------------------------------------------------------------

@pytest.mark.parametrize("glue_type", ["string", "bigint", "boolean"])
@pytest.mark.parametrize("empty", [None, ""])
def test_empty_fields_follow_the_policy(glue_type: str, empty: str | None) -> None:
    assert "v" not in built(one_column(glue_type, empty)).item
    assert built(one_column(glue_type, empty, "null")).item["v"] == {"NULL": True}
    assert built(one_column(glue_type, empty, "empty_string")).item["v"] == {"S": ""}


def test_blank_numbers_and_booleans_are_empty_but_blank_strings_are_kept() -> None:
    assert built(one_column("double", "  ", "null")).item["v"] == {"NULL": True}
    assert built(one_column("boolean", " ", "null")).item["v"] == {"NULL": True}
    assert built(one_column("string", " ", "null")).item["v"] == {"S": " "}


def test_empty_values_are_fresh_per_item() -> None:
    builder = ItemBuilder([Column("id"), Column("v")], ID_S, "null")
    first = built(builder.build(["a", None]))
    first.item["v"]["NULL"] = False
    assert built(builder.build(["b", None])).item["v"] == {"NULL": True}


def test_unknown_empty_policy_is_an_argument_error() -> None:
    with pytest.raises(ArgumentError, match="found 'skip'"):
        ItemBuilder([Column("id")], ID_S, "skip")  # type: ignore[arg-type]


# --- keys --------------------------------------------------------------------------------

def test_digits_bound_for_a_string_key_stay_as_written() -> None:
    builder = ItemBuilder([Column("id", "bigint")], ID_S)
    result = built(builder.build(["007"]))
    assert result.item == {"id": {"S": "007"}}
    assert result.key == ("007",)


def test_number_key_texts_of_one_number_share_one_canonical_key() -> None:
    builder = ItemBuilder([Column("id", "string")], ID_N)
    results = [built(builder.build([text])) for text in ("1", "1.0", "01", "1e0", " +1 ")]
    assert {r.key for r in results} == {("1",)}
    assert [r.item["id"]["N"] for r in results] == ["1", "1.0", "01", "1e0", "1"]
    assert built(builder.build(["2"])).key != results[0].key


def test_number_key_must_be_a_dynamodb_number() -> None:
    builder = ItemBuilder([Column("id", "string")], ID_N)
    assert rejected(builder.build(["A-1"])) == "column 'id': 'A-1' is not a number"
    assert "39 significant digits" in rejected(builder.build(["1" * 39]))


def test_partition_key_comes_first_in_the_key() -> None:
    schema = KeySchema(KeyAttribute("pk", "S"), KeyAttribute("sk", "N"))
    builder = ItemBuilder([Column("sk", "bigint"), Column("other"), Column("pk")], schema)
    assert built(builder.build(["2.50", "x", "p"])).key == ("p", "2.5")


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_number_key_rejects_the_row(value: str | None) -> None:
    builder = ItemBuilder([Column("id", "bigint"), Column("v")], ID_N, "null")
    assert rejected(builder.build([value, "x"])) == "missing value for key attribute 'id'"


@pytest.mark.parametrize("value", [None, ""])
def test_missing_string_key_rejects_the_row_whatever_the_policy(value: str | None) -> None:
    for policy in ("omit", "null", "empty_string"):
        builder = ItemBuilder([Column("id"), Column("v")], ID_S, policy)
        assert rejected(builder.build([value, "x"])) == "missing value for key attribute 'id'"


def test_binary_key_from_base64() -> None:
    builder = ItemBuilder([Column("id")], KeySchema(KeyAttribute("id", "B")))
    result = built(builder.build(["AAEC/w=="]))
    assert result.item == {"id": {"B": b"\x00\x01\x02\xff"}}
    assert result.key == ("AAEC/w==",)
    assert result.size == 2 + 4
    assert "is not base64" in rejected(builder.build(["not base64!"]))
    assert "is not base64" in rejected(builder.build(["AAE"]))
    assert rejected(builder.build([""])) == "missing value for key attribute 'id'"


def test_key_values_over_dynamodb_key_lengths_reject_the_row() -> None:
    schema = KeySchema(KeyAttribute("pk", "S"), KeyAttribute("sk", "S"))
    builder = ItemBuilder([Column("pk"), Column("sk")], schema)
    built(builder.build(["p" * 2048, "s" * 1024]))
    built(builder.build(["é" * 1024, "é" * 512]))
    assert "2049 bytes" in rejected(builder.build(["p" * 2049, "s"]))
    assert "partition key holds at most 2048" in rejected(builder.build(["é" * 1025, "s"]))
    assert "sort key holds at most 1024" in rejected(builder.build(["p", "s" * 1025]))
    binary = KeySchema(KeyAttribute("pk", "B"))
    too_long = base64.b64encode(bytes(2049)).decode()
    assert "2049 bytes" in rejected(ItemBuilder([Column("pk")], binary).build([too_long]))


def test_key_missing_from_the_columns_is_a_target_table_error() -> None:
    with pytest.raises(TargetTableError) as caught:
        ItemBuilder([Column("batchid"), Column("amount", "double")],
                    KeySchema(KeyAttribute("batchId", "S")))
    message = str(caught.value)
    assert "'batchId'" in message
    assert "batchid, amount" in message


def test_sort_key_missing_from_the_columns_is_a_target_table_error() -> None:
    schema = KeySchema(KeyAttribute("id", "S"), KeyAttribute("ts", "N"))
    with pytest.raises(TargetTableError, match="'ts'"):
        ItemBuilder([Column("id")], schema)


def test_empty_or_repeated_header_names_are_schema_errors() -> None:
    with pytest.raises(SchemaMismatchError, match="column 2 has an empty header name"):
        ItemBuilder([Column("id"), Column("")], ID_S)
    with pytest.raises(SchemaMismatchError, match="'v'"):
        ItemBuilder([Column("id"), Column("v"), Column("v")], ID_S)


# --- sizes -------------------------------------------------------------------------------

def test_size_and_wcu_agree_with_sizing_for_varied_rows() -> None:
    columns = [Column("id"), Column("n", "double"), Column("big", "decimal(38,0)"),
               Column("ok", "boolean"), Column("名前"), Column("note")]
    # Explicit N columns, so every number text DynamoDB takes is sized, normalised or not.
    builder = ItemBuilder(columns, KeySchema(KeyAttribute("id", "S")), "null",
                          AttributeMapping(column_types=(("n", "N"), ("big", "N"))))
    rows: list[list[str | None]] = [
        ["a", "1", "12345678901234567890123456789012345678", "true", "café", "x"],
        ["😀", "-0.001", "000120", "FALSE", "日本語", None],
        ["b", "1.5e3", "-9.9999999999999999999999999999999999999E+125", None, "", "y" * 3000],
        ["c", ".5", "0", " true ", "é" * 700, ""],
        ["d", "+7", "1E-130", "false", None, None],
    ]
    for row in rows:
        result = built(builder.build(row))
        assert result.size == item_size(result.item), row
        assert result.wcu == write_units(result.size)
    assert built(builder.build(rows[2])).wcu == 3
    assert built(builder.build(rows[3])).wcu == 2


def test_items_over_400_kb_are_rejected_with_their_size() -> None:
    builder = ItemBuilder([Column("id"), Column("blob")], ID_S)
    exactly = MAX_ITEM_BYTES - len("id") - 1 - len("blob")
    at_limit = built(builder.build(["k", "x" * exactly]))
    assert at_limit.size == MAX_ITEM_BYTES
    assert at_limit.wcu == 400
    reason = rejected(builder.build(["k", "x" * (exactly + 1)]))
    assert f"item is {MAX_ITEM_BYTES + 1} bytes" in reason
    assert "400 KB" in reason
    # multi-byte characters count as their UTF-8 bytes
    assert "item is" in rejected(builder.build(["k", "é" * (exactly // 2 + 1)]))


def test_long_offending_values_are_cut_in_the_reason() -> None:
    reason = rejected(one_column("bigint", "9" * 20 + "x" * 200))
    assert "(220 long)" in reason
    assert len(reason) < 120


# --- UTF-8 -------------------------------------------------------------------------------

def test_decode_utf8_leaves_ascii_and_none_alone() -> None:
    assert decode_utf8(["abc", None, ""]) == ("abc", None, "")


@pytest.mark.parametrize("text", ["café", "😀", "日本語", "naïve – ok"])
def test_decode_utf8_restores_multibyte_text(text: str) -> None:
    assert decode_utf8(["id", as_read(text.encode("utf-8"))]) == ("id", text)


@pytest.mark.parametrize(("data", "offset"), [
    (b"caf\xe9", 3),              # latin-1 é, not UTF-8
    (b"ok \xe6\x97", 3),           # truncated 3-byte sequence
    (b"\xed\xa0\x80", 0),          # encoded surrogate: invalid in strict UTF-8
    (b"\xc0\xaf", 0),              # overlong encoding
    (b"ab\xff", 2),
])
def test_decode_utf8_rejects_invalid_sequences(data: bytes, offset: int) -> None:
    reason = rejected(decode_utf8(["id", as_read(data)]))
    assert reason.startswith(f"invalid UTF-8 in column 2 (byte offset {offset})")
    assert repr(data) in reason


def test_decode_utf8_names_the_column_when_told() -> None:
    reason = rejected(decode_utf8(["1", as_read(b"caf\xe9")], ["id", "name"]))
    assert reason.startswith("invalid UTF-8 in column 2 'name' (byte offset 3)")


def test_decode_utf8_refuses_text_not_read_as_latin1() -> None:
    with pytest.raises(ValueError, match="ISO-8859-1"):
        decode_utf8(["日本"])


def test_decoded_row_builds_an_item() -> None:
    builder = ItemBuilder([Column("id"), Column("city")], ID_S)
    row = decode_utf8([as_read(b"k"), as_read("Zürich".encode())])
    assert not isinstance(row, Rejection)
    result = built(builder.build(row))
    assert result.item["city"] == {"S": "Zürich"}
    assert result.size == 2 + 1 + 4 + 7


# --- secondary index keys ----------------------------------------------------------------

def table_with_indexes() -> dict[str, object]:
    """A DescribeTable ``Table``: key id (S), GSI by-customer (customerId S), GSI by-score
    (score N, sorted by day S) and LSI by-day (day S)."""
    return {
        "TableName": "orders",
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in
                                 (("id", "S"), ("customerId", "S"), ("score", "N"),
                                  ("day", "S"))],
        "GlobalSecondaryIndexes": [
            {"IndexName": "by-customer",
             "KeySchema": [{"AttributeName": "customerId", "KeyType": "HASH"}]},
            {"IndexName": "by-score",
             "KeySchema": [{"AttributeName": "score", "KeyType": "HASH"},
                           {"AttributeName": "day", "KeyType": "RANGE"}]}],
        "LocalSecondaryIndexes": [
            {"IndexName": "by-day", "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"},
                                                  {"AttributeName": "day", "KeyType": "RANGE"}]}],
    }


INDEXED = key_schema_from_description(table_with_indexes())
INDEXED_COLUMNS = [Column("id"), Column("customerId", "bigint"), Column("score", "string"),
                   Column("day", "bigint"), Column("note")]


def test_the_key_schema_reads_every_index_key_with_its_declared_type() -> None:
    assert INDEXED.index_keys == (
        IndexKey("by-customer", "GSI", "partition", KeyAttribute("customerId", "S")),
        IndexKey("by-score", "GSI", "partition", KeyAttribute("score", "N")),
        IndexKey("by-score", "GSI", "sort", KeyAttribute("day", "S")),
        IndexKey("by-day", "LSI", "partition", KeyAttribute("id", "S")),
        IndexKey("by-day", "LSI", "sort", KeyAttribute("day", "S")))
    # The table key decides equality: indexes do not change which item a key names.
    assert KeySchema(KeyAttribute("id", "S")) == INDEXED


def test_index_keys_take_the_type_the_index_declares() -> None:
    builder = ItemBuilder(INDEXED_COLUMNS, INDEXED)
    item = built(builder.build(["k", "007", " 12 ", "20240501", "x"])).item
    assert item == {"id": {"S": "k"}, "customerId": {"S": "007"}, "score": {"N": "12"},
                    "day": {"S": "20240501"}, "note": {"S": "x"}}
    # An N index key follows the table key's by-value rule: the index declared a number.
    assert built(builder.build(["k", "1", "007", "1", "x"])).item["score"] == {"N": "007"}


def test_a_value_an_index_key_cannot_hold_rejects_only_its_row_naming_the_index() -> None:
    builder = ItemBuilder(INDEXED_COLUMNS, INDEXED)
    assert rejected(builder.build(["k", "1", "oops", "1", "x"])) == (
        "column 'score': 'oops' is not a number, and GSI by-score declares score as N")
    assert rejected(builder.build(["k", "1", "1", "d" * 1025, "x"])) == (
        "column 'day': value is 1025 bytes, but as a key of GSI by-score, LSI by-day it may "
        "hold at most 1024")
    assert built(builder.build(["k", "c" * 2048, "1", "1", "x"]))
    assert "at most 2048" in rejected(builder.build(["k", "c" * 2049, "1", "1", "x"]))


@pytest.mark.parametrize("empty", ["omit", "null", "empty_string"])
def test_an_empty_index_key_leaves_the_item_out_of_the_index(empty: EmptyPolicy) -> None:
    builder = ItemBuilder(INDEXED_COLUMNS, INDEXED, empty)
    item = built(builder.build(["k", "", "  ", None, ""])).item
    # DynamoDB refuses an empty or NULL index key, but an item may lack the attribute.
    assert set(item) == ({"id"} if empty == "omit" else {"id", "note"})


def test_a_renamed_column_is_typed_by_the_index_key_it_becomes() -> None:
    builder = ItemBuilder([Column("id"), Column("cust", "bigint")], INDEXED,
                          mapping=AttributeMapping(rename=(("cust", "customerId"),)))
    assert built(builder.build(["k", "42"])).item["customerId"] == {"S": "42"}
    assert "column 's (as score)': 'x' is not a number, and GSI by-score" in rejected(
        ItemBuilder([Column("id"), Column("s")], INDEXED,
                    mapping=AttributeMapping(rename=(("s", "score"),))).build(["k", "x"]))


def test_column_types_may_not_contradict_an_index_key() -> None:
    with pytest.raises(ArgumentError) as caught:
        ItemBuilder(INDEXED_COLUMNS, INDEXED,
                    mapping=AttributeMapping(column_types=(("customerId", "N"),)))
    assert str(caught.value) == (
        "--column_types sets column 'customerId' to N, but GSI by-customer declares "
        "'customerId' as S, and DynamoDB refuses an index key of another type: drop the entry")
    same = ItemBuilder(INDEXED_COLUMNS, INDEXED,
                       mapping=AttributeMapping(column_types=(("score", "N"),)))
    assert built(same.build(["k", "1", "5", "1", "x"])).item["score"] == {"N": "5"}


def test_a_ttl_attribute_an_index_declares_as_text_is_refused() -> None:
    with pytest.raises(ArgumentError, match="GSI by-customer declares 'customerId' as S"):
        ItemBuilder([Column("id")], INDEXED,
                    mapping=AttributeMapping(ttl_attribute="customerId", ttl_seconds=60))


def _number_texts() -> list[str]:
    """Number-like texts of every shape the fast size and the general parser may meet."""
    rng = random.Random(17)
    texts = ["0", "0.0", "0.5", "00", "00.5", "0.05", "0.050", "10", "100", "1.0", "1.", ".5",
             "5.", "-1.5", "+1.5", "1e5", "1.5E-3", "١٢", "1²", "1_000", "", "1.2.3",
             "9" * 38, "9" * 39, "1" + "0" * 37, "0." + "0" * 36 + "1", "1." + "2" * 37,
             "1." + "2" * 38]
    for _ in range(20_000):
        integer = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 25)))
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 20)))
        texts.append(rng.choice(["", "-", "+"]) * (rng.random() < 0.1) + integer
                     + ("." + fraction if rng.random() < 0.7 else ""))
    return texts


def test_the_fast_number_size_is_the_general_one() -> None:
    """The usual CSV number is sized without the general parser: wherever that fast size
    answers, DynamoDB keeps the text as written and the size is the general rule's."""
    answered = 0
    for text in _number_texts():
        size = _kept_decimal_size(text)
        if size:
            answered += 1
            assert number_kept_as_written(text), text
            assert size == number_size(text), text
        elif text and text[0] not in "+-" and "e" not in text.lower() and text.isascii() \
                and number_kept_as_written(text) and not text.startswith("."):
            raise AssertionError(f"{text!r} is kept as written, yet not sized fast")
    assert answered > 5_000
