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
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from dynamo_ingest.core.arguments import EmptyPolicy
from dynamo_ingest.core.catalog import NUMERIC_GLUE_TYPES, Column
from dynamo_ingest.core.errors import ArgumentError, SchemaMismatchError
from dynamo_ingest.core.keys import IndexKey, KeyAttribute, KeySchema
from dynamo_ingest.core.mapping import (
    SHARD_SEPARATOR,
    AttributeMapping,
    ColumnType,
    TemplatePart,
    parse_epoch_seconds,
    shard_of,
)
from dynamo_ingest.engine.sizing import (
    MAX_EXPONENT,
    MAX_ITEM_BYTES,
    MAX_SIGNIFICANT_DIGITS,
    MIN_EXPONENT,
    NumberParts,
    attribute_value_size,
    digits_size,
    number_parts,
    number_parts_size,
    write_units,
)

# AWS "Partition keys and sort keys": key values are 1 to 2048 (partition) or 1024 (sort) bytes.
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
# AWS "Quotas": nested attributes (maps and lists) go at most 32 levels deep.
MAX_NESTING_DEPTH = 32
_SHOWN_CHARS = 40

Item = dict[str, dict[str, Any]]
# Stores one field of a row in the item and returns the bytes added (name + value), 0 when
# the field is omitted; raises _InvalidValueError, whose message names the column.
_Put = Callable[[Item, "str | None"], int]
# Runs after the column puts with the whole row: computed keys, shard suffix, TTL, checks.
_Finish = Callable[[Item, Sequence["str | None"]], int]


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__, which
# costs about a microsecond per row here (one BuiltItem per row of every file).
@dataclass(slots=True)
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


def number_kept_as_written(text: str) -> bool:
    """True when DynamoDB would store the number ``text`` exactly as written (it keeps no
    leading or trailing zeros, ``+`` sign or exponent): ``2869`` and ``12.5``, not ``02869``,
    ``12.50``, ``+3``, ``5.0`` or ``1e5``. False for what is not a DynamoDB number at all."""
    if text.isdigit() and text.isascii() and len(text) <= MAX_SIGNIFICANT_DIGITS:
        return text[0] != "0" or text == "0"
    return canonical_number(text) == text


def _number_attribute(text: str) -> tuple[str, int]:
    """(N text, value bytes) of a stripped, non-blank numeric field."""
    # Plain non-negative integers, the usual CSV number, skip the general parser.
    if text.isdigit() and text.isascii() and len(text) <= MAX_SIGNIFICANT_DIGITS:
        return text, _plain_integer_size(text)
    size = _kept_decimal_size(text)
    if size:
        return text, size
    text, parts = _checked_number(text)
    return text, number_parts_size(parts)


def _kept_decimal_size(text: str) -> int:
    """DynamoDB's size of ``text`` when it is a non-negative decimal DynamoDB keeps as written
    (``1556.78``, ``0.05``, ``44``: ASCII digits, at most one point with digits on both sides,
    no leading zero, no trailing zero after the point, at most 38 digits); 0 for any other
    text, which the general parser then takes.

    The usual CSV number, sized without :func:`number_parts` (it runs for every number of
    every row): the parts :func:`number_parts` would give, read off the text."""
    integer, point, fraction = text.partition(".")
    if not (integer.isdigit() and text.isascii()) or (integer[0] == "0" and len(integer) > 1):
        return 0
    if not point:
        return _plain_integer_size(integer) if len(integer) <= MAX_SIGNIFICANT_DIGITS else 0
    if not (fraction.isdigit() and fraction[-1] != "0") or \
            len(integer) + len(fraction) > MAX_SIGNIFICANT_DIGITS:
        return 0
    if integer == "0":
        significant = len(fraction.lstrip("0"))
        return digits_size(significant - len(fraction) - 1, significant)
    return digits_size(len(integer) - 1, len(integer) + len(fraction))


def _plain_integer_size(text: str) -> int:
    """DynamoDB's size of a number written as ASCII digits only (at most 38 of them)."""
    significant = text.lstrip("0")
    if not significant:
        return 1
    return number_parts_size((False, significant.rstrip("0"), len(significant) - 1))


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


def _set_number(item: Item, name: str, name_size: int, shown: str, text: str,
                why: str = "") -> int:
    """Store ``text`` as the N attribute ``name``; its size, or why DynamoDB would refuse it
    (the reason ending with ``why``)."""
    try:
        text, size = _number_attribute(text)
    except _InvalidValueError as err:
        raise _InvalidValueError(f"column {shown!r}: {err}{why}") from None
    item[name] = {"N": text}
    return name_size + size


