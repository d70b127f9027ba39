"""One CSV row of strings → one DynamoDB item (low-level JSON), or the reason it cannot be one.

This is the per-row hot path of the job (millions of rows in Python workers): the builder
makes one small closure per column once, and :meth:`ItemBuilder.build` only calls them. Each
closure converts its field, stores the attribute in the item and returns the bytes it adds to
the item's size. Everything DynamoDB would refuse is refused here, row by row, because one
invalid item makes DynamoDB refuse its whole ``BatchWriteItem`` call.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from dynamo_ingest.arguments import EmptyPolicy
from dynamo_ingest.catalog import NUMERIC_GLUE_TYPES, Column
from dynamo_ingest.errors import ArgumentError, SchemaMismatchError, TargetTableError
from dynamo_ingest.keys import KeyAttribute, KeySchema
from dynamo_ingest.sizing import (
    MAX_EXPONENT,
    MAX_ITEM_BYTES,
    MAX_SIGNIFICANT_DIGITS,
    MIN_EXPONENT,
    NumberParts,
    number_parts,
    number_parts_size,
    write_units,
)

# AWS "Partition keys and sort keys": key values are 1 to 2048 (partition) or 1024 (sort) bytes.
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
_SHOWN_CHARS = 40

Item = dict[str, dict[str, Any]]
# Stores one field of a row in the item and returns the bytes added (name + value), 0 when
# the field is omitted; raises _InvalidValueError, whose message names the column.
_Put = Callable[[Item, "str | None"], int]


@dataclass(frozen=True, slots=True)
class BuiltItem:
    """A row turned into an item ready for a ``BatchWriteItem`` ``PutRequest``."""

    item: dict[str, dict[str, Any]]
    key: tuple[str, ...]
    size: int
    wcu: int


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a row cannot be written, naming the column and the offending value."""

    reason: str


class _InvalidValueError(Exception):
    """A field does not fit its attribute (becomes a Rejection with this message)."""


def _shown(value: str | bytes) -> str:
    """The value as quoted in a rejection, cut to about 40 characters."""
    if len(value) > _SHOWN_CHARS:
        return repr(value[:_SHOWN_CHARS]) + f"… ({len(value)} long)"
    return repr(value)


def _checked_number(text: str) -> tuple[str, NumberParts]:
    """Number text as DynamoDB takes it, and its parts; raises for what DynamoDB refuses.

    DynamoDB accepts ``-17e5``, ``1E+5``, ``.123``, ``0001.23`` and ``+3`` as written (per
    tests run against DynamoDB in scylladb's alternator suite) and refuses ``NaN``,
    ``Infinity`` and surrounding spaces, which the caller strips. A leading ``+`` and a bare
    trailing point (``5.``, a form AWS does not document) are dropped; the value is unchanged.
    """
    parts = number_parts(text)
    if parts is None:
        raise _InvalidValueError(f"{_shown(text)} is not a number")
    digits = parts[1]
    if len(digits) > MAX_SIGNIFICANT_DIGITS:
        raise _InvalidValueError(
            f"{_shown(text)} has {len(digits)} significant digits but DynamoDB numbers hold at "
            f"most {MAX_SIGNIFICANT_DIGITS}: load the column as a string")
    if digits and not MIN_EXPONENT <= parts[2] <= MAX_EXPONENT:
        raise _InvalidValueError(
            f"{_shown(text)} is outside DynamoDB's number range "
            "(magnitude 1E-130 to 9.9999999999999999999999999999999999999E+125)")
    if text[0] == "+":
        text = text[1:]
    if text[-1] == ".":
        text = text[:-1]
    elif ".e" in text or ".E" in text:
        text = text.replace(".e", "e").replace(".E", "E")
    return text, parts


def _canonical_from_parts(parts: NumberParts) -> str:
    """Plain decimal text with no exponent and no redundant zeros: 1, 1.0, 01, 1e0 → ``1``."""
    negative, digits, first = parts
    if not digits:
        return "0"
    last = first - len(digits) + 1
    if last >= 0:
        plain = digits + "0" * last
    elif first >= 0:
        plain = digits[: first + 1] + "." + digits[first + 1:]
    else:
        plain = "0." + "0" * (-first - 1) + digits
    return "-" + plain if negative else plain


