"""DynamoDB item sizing and write units (dynamo_ingest.engine.sizing)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from dynamo_ingest.engine.sizing import (
    MAX_ITEM_BYTES,
    attribute_value_size,
    item_size,
    number_size,
    write_units,
)


def pairs_oracle(text: str) -> int:
    """Independent model of the base-100 rule: write the number out, pad each side of the
    point to whole digit pairs, drop all-zero pairs at both ends, count the rest."""
    value = Decimal(text)
    if value == 0:
        return 1
    integer, _, fraction = format(value.copy_abs(), "f").partition(".")
    integer = integer.lstrip("0")
    integer = ("0" if len(integer) % 2 else "") + integer
    fraction = fraction + ("0" if len(fraction) % 2 else "")
    pairs = [(integer + fraction)[i:i + 2] for i in range(0, len(integer + fraction), 2)]
    while pairs[0] == "00":
        pairs.pop(0)
    while pairs[-1] == "00":
        pairs.pop()
    return min(len(pairs) + 1 + value.is_signed(), 21)


def test_aws_constraints_example_item_is_23_bytes() -> None:
    # AWS "Constraints in DynamoDB", Item size: shirt-color "R" + shirt-size "M" = 23 bytes.
    assert item_size({"shirt-color": {"S": "R"}, "shirt-size": {"S": "M"}}) == 23


def test_aws_product_catalog_book_item_matches_public_calculator() -> None:
    # The ProductCatalog "Book 101" item of AWS's samples; the ddb-calc README reports 137.
    book: dict[str, dict[str, Any]] = {
        "Id": {"N": "101"},
        "Title": {"S": "Book 101 Title"},
        "ISBN": {"S": "111-1111111111"},
        "Authors": {"L": [{"S": "Author1"}]},
        "Price": {"N": "2"},
        "Dimensions": {"S": "8.5 x 11.0 x 0.5"},
        "PageCount": {"N": "500"},
        "InPublication": {"BOOL": True},
        "ProductCategory": {"S": "Book"},
    }
    assert item_size(book) == 137


@pytest.mark.parametrize(("text", "size"), [
    ("", 0), ("R", 1), ("é", 2), ("😀", 4), ("日本語", 9), ("café 😀", 10),
])
def test_strings_count_utf8_bytes(text: str, size: int) -> None:
    assert attribute_value_size({"S": text}) == size


def test_attribute_names_count_utf8_bytes() -> None:
    assert item_size({"é": {"S": "x"}}) == 3
    assert item_size({"名前": {"BOOL": False}}) == 7


@pytest.mark.parametrize(("text", "size"), [
    ("0", 1), ("-0.000", 1),
    ("1", 2), ("12", 2), ("123", 3), ("1234", 3), ("12345", 4),
    ("1.5", 3),          # 01|50: two base-100 digits
    ("10.5", 3), ("0.5", 2), ("0.001", 2), ("0.0012", 2), ("0.00123", 3),
    ("1000000", 2), ("1E+6", 2), ("100", 2), ("12300", 3),
    ("-5", 3), ("-123", 4),
    ("0012.500", 3),     # leading and trailing zeros trimmed, as AWS says
    ("12345678901234567890123456789012345678", 20),
    ("1.2345678901234567890123456789012345678", 21),
    ("-1.2345678901234567890123456789012345678", 21),  # the measured 21-byte ceiling
    ("1E-130", 2), ("9.9999999999999999999999999999999999999E+125", 20),
])
def test_number_sizes(text: str, size: int) -> None:
    assert number_size(text) == size
    assert number_size(text) == pairs_oracle(text)


def test_number_size_agrees_with_the_pairs_model_on_random_numbers() -> None:
    rng = random.Random(20240601)
    for _ in range(3000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 38)))
        point = rng.randint(0, len(digits))
        text = (rng.choice(["", "-"]) + digits[:point] + "." + digits[point:]
                + rng.choice(["", f"e{rng.randint(-60, 60)}"]))
        assert number_size(text) == pairs_oracle(text), text


def test_number_size_about_one_byte_per_two_digits_plus_one() -> None:
    # AWS's approximation holds exactly for integers without trailing zeros.
    for length in range(1, 39):
        digits = "7" * length
        assert number_size(digits) == (length + 1) // 2 + 1


def test_invalid_number_text_is_an_error() -> None:
    for text in ("NaN", "Infinity", "12x", "", "1_000", "١٢"):
        with pytest.raises(ValueError, match="expected DynamoDB number text"):
            number_size(text)


def test_booleans_and_nulls_are_one_byte() -> None:
    assert attribute_value_size({"BOOL": True}) == 1
    assert attribute_value_size({"BOOL": False}) == 1
    assert attribute_value_size({"NULL": True}) == 1


def test_binary_counts_raw_bytes_not_base64() -> None:
    assert attribute_value_size({"B": b"\x00\x01\x02"}) == 3
    assert attribute_value_size({"B": bytearray(10)}) == 10
    assert attribute_value_size({"BS": [b"ab", b"c"]}) == 3


def test_lists_and_maps() -> None:
    assert attribute_value_size({"L": []}) == 3
    assert attribute_value_size({"M": {}}) == 3
    # 3 + (1 + "a") + (1 + N 1)
    assert attribute_value_size({"L": [{"S": "a"}, {"N": "1"}]}) == 3 + 2 + 3
    # 3 + (1 + key "k" + "v")
    assert attribute_value_size({"M": {"k": {"S": "v"}}}) == 6
    nested = {"M": {"é": {"L": [{"NULL": True}, {"M": {}}]}}}
    # 3 + (1 + 2 + [3 + (1 + 1) + (1 + 3)])
    assert attribute_value_size(nested) == 3 + 1 + 2 + (3 + 2 + 4)


def test_sets_are_the_sum_of_their_elements() -> None:
    assert attribute_value_size({"SS": ["a", "é"]}) == 3
    assert attribute_value_size({"NS": ["1", "123", "-5"]}) == 2 + 3 + 3


def test_unknown_or_malformed_attribute_values_are_errors() -> None:
    with pytest.raises(ValueError, match="found 'X'"):
        attribute_value_size({"X": "1"})
    with pytest.raises(ValueError, match="exactly one type key"):
        attribute_value_size({"S": "a", "N": "1"})


@pytest.mark.parametrize(("size", "units"), [
    (0, 1), (1, 1), (500, 1),   # AWS: a 500-byte item costs as much as a 1 KB one
    (1023, 1), (1024, 1), (1025, 2), (2048, 2), (2049, 3),
    (MAX_ITEM_BYTES, 400),
])
def test_write_units_per_started_kilobyte(size: int, units: int) -> None:
    assert write_units(size) == units


def test_write_units_of_a_real_item_cross_the_1kb_boundary() -> None:
    name = "payload"
    at_limit = {name: {"S": "x" * (1024 - len(name))}}
    assert item_size(at_limit) == 1024
    assert write_units(item_size(at_limit)) == 1
    over = {name: {"S": "x" * (1025 - len(name))}}
    assert write_units(item_size(over)) == 2


def test_write_units_refuse_negative_sizes() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        write_units(-1)