def _number_put(name: str, name_size: int, on_empty: Callable[[Item], int],
                label: str | None = None) -> _Put:
    shown = label or name

    def put(item: Item, raw: str | None) -> int:
        text = raw.strip() if raw else None
        if not text:
            return on_empty(item)
        return _set_number(item, name, name_size, shown, text)
    return put


def _typed_by(glue_type: str, origin: str, column: str) -> str:
    """What a reject reason adds for a value that does not fit a type the user did not give:
    where the type came from (a sample may miss the later text), and the option that fixes it."""
    if not origin:
        return ""
    return (f" (the column is typed {glue_type} from {origin}; `--column_types {column}:S` "
            "loads it as text)")


def _exact_number_put(name: str, name_size: int, on_empty: Callable[[Item], int], label: str,
                      column: str, typed_by: str = "") -> _Put:
    """A column the catalog types as a number: DynamoDB normalises number text (``02869`` is
    stored as 2869), so a value it would not keep as written rejects the row instead of
    changing silently; ``--column_types`` says which the user wants."""
    def changed(text: str) -> _InvalidValueError:
        return _InvalidValueError(
            f"column {label!r}: {_shown(text)} would be stored by DynamoDB as "
            f"{canonical_number(text)}, not as written: `--column_types {column}:S` keeps the "
            f"text; `--column_types {column}:N` stores numbers as DynamoDB normalises them")

    def put(item: Item, raw: str | None) -> int:
        text = raw.strip() if raw else None
        if not text:
            return on_empty(item)
        size = _kept_decimal_size(text)
        if size:
            item[name] = {"N": text}
            return name_size + size
        # Parsed once: the checks DynamoDB makes, then the text against its canonical form
        # (a leading zero, a trailing zero after the point, an exponent).
        try:
            sent, parts = _checked_number(text)
        except _InvalidValueError as err:
            raise _InvalidValueError(f"column {label!r}: {err}{typed_by}") from None
        if sent != text or _canonical_from_parts(parts) != text:
            raise changed(text)
        item[name] = {"N": text}
        return name_size + number_parts_size(parts)
    return put


# The usual boolean texts, read without a strip or lower per row.
_BOOLEANS = {"true": True, "false": False, "TRUE": True, "FALSE": False, "True": True,
             "False": False}


def _boolean_put(name: str, name_size: int, on_empty: Callable[[Item], int],
                 label: str | None = None, typed_by: str = "") -> _Put:
    """``true``/``false`` in any letter case, surrounding whitespace ignored; nothing else."""
    shown = label or name

    def put(item: Item, raw: str | None) -> int:
        value = _BOOLEANS.get(raw) if raw else None
        if value is not None:  # as written: no strip or lower per row
            item[name] = {"BOOL": value}
            return name_size + 1
        if raw:
            text = raw.strip().lower()
            if text == "true" or text == "false":
                item[name] = {"BOOL": text == "true"}
                return name_size + 1
            if text:
                raise _InvalidValueError(
                    f"column {shown!r}: {_shown(raw)} is not a boolean (expected true or "
                    f"false){typed_by}")
        return on_empty(item)
    return put


def _key_put(attribute: KeyAttribute, name_size: int, role: str, label: str | None = None) -> _Put:
    """Key column (``role`` partition or sort): the table's key type decides, not the
    column's Glue type; never empty. ``label`` names the source in messages."""
    name = attribute.name
    shown = label or name
    max_bytes = MAX_PARTITION_KEY_BYTES if role == "partition" else MAX_SORT_KEY_BYTES
    missing = f"missing value for key attribute {name!r}" + (f" ({label})" if label else "")

    def refuse_empty() -> int:
        raise _InvalidValueError(missing)

    def too_long(size: int) -> _InvalidValueError:
        return _InvalidValueError(
            f"column {shown!r}: key value is {size} bytes but a DynamoDB {role} key holds at "
            f"most {max_bytes}")

    return _typed_key_value(attribute, name_size, shown, max_bytes, refuse_empty, too_long,
                            number_why="", binary_why=" for a binary key")