def canonical_number(text: str) -> str | None:
    """The canonical text of a DynamoDB number (equal numbers, equal text), None if not one.

    Surrounding whitespace is ignored, as :class:`ItemBuilder` strips it; what DynamoDB cannot
    hold (over 38 significant digits, out of range, NaN, Infinity, not a number) gives None.
    """
    stripped = text.strip()
    if stripped.isdigit() and stripped.isascii() and len(stripped) <= MAX_SIGNIFICANT_DIGITS:
        return stripped.lstrip("0") or "0"
    try:
        _, parts = _checked_number(stripped)
    except _InvalidValueError:
        return None
    return _canonical_from_parts(parts)


def _number_attribute(text: str) -> tuple[str, int]:
    """(N text, value bytes) of a stripped, non-blank numeric field."""
    # Plain non-negative integers, the usual CSV number, skip the general parser.
    if text.isdigit() and text.isascii() and len(text) <= MAX_SIGNIFICANT_DIGITS:
        significant = text.lstrip("0")
        if not significant:
            return text, 1
        return text, number_parts_size((False, significant.rstrip("0"), len(significant) - 1))
    text, parts = _checked_number(text)
    return text, number_parts_size(parts)


def _omit(item: Item) -> int:
    return 0


def _empty_put(name: str, name_size: int, policy: EmptyPolicy) -> Callable[[Item], int]:
    """What an empty field of a non-key column becomes, per ``--empty_value``."""
    if policy == "omit":
        return _omit
    if policy == "null":
        def put_null(item: Item) -> int:
            item[name] = {"NULL": True}
            return name_size + 1
        return put_null
    assert policy == "empty_string", policy

    def put_empty_string(item: Item) -> int:
        item[name] = {"S": ""}
        return name_size
    return put_empty_string


def _string_put(name: str, name_size: int, on_empty: Callable[[Item], int]) -> _Put:
    def put(item: Item, raw: str | None) -> int:
        if raw:
            item[name] = {"S": raw}
            return name_size + (len(raw) if raw.isascii() else len(raw.encode("utf-8")))
        return on_empty(item)
    return put


def _number_put(name: str, name_size: int, on_empty: Callable[[Item], int]) -> _Put:
    def put(item: Item, raw: str | None) -> int:
        text = raw.strip() if raw else None
        if not text:
            return on_empty(item)
        try:
            text, size = _number_attribute(text)
        except _InvalidValueError as err:
            raise _InvalidValueError(f"column {name!r}: {err}") from None
        item[name] = {"N": text}
        return name_size + size
    return put


def _boolean_put(name: str, name_size: int, on_empty: Callable[[Item], int]) -> _Put:
    """``true``/``false`` in any letter case, surrounding whitespace ignored; nothing else."""
    def put(item: Item, raw: str | None) -> int:
        if raw:
            text = raw.strip().lower()
            if text == "true" or text == "false":
                item[name] = {"BOOL": text == "true"}
                return name_size + 1
            if text:
                raise _InvalidValueError(
                    f"column {name!r}: {_shown(raw)} is not a boolean (expected true or false)")
        return on_empty(item)
    return put


def _key_put(attribute: KeyAttribute, name_size: int, role: str) -> _Put:
    """Key column (``role`` partition or sort): the table's key type decides, not the
    column's Glue type; never empty."""
    name = attribute.name
    max_bytes = MAX_PARTITION_KEY_BYTES if role == "partition" else MAX_SORT_KEY_BYTES
    missing = f"missing value for key attribute {name!r}"

    def too_long(size: int) -> _InvalidValueError:
        return _InvalidValueError(
            f"column {name!r}: key value is {size} bytes but a DynamoDB {role} key holds at "
            f"most {max_bytes}")

    if attribute.type == "N":
        def number_key(item: Item, raw: str | None) -> int:
            text = raw.strip() if raw else None
            if not text:
                raise _InvalidValueError(missing)
            try:
                text, size = _number_attribute(text)
            except _InvalidValueError as err:
                raise _InvalidValueError(f"column {name!r}: {err}") from None
            item[name] = {"N": text}
            return name_size + size
        return number_key

    if attribute.type == "B":
        def binary_key(item: Item, raw: str | None) -> int:
            text = raw.strip() if raw else ""
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as err:
                raise _InvalidValueError(
                    f"column {name!r}: {_shown(text)} is not base64 for a binary key") from err
            if not data:
                raise _InvalidValueError(missing)
            if len(data) > max_bytes:
                raise too_long(len(data))
            item[name] = {"B": data}
            return name_size + len(data)
        return binary_key

    def string_key(item: Item, raw: str | None) -> int:
        if not raw:
            raise _InvalidValueError(missing)
        size = len(raw) if raw.isascii() else len(raw.encode("utf-8"))
        if size > max_bytes:
            raise too_long(size)
        item[name] = {"S": raw}
        return name_size + size
    return string_key


