"""DynamoDB item sizes and write units: the project's one copy of AWS's sizing rules.

Rules (AWS "DynamoDB item sizes and formats"): an item's size is the sum over its attributes
of the UTF-8 bytes of the name plus the size of the value. Strings count their UTF-8 bytes,
binaries their raw bytes, booleans and nulls 1 byte, lists and maps 3 bytes plus 1 byte per
element plus the elements (a map element adds its key's UTF-8 bytes), sets the sum of their
elements. One write unit covers a started 1 KB (1024 bytes).

Numbers: AWS only says "about 1 byte per two significant digits + 1 byte, leading and
trailing zeroes trimmed". DynamoDB stores numbers base-100, with digit pairs aligned on the
decimal point, so :func:`number_size` counts the base-100 digits from the first to the last
non-zero pair, plus 1 byte, plus 1 more for a negative number, at most 21 bytes; zero is
1 byte. This is the rule measured against DynamoDB's ``ConsumedCapacity`` by Zac Charles'
item size calculator (zaccharles/dynamodb-calculator), which the AWS docs' approximation
rounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_ITEM_BYTES = 400 * 1024
WRITE_UNIT_BYTES = 1024
MAX_SIGNIFICANT_DIGITS = 38
# Power of ten of the first significant digit: 1E-130 … 9.99…9E+125 (AWS "Data types").
MIN_EXPONENT = -130
MAX_EXPONENT = 125
_MAX_NUMBER_BYTES = 21
_LIST_OR_MAP_OVERHEAD = 3
_ELEMENT_OVERHEAD = 1
_HUGE_EXPONENT = 10**9

# (negative, significant digits with leading and trailing zeros trimmed ("" for zero),
#  power of ten of the first significant digit (0 for zero)); a plain tuple because it is
#  built for every number of every row.
NumberParts = tuple[bool, str, int]


def number_parts(text: str) -> NumberParts | None:
    """Split number text (``-12.5``, ``.5``, ``1e+5``, ``007``) into :data:`NumberParts`.

    Returns None when the text is not decimal number syntax (``NaN``, ``1 000``, ``0x1F``,
    ``1_000``, ``""``, surrounding spaces). The range and the 38-digit limit are not checked.
    """
    negative = text[:1] == "-"
    if negative or text[:1] == "+":
        text = text[1:]
    integer, point, fraction = text.partition(".")
    digits = integer + fraction if point else integer
    exponent = 0
    # isdigit() alone also takes other scripts' digits and superscripts, hence isascii()
    if not (digits.isdigit() and digits.isascii()):  # not the plain "123.45" form
        mantissa, marker, exponent_text = text.partition("e")
        if not marker:
            mantissa, marker, exponent_text = text.partition("E")
        if not marker:
            return None
        integer, _, fraction = mantissa.partition(".")
        digits = integer + fraction
        unsigned = exponent_text[1:] if exponent_text[:1] in ("+", "-") else exponent_text
        if not (digits.isdigit() and digits.isascii() and unsigned.isdigit()
                and unsigned.isascii()):
            return None
        if len(unsigned) <= 10:
            exponent = int(exponent_text)
        else:  # out of range anyway; spare int() a gigantic exponent
            exponent = -_HUGE_EXPONENT if exponent_text[0] == "-" else _HUGE_EXPONENT
    significant = digits.lstrip("0")
    if not significant:
        return (False, "", 0)
    leading_zeros = len(digits) - len(significant)
    return (negative, significant.rstrip("0"), len(integer) - 1 - leading_zeros + exponent)


def number_parts_size(parts: NumberParts) -> int:
    """Stored bytes of a number already split by :func:`number_parts`."""
    negative, digits, first = parts
    if not digits:
        return 1
    return digits_size(first, len(digits), negative)


def digits_size(first: int, significant: int, negative: bool = False) -> int:
    """Stored bytes of a non-zero number of ``significant`` digits (leading and trailing zeros
    trimmed) whose first is at the power of ten ``first``: its base-100 digit pairs, aligned
    on the decimal point, plus 1 byte (and 1 for a negative number), at most 21."""
    size = first // 2 - (first - significant + 1) // 2 + 2 + negative
    return size if size < _MAX_NUMBER_BYTES else _MAX_NUMBER_BYTES


def number_size(text: str) -> int:
    """Stored bytes of an ``N`` value (without its attribute name); see the module docstring."""
    parts = number_parts(text.strip())
    if parts is None:
        raise ValueError(f"expected DynamoDB number text such as '12.5', found {text!r}")
    return number_parts_size(parts)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _binary_size(value: bytes | bytearray | memoryview | str) -> int:
    # botocore sends a str given for a blob as its UTF-8 bytes
    return _utf8_size(value) if isinstance(value, str) else len(value)


def attribute_value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one low-level attribute value (``{"S": ...}``, ``{"L": [...]}``, …), no name."""
    if len(value) != 1:
        raise ValueError(f"expected an attribute value with exactly one type key, found {value!r}")
    ((kind, inner),) = value.items()
    if kind == "S":
        return _utf8_size(inner)
    if kind == "N":
        return number_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "B":
        return _binary_size(inner)
    if kind == "M":
        return _LIST_OR_MAP_OVERHEAD + sum(
            _ELEMENT_OVERHEAD + _utf8_size(k) + attribute_value_size(v) for k, v in inner.items())
    if kind == "L":
        return _LIST_OR_MAP_OVERHEAD + sum(
            _ELEMENT_OVERHEAD + attribute_value_size(v) for v in inner)
    if kind == "SS":
        return sum(_utf8_size(s) for s in inner)
    if kind == "NS":
        return sum(number_size(n) for n in inner)
    if kind == "BS":
        return sum(_binary_size(b) for b in inner)
    raise ValueError(
        f"expected a DynamoDB type key (S, N, B, BOOL, NULL, M, L, SS, NS, BS), found {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes of a whole item in low-level JSON: names plus values."""
    return sum(_utf8_size(name) + attribute_value_size(value) for name, value in item.items())


def write_units(size_bytes: int) -> int:
    """Write units to write one item of ``size_bytes``: one per started KB, at least 1."""
    if size_bytes < 0:
        raise ValueError(f"expected an item size in bytes >= 0, found {size_bytes}")
    return max(1, -(-size_bytes // WRITE_UNIT_BYTES))