def _index_key_put(keys: Sequence[IndexKey], name_size: int, label: str) -> _Put:
    """A column stored as a secondary index's key attribute: typed as the index declares, since
    DynamoDB refuses the whole batch of an item with an index key of another type. An empty
    field omits the attribute whatever ``--empty_value`` says: DynamoDB refuses an empty or
    NULL index key, and an item without it is simply not in the index."""
    attribute = keys[0].attribute
    declared = ", ".join(k.describe() for k in keys)
    why = f"{declared} declare{'s' if len(keys) == 1 else ''} {attribute.name} as {attribute.type}"
    max_bytes = (MAX_SORT_KEY_BYTES if any(k.role == "sort" for k in keys)
                 else MAX_PARTITION_KEY_BYTES)

    def too_long(size: int) -> _InvalidValueError:
        return _InvalidValueError(
            f"column {label!r}: value is {size} bytes, but as a key of {declared} it may hold "
            f"at most {max_bytes}")

    return _typed_key_value(attribute, name_size, label, max_bytes, lambda: 0, too_long,
                            number_why=f", and {why}", binary_why=f", and {why}")


def _typed_key_value(attribute: KeyAttribute, name_size: int, shown: str, max_bytes: int,
                     on_empty: Callable[[], int], too_long: Callable[[int], _InvalidValueError],
                     *, number_why: str, binary_why: str) -> _Put:
    """A key attribute (of the table or of an index) typed as declared, S, N or B, within
    ``max_bytes``; an empty field is ``on_empty``'s (the table's key refuses it, an index's is
    left out), and an invalid value's reason ends with ``number_why``/``binary_why``."""
    name = attribute.name
    if attribute.type == "N":
        def number_key(item: Item, raw: str | None) -> int:
            text = raw.strip() if raw else None
            if not text:
                return on_empty()
            return _set_number(item, name, name_size, shown, text, number_why)
        return number_key

    if attribute.type == "B":
        def binary_key(item: Item, raw: str | None) -> int:
            text = raw.strip() if raw else ""
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as err:
                raise _InvalidValueError(
                    f"column {shown!r}: {_shown(text)} is not base64{binary_why}") from err
            if not data:
                return on_empty()
            if len(data) > max_bytes:
                raise too_long(len(data))
            item[name] = {"B": data}
            return name_size + len(data)
        return binary_key

    def string_key(item: Item, raw: str | None) -> int:
        if not raw:
            return on_empty()
        size = len(raw) if raw.isascii() else len(raw.encode("utf-8"))
        if size > max_bytes:
            raise too_long(size)
        item[name] = {"S": raw}
        return name_size + size
    return string_key


def _key_of(texts: tuple[Callable[[Item], str], ...]) -> Callable[[Item], tuple[str, ...]]:
    """A built item's key as the tuple of its attributes' canonical texts."""
    if len(texts) == 1:
        # The usual key, a partition key alone: no comprehension per row (≈ 0.2 µs).
        text = texts[0]
        return lambda item: (text(item),)
    return lambda item: tuple([text(item) for text in texts])


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


class _JsonNumber(str):
    """A JSON number kept as the text it was written as (DynamoDB numbers are decimal)."""

    __slots__ = ()


def _refuse_constant(name: str) -> Any:
    raise _InvalidValueError(f"{name} is not a number DynamoDB can hold")


def _json_value(value: Any, depth: int) -> dict[str, Any]:
    """A parsed JSON value as a DynamoDB attribute value (M, L, S, N, BOOL, NULL)."""
    if depth > MAX_NESTING_DEPTH:
        raise _InvalidValueError(
            f"nests deeper than DynamoDB's {MAX_NESTING_DEPTH} levels of maps and lists")
    if isinstance(value, _JsonNumber):
        return {"N": _checked_number(value)[0]}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        return {"M": {k: _json_value(v, depth + 1) for k, v in value.items()}}
    assert isinstance(value, list), type(value)
    return {"L": [_json_value(v, depth + 1) for v in value]}


def _json_put(name: str, name_size: int, on_empty: Callable[[Item], int], label: str) -> _Put:
    """A JSON document: objects become maps, arrays lists, numbers exact ``N``s."""
    def put(item: Item, raw: str | None) -> int:
        if not raw or not raw.strip():
            return on_empty(item)
        try:
            parsed = json.loads(raw, parse_float=_JsonNumber, parse_int=_JsonNumber,
                                parse_constant=_refuse_constant)
            value = _json_value(parsed, 1)
        except ValueError as err:  # json.JSONDecodeError is a ValueError
            raise _InvalidValueError(
                f"column {label!r}: {_shown(raw)} is not JSON ({err})") from None
        except _InvalidValueError as err:
            raise _InvalidValueError(f"column {label!r}: JSON value {err}") from None
        item[name] = value
        return name_size + attribute_value_size(value)
    return put