def _key_text(attribute: KeyAttribute) -> Callable[[Item], str]:
    """The canonical text of a built item's key attribute, for de-duplication."""
    name = attribute.name
    if attribute.type == "N":
        def number_text(item: Item) -> str:
            text: str = item[name]["N"]
            if text.isdigit() and text.isascii():
                return text.lstrip("0") or "0"
            parts = number_parts(text)
            assert parts is not None  # the put validated it
            return _canonical_from_parts(parts)
        return number_text
    if attribute.type == "B":
        return lambda item: base64.b64encode(item[name]["B"]).decode("ascii")
    return lambda item: str(item[name]["S"])


class ItemBuilder:
    """Turns rows of one file (one string or None per column) into items for one table."""

    __slots__ = ("_key_texts", "_puts")

    def __init__(self, columns: Sequence[Column], key_schema: KeySchema,
                 empty_value: EmptyPolicy = "omit") -> None:
        if empty_value not in get_args(EmptyPolicy):
            raise ArgumentError(
                f"--empty_value expects omit, null or empty_string, found {empty_value!r}")
        names = [c.name for c in columns]
        if "" in names:
            raise SchemaMismatchError(
                f"column {names.index('') + 1} has an empty header name, but a DynamoDB "
                "attribute name needs at least one character: name every column in the header")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SchemaMismatchError(
                f"the header repeats column name(s) {', '.join(map(repr, duplicates))}; each "
                "becomes one DynamoDB attribute, so names must be unique: rename them")
        for attribute in key_schema.attributes:
            if attribute.name not in names:
                raise TargetTableError(
                    f"the table's key attribute {attribute.name!r} is not a column of the file "
                    f"(columns: {', '.join(names)}); key names are case-sensitive: add the "
                    "column or fix the header spelling")
        keys = {a.name: a for a in key_schema.attributes}
        roles = {key_schema.partition.name: "partition"}
        if key_schema.sort is not None:
            roles[key_schema.sort.name] = "sort"
        puts: list[_Put] = []
        for column in columns:
            name = column.name
            name_size = len(name.encode("utf-8"))
            glue_type = column.type.strip().lower()
            if name in keys:
                puts.append(_key_put(keys[name], name_size, roles[name]))
            elif glue_type in NUMERIC_GLUE_TYPES or glue_type.startswith("decimal"):
                puts.append(_number_put(name, name_size, _empty_put(name, name_size, empty_value)))
            elif glue_type == "boolean":
                puts.append(_boolean_put(name, name_size, _empty_put(name, name_size, empty_value)))
            else:
                puts.append(_string_put(name, name_size, _empty_put(name, name_size, empty_value)))
        self._puts = tuple(puts)
        self._key_texts = tuple(_key_text(a) for a in key_schema.attributes)

    def build(self, values: Sequence[str | None]) -> BuiltItem | Rejection:
        """The item for one row, or a :class:`Rejection` saying which field is wrong and why."""
        item: Item = {}
        size = 0
        try:
            for put, raw in zip(self._puts, values, strict=False):
                size += put(item, raw)
        except _InvalidValueError as err:
            return Rejection(str(err))
        if size > MAX_ITEM_BYTES:
            return Rejection(
                f"item is {size} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte (400 KB) item "
                "limit: shorten or drop its largest columns")
        key = tuple([text(item) for text in self._key_texts])
        return BuiltItem(item, key, size, write_units(size))


def decode_utf8(values: Sequence[str | None],
                names: Sequence[str] | None = None) -> tuple[str | None, ...] | Rejection:
    """Re-read fields read as ISO-8859-1 (one char per byte) as strict UTF-8.

    ``names``, when given, name the columns in the rejection; columns are also numbered from 1.
    A char above U+00FF means the reader did not use ISO-8859-1: a bug, raised as ValueError.
    """
    decoded: list[str | None] = []
    for index, value in enumerate(values):
        if value is None or value.isascii():
            decoded.append(value)
            continue
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError as err:
            raise ValueError(
                f"expected fields read as ISO-8859-1 (chars up to U+00FF), found "
                f"{value[err.start]!r} in column {index + 1}: read the file as ISO-8859-1"
            ) from err
        try:
            decoded.append(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            column = f"column {index + 1}" + (f" {names[index]!r}" if names is not None else "")
            return Rejection(f"invalid UTF-8 in {column} (byte offset {err.start}): {_shown(raw)}")
    return tuple(decoded)