def _column_put(name: str, label: str, glue_type: str, override: ColumnType | None,
                on_empty: Callable[[Item], int], column: str, origin: str = "") -> _Put:
    """The put of a non-key column: ``--column_types`` first, else its Glue type (from
    ``origin``, which a reject reason names)."""
    name_size = len(name.encode("utf-8"))
    typed_by = "" if override is not None else _typed_by(glue_type, origin, column)
    if override is None and (glue_type in NUMERIC_GLUE_TYPES or glue_type.startswith("decimal")):
        return _exact_number_put(name, name_size, on_empty, label, column, typed_by)
    kind = override or ("BOOL" if glue_type == "boolean" else "S")
    if kind == "N":
        return _number_put(name, name_size, on_empty, label)
    if kind == "BOOL":
        return _boolean_put(name, name_size, on_empty, label, typed_by)
    if kind == "JSON":
        return _json_put(name, name_size, on_empty, label)
    return _string_put(name, name_size, on_empty)


def _template_key(attribute: KeyAttribute, role: str, parts: tuple[TemplatePart, ...],
                  names: Sequence[str], template: str) -> _Finish:
    """A key attribute composed from several columns and literal text."""
    put = _key_put(attribute, len(attribute.name.encode("utf-8")), role,
                   f"--{role}_key_template {template!r}")

    def finish(item: Item, values: Sequence[str | None]) -> int:
        pieces: list[str] = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value = values[part]
            if not value:
                raise _InvalidValueError(
                    f"missing value for column {names[part]!r}, which the {role} key template "
                    f"{template!r} uses")
            pieces.append(value)
        return put(item, "".join(pieces))
    return finish


def _shard_suffix(partition: KeyAttribute, rest_of_key: Callable[[Item], str],
                  shards: int) -> _Finish:
    """Append ``#<shard>`` to the partition key, the shard hashed from the rest of the key."""
    name = partition.name

    def finish(item: Item, values: Sequence[str | None]) -> int:
        value: str = item[name]["S"]
        suffix = SHARD_SEPARATOR + str(shard_of(rest_of_key(item), shards))
        size = len(value.encode("utf-8")) + len(suffix)
        if size > MAX_PARTITION_KEY_BYTES:
            raise _InvalidValueError(
                f"partition key {name!r} with its shard suffix is {size} bytes but a DynamoDB "
                f"partition key holds at most {MAX_PARTITION_KEY_BYTES}")
        item[name] = {"S": value + suffix}
        return len(suffix)
    return finish


def _ttl_from_column(attribute: str, index: int, label: str) -> _Finish:
    """The TTL attribute in epoch seconds from a column of epoch seconds or ISO 8601 times."""
    name_size = len(attribute.encode("utf-8"))

    def finish(item: Item, values: Sequence[str | None]) -> int:
        raw = values[index]
        if not raw or not raw.strip():
            return 0  # no expiry for this item
        try:
            seconds = parse_epoch_seconds(raw, "a TTL time")
        except ValueError as err:
            raise _InvalidValueError(f"column {label!r} (--ttl_from_column): {err}") from None
        text, size = _number_attribute(str(seconds))
        item[attribute] = {"N": text}
        return name_size + size
    return finish


def _fixed_ttl(attribute: str, expires: int) -> _Finish:
    """The same TTL attribute (load time + ``--ttl_seconds``) on every item."""
    text, value_size = _number_attribute(str(expires))
    size = len(attribute.encode("utf-8")) + value_size

    def finish(item: Item, values: Sequence[str | None]) -> int:
        item[attribute] = {"N": text}
        return size
    return finish


def _version_present(attribute: str, label: str) -> _Finish:
    """A row without a version cannot be compared under the version guard: reject it."""
    def finish(item: Item, values: Sequence[str | None]) -> int:
        value = item.get(attribute)
        if value is None or not (value.get("N") or value.get("S")):
            raise _InvalidValueError(
                f"missing value for the version column {label!r} (--version_column): the "
                "version guard compares it with the stored item's")
        return 0
    return finish


class ItemBuilder:
    """Turns rows of one file (one string or None per column) into items for one table."""

    __slots__ = ("_finishers", "_key_of", "_puts")

    def __init__(self, columns: Sequence[Column], key_schema: KeySchema,
                 empty_value: EmptyPolicy = "omit",
                 mapping: AttributeMapping | None = None) -> None:
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
        mapping = mapping or AttributeMapping()
        resolved = mapping.resolve(columns, key_schema)
        keys = {a.name: a for a in key_schema.attributes}
        roles = {key_schema.partition.name: "partition"}
        if key_schema.sort is not None:
            roles[key_schema.sort.name] = "sort"
        key_from_column = {i: name for name, i in resolved.key_columns.items()}
        puts: list[_Put] = []
        for index, column in enumerate(columns):
            name = resolved.attribute_names[index]
            if name is None:
                puts.append(_skip)
                continue
            label = column.name if name == column.name else f"{column.name} (as {name})"
            if index in key_from_column:
                label_or_none = None if name == column.name else label
                puts.append(_key_put(keys[name], len(name.encode("utf-8")), roles[name],
                                     label_or_none))
                continue
            if index in resolved.index_keys:
                puts.append(_index_key_put(resolved.index_keys[index],
                                           len(name.encode("utf-8")), label))
                continue
            on_empty = _empty_put(name, len(name.encode("utf-8")), empty_value)
            puts.append(_column_put(name, label, column.type.strip().lower(),
                                    resolved.column_types[index], on_empty, column.name,
                                    column.origin))
        finishers: list[_Finish] = []
        templates = mapping.templates(key_schema)
        for attribute in reversed(key_schema.attributes):  # the shard hashes the sort key
            if attribute.name in resolved.key_templates:
                finishers.append(_template_key(
                    attribute, roles[attribute.name], resolved.key_templates[attribute.name],
                    names, templates[attribute.name].text))
        if mapping.partition_key_shards is not None:
            rest = key_schema.sort or key_schema.partition
            finishers.append(_shard_suffix(key_schema.partition, _key_text(rest),
                                           mapping.partition_key_shards))
        if mapping.ttl_attribute and resolved.ttl_column is not None:
            finishers.append(_ttl_from_column(mapping.ttl_attribute, resolved.ttl_column,
                                              names[resolved.ttl_column]))
        elif mapping.ttl_attribute and resolved.ttl_value is not None:
            finishers.append(_fixed_ttl(mapping.ttl_attribute, resolved.ttl_value))
        version = mapping.version_attribute()
        if version is not None and resolved.version_column is not None:
            finishers.append(_version_present(version, names[resolved.version_column]))
        self._puts = tuple(puts)
        self._finishers = tuple(finishers)
        self._key_of = _key_of(tuple(_key_text(a) for a in key_schema.attributes))

    def build(self, values: Sequence[str | None]) -> BuiltItem | Rejection:
        """The item for one row, or a :class:`Rejection` saying which field is wrong and why."""
        item: Item = {}
        size = 0
        try:
            for put, raw in zip(self._puts, values, strict=False):
                size += put(item, raw)
            for finish in self._finishers:
                size += finish(item, values)
        except _InvalidValueError as err:
            return Rejection(str(err))
        if size > MAX_ITEM_BYTES:
            return Rejection(
                f"item is {size} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte (400 KB) item "
                "limit: shorten or drop its largest columns")
        return BuiltItem(item, self._key_of(item), size, write_units(size))


def _skip(item: Item, raw: str | None) -> int:
    return 0


def past_last_column(value: str | None) -> Rejection | None:
    """The rejection of a row with a value in the unnamed last field of a file whose every
    line ends with the delimiter (``value`` as read, one char per byte); None when empty."""
    if not value:
        return None
    shown = value.encode("latin-1", "replace").decode("utf-8", "replace")
    return Rejection(f"a value {_shown(shown)} after the last named column (the header ends "
                     "with an unnamed column)")


def decode_utf8(values: Sequence[str | None], names: Sequence[str] | None = None,
                encoding: str = "utf-8") -> tuple[str | None, ...] | Rejection:
    """Re-read fields read as ISO-8859-1 (one char per byte) as strict ``encoding`` (the
    values' encoding, :func:`dynamo_ingest.core.formats.value_encoding`; UTF-8 by default).

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
            decoded.append(raw.decode(encoding))
        except UnicodeDecodeError as err:
            column = f"column {index + 1}" + (f" {names[index]!r}" if names is not None else "")
            if encoding == "utf-8":
                return Rejection(f"invalid UTF-8 in {column} (byte offset {err.start}): "
                                 f"{_shown(raw)}")
            return Rejection(f"byte 0x{raw[err.start]:02X} in {column} (byte offset "
                             f"{err.start}) is not defined in {encoding}: {_shown(raw)}")
    return tuple(decoded)
