"""How a row's columns become an item's attributes: key templates, renames, dropped columns,
type overrides, a TTL attribute and write sharding of hot partition keys.

Every option names columns as the file's header writes them (before any rename). With no
option set the mapping is the identity: each column becomes the attribute of the same name,
and the table's key attributes come from the columns named like them.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Literal, get_args

from dynamo_ingest.core.errors import ArgumentError, SchemaMismatchError, TargetTableError

if TYPE_CHECKING:
    from dynamo_ingest.core.arguments import JobArguments
    from dynamo_ingest.core.catalog import Column
    from dynamo_ingest.core.keys import IndexKey, KeySchema

ColumnType = Literal["S", "N", "BOOL", "JSON"]
SHARD_SEPARATOR = "#"
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?")
# A template part is literal text (str) or the index of the column whose value goes there (int).
TemplatePart = str | int
# A key attribute as Spark hashes it: its template parts (one column index without a template)
# and whether it is a number ("N") or text ("S").
KeyHashPart = tuple[tuple[TemplatePart, ...], str]


@dataclass(frozen=True)
class KeyTemplate:
    """A key built from several columns, e.g. ``{batchId}#{email}``; ``{{``/``}}`` are braces."""

    text: str
    parts: tuple[str | tuple[str], ...]  # literal text, or (column name,)

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names it references, in order (repeats kept)."""
        return tuple(p[0] for p in self.parts if isinstance(p, tuple))


def parse_key_template(text: str, option: str) -> KeyTemplate:
    """Split ``{a}#{b}`` into literal text and column names; raise on unbalanced braces."""
    parts: list[str | tuple[str]] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char in "{}" and text[index + 1:index + 2] == char:
            literal.append(char)
            index += 2
            continue
        if char == "}":
            raise ArgumentError(f"--{option} {text!r} has a '}}' at position {index + 1} that "
                                "closes nothing: write '}}}}' for a literal brace")
        if char == "{":
            end = text.find("}", index + 1)
            name = text[index + 1:end] if end > 0 else ""
            if end < 0 or not name or "{" in name:
                raise ArgumentError(
                    f"--{option} {text!r}: expected {{column}} at position {index + 1}, e.g. "
                    "'{batchId}#{email}'; write '{{' for a literal brace")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append((name,))
            index = end + 1
            continue
        literal.append(char)
        index += 1
    if literal:
        parts.append("".join(literal))
    if not any(isinstance(p, tuple) for p in parts):
        raise ArgumentError(f"--{option} {text!r} references no column: expected at least one "
                            "{column}, e.g. '{batchId}#{email}'")
    return KeyTemplate(text, tuple(parts))


def _pairs(text: str | None, option: str, example: str) -> tuple[tuple[str, str], ...]:
    """``a:x,b:y`` → ((a, x), (b, y)); the value is split at the last ':'."""
    if not text:
        return ()
    pairs = []
    for entry in text.split(","):
        name, sep, value = entry.strip().rpartition(":")
        if not sep or not name or not value:
            raise ArgumentError(f"--{option} expects NAME:VALUE pairs separated by commas "
                                f"(e.g. {example!r}), found {entry!r}")
        pairs.append((name, value))
    names = [n for n, _ in pairs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ArgumentError(f"--{option} names column(s) {', '.join(map(repr, repeated))} more "
                            "than once: give each column one entry")
    return tuple(pairs)


def parse_column_types(text: str | None) -> tuple[tuple[str, ColumnType], ...]:
    """``--column_types zip:S,qty:N,active:BOOL,tags:JSON`` (types in any letter case)."""
    out: list[tuple[str, ColumnType]] = []
    for name, kind in _pairs(text, "column_types", "zip:S,qty:N,active:BOOL,tags:JSON"):
        upper = kind.upper()
        if upper not in get_args(ColumnType):
            raise ArgumentError(f"--column_types: type of column {name!r} must be S, N, BOOL or "
                                f"JSON, found {kind!r}")
        out.append((name, upper))  # type: ignore[arg-type]
    return tuple(out)


# Epoch seconds from here on are after the year 5000; epoch milliseconds since 1973 are bigger.
MILLISECONDS_FROM = 10**11


def parse_epoch_seconds(text: str, what: str) -> int:
    """Epoch seconds (``1735689600``, decimals truncated) or ISO 8601 (``2025-01-01T00:00Z``;
    no offset means UTC) → whole epoch seconds; raises ValueError naming ``what``."""
    stripped = text.strip()
    seconds: int | None = None
    try:
        if _PLAIN_NUMBER.fullmatch(stripped):
            seconds = int(Decimal(stripped))
        else:
            moment = datetime.fromisoformat(stripped)
    except (InvalidOperation, ValueError, OverflowError) as err:
        raise ValueError(f"{text!r} is not {what} (expected epoch seconds such as 1735689600 "
                         "or an ISO 8601 time such as 2025-01-01T00:00:00Z)") from err
    if seconds is not None:
        if abs(seconds) >= MILLISECONDS_FROM:
            # Taken as seconds this is past the year 5000: an item that never expires,
            # silently. Epoch milliseconds (JavaScript, Java) are the usual cause.
            raise ValueError(f"{text!r} is not {what}: as epoch seconds it is after the year "
                             "5000; it looks like epoch milliseconds, which DynamoDB's TTL does "
                             "not take: divide by 1000")
        return seconds
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() // 1)


def shard_of(rest_of_key: str, shards: int) -> int:
    """The stable shard (0 … shards-1) of an item, from the canonical text of the rest of its
    key (its sort key: sharding is refused for a table without one)."""
    return zlib.crc32(rest_of_key.encode("utf-8", "surrogatepass")) % shards


@dataclass(frozen=True)
class ResolvedMapping:
    """An :class:`AttributeMapping` checked against one file's columns and the table's keys."""

    attribute_names: tuple[str | None, ...]  # per column: its attribute, None when not stored
    column_types: tuple[ColumnType | None, ...]  # per column: the override, if any
    key_columns: dict[str, int]  # key attribute → the column it comes from (no template)
    key_templates: dict[str, tuple[TemplatePart, ...]]  # key attribute → template parts
    ttl_column: int | None
    ttl_value: int | None  # fixed expiry (load time + --ttl_seconds)
    version_column: int | None
    # per column stored as a secondary index's key attribute (not the table's): those keys
    index_keys: dict[int, tuple[IndexKey, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class AttributeMapping:
    """The mapping options of the job (all optional); see each field for its argument.

    - ``partition_key_template`` / ``sort_key_template`` (``--partition_key_template``,
      ``--sort_key_template``): build the key attribute from several columns, e.g.
      ``{batchId}#{email}``; ``{{`` and ``}}`` write literal braces. Without a template the key
      attribute comes from the column (after ``--rename``) named like it. Its type is the
      table's: an N key template must produce a number.
    - ``rename`` (``--rename old:new,old2:new2``): store a column under another attribute name.
    - ``drop_columns`` (``--drop_columns a,b``): do not store these columns (templates and the
      TTL may still read them).
    - ``column_types`` (``--column_types col:S,col2:N,col3:BOOL,col4:JSON``): override the
      catalog type of a non-key column. JSON parses the value into a map or list (numbers kept
      exactly as written, at most 38 digits, nesting at most 32 levels).
    - ``ttl_attribute`` (``--ttl_attribute expiresAt``) with exactly one of
      ``ttl_from_column`` (``--ttl_from_column col``: epoch seconds or ISO 8601, no offset =
      UTC; an empty field stores no TTL) or ``ttl_seconds`` (``--ttl_seconds N``: expires N
      seconds after the load time). The attribute holds epoch seconds (N), as DynamoDB TTL needs.
    - ``load_time`` (``--load_time``): the "now" of ``--ttl_seconds``, fixed once per run so a
      resumed run computes the same expiry; default: when the job starts.
    - ``partition_key_shards`` (``--partition_key_shards N``): append ``#<shard>`` (0 … N-1) to
      the partition key (S keys only); the shard is a stable hash (CRC-32) of the sort key, so
      one hot partition key value spreads over N values. A table without a sort key is
      refused: there is nothing to spread by. Read back by querying each of the N keys.
    - ``version_column`` (``--version_column col``): the column the version guard compares;
      a row without a value is rejected.
    """

    partition_key_template: str | None = None
    sort_key_template: str | None = None
    rename: tuple[tuple[str, str], ...] = ()
    drop_columns: tuple[str, ...] = ()
    column_types: tuple[tuple[str, ColumnType], ...] = ()
    ttl_attribute: str | None = None
    ttl_from_column: str | None = None
    ttl_seconds: int | None = None
    load_time: int = 0
    partition_key_shards: int | None = None
    version_column: str | None = None

    def __post_init__(self) -> None:
        if self.ttl_attribute and (self.ttl_from_column is None) == (self.ttl_seconds is None):
            raise ArgumentError("--ttl_attribute needs exactly one of --ttl_from_column (a column "
                                "holding the expiry) or --ttl_seconds (a fixed lifetime)")
        if not self.ttl_attribute and (self.ttl_from_column or self.ttl_seconds is not None):
            raise ArgumentError("--ttl_from_column and --ttl_seconds need --ttl_attribute, the "
                                "attribute the table's TTL setting names")
        if self.ttl_seconds is not None and self.ttl_seconds <= 0:
            raise ArgumentError(f"--ttl_seconds expects a lifetime > 0 seconds, found "
                                f"{self.ttl_seconds}")
        if self.partition_key_shards is not None and self.partition_key_shards < 1:
            raise ArgumentError(f"--partition_key_shards expects a count >= 1, found "
                                f"{self.partition_key_shards}")
        for option, text in (("partition_key_template", self.partition_key_template),
                             ("sort_key_template", self.sort_key_template)):
            if text is not None:
                parse_key_template(text, option)

    @classmethod
    def from_arguments(cls, args: JobArguments,
                       now: Callable[[], float] = time.time) -> AttributeMapping:
        """The mapping the job arguments ask for; ``now`` is read once when no ``--load_time``."""
        return cls.from_values(vars(args), now)

    @classmethod
    def from_values(cls, values: Mapping[str, object],
                    now: Callable[[], float] = time.time) -> AttributeMapping:
        """Parse the mapping arguments from ``--name`` values (strings, or already typed)."""
        def text(name: str) -> str | None:
            value = values.get(name)
            return None if value is None or value == "" else str(value)

        def count(name: str) -> int | None:
            raw = text(name)
            if raw is None:
                return None
            try:
                return int(raw)
            except ValueError as err:
                raise ArgumentError(f"--{name} expects a whole number, found {raw!r}") from err

        load_time = text("load_time")
        try:
            load = (parse_epoch_seconds(load_time, "a load time") if load_time is not None
                    else int(now()))
        except ValueError as err:
            raise ArgumentError(f"--load_time: {err}") from err
        drops = tuple(d.strip() for d in (text("drop_columns") or "").split(",") if d.strip())
        return cls(
            partition_key_template=text("partition_key_template"),
            sort_key_template=text("sort_key_template"),
            rename=_pairs(text("rename"), "rename", "customer_id:customerId"),
            drop_columns=drops,
            column_types=parse_column_types(text("column_types")),
            ttl_attribute=text("ttl_attribute"),
            ttl_from_column=text("ttl_from_column"),
            ttl_seconds=count("ttl_seconds"),
            load_time=load,
            partition_key_shards=count("partition_key_shards"),
            version_column=text("version_column"),
        )

    @property
    def is_identity(self) -> bool:
        """True when every column maps to the attribute of its own name and nothing is added."""
        return self == AttributeMapping(load_time=self.load_time)

    def version_attribute(self) -> str | None:
        """The attribute the version guard compares (the version column after ``--rename``)."""
        if self.version_column is None:
            return None
        return dict(self.rename).get(self.version_column, self.version_column)

    def templates(self, key_schema: KeySchema) -> dict[str, KeyTemplate]:
        """Key attribute → its template, for the keys that have one."""
        out: dict[str, KeyTemplate] = {}
        if self.partition_key_template is not None:
            out[key_schema.partition.name] = parse_key_template(
                self.partition_key_template, "partition_key_template")
        if self.sort_key_template is not None:
            if key_schema.sort is None:
                raise TargetTableError("--sort_key_template is set but the table has no sort "
                                       "key: drop the option or load into a table with one")
            out[key_schema.sort.name] = parse_key_template(self.sort_key_template,
                                                           "sort_key_template")
        return out

    def resolve(self, columns: Sequence[Column], key_schema: KeySchema) -> ResolvedMapping:
        """Check every option against the file's columns and the table; raise on a conflict."""
        names = [c.name for c in columns]
        index = {name: i for i, name in enumerate(names)}

        def column(name: str, option: str) -> int:
            if name not in index:
                raise SchemaMismatchError(
                    f"--{option} names column {name!r}, which the file does not have (columns: "
                    f"{', '.join(names)}); names are case-sensitive, as in the header")
            return index[name]

        renames = {column(old, "rename"): new for old, new in self.rename}
        dropped = {column(name, "drop_columns") for name in self.drop_columns}
        types = {column(name, "column_types"): kind for name, kind in self.column_types}
        attributes: list[str | None] = [
            None if i in dropped else renames.get(i, name) for i, name in enumerate(names)]
        templates = self.templates(key_schema)
        template_parts = {
            key: tuple(p if isinstance(p, str) else column(p[0], _template_option(key, key_schema))
                       for p in template.parts)
            for key, template in templates.items()}
        ttl_column = (column(self.ttl_from_column, "ttl_from_column")
                      if self.ttl_from_column is not None else None)
        version_column = (column(self.version_column, "version_column")
                          if self.version_column is not None else None)

        # Attributes the mapping computes itself; a column stored under the same name would clash.
        computed = set(templates)
        if self.ttl_attribute:
            computed.add(self.ttl_attribute)
            if ttl_column is not None and attributes[ttl_column] == self.ttl_attribute:
                attributes[ttl_column] = None  # the column is converted in place
        for i, stored_as in enumerate(attributes):
            if stored_as in computed:
                raise SchemaMismatchError(
                    f"column {names[i]!r} would be stored as attribute {stored_as!r}, which "
                    + ("the key template builds" if stored_as in templates else
                       "--ttl_attribute computes")
                    + ": --drop_columns it or --rename it")
        stored = [a for a in attributes if a is not None]
        repeated = sorted({a for a in stored if stored.count(a) > 1})
        if repeated:
            raise SchemaMismatchError(
                f"--rename makes two columns the same attribute ({', '.join(map(repr, repeated))}"
                "): each attribute name can hold one column")

        key_columns: dict[str, int] = {}
        for attribute in key_schema.attributes:
            if attribute.name in templates:
                continue
            if attribute.name not in attributes:
                source = [names[i] for i in dropped if names[i] == attribute.name]
                why = (f"--drop_columns drops column {source[0]!r}" if source else
                       f"no column is stored under that name (columns: {', '.join(names)})")
                raise TargetTableError(
                    f"the table's key attribute {attribute.name!r} has no value: {why}; key "
                    "names are case-sensitive: add or --rename the column, or build the key with "
                    f"--{_template_option(attribute.name, key_schema)}")
            key_columns[attribute.name] = attributes.index(attribute.name)
        for i, kind in types.items():
            if attributes[i] in key_columns:
                raise ArgumentError(
                    f"--column_types sets column {names[i]!r} to {kind}, but it is the table's "
                    "key attribute, whose type the table's key schema decides: drop the entry")
        index_keys = self._index_key_columns(attributes, key_schema, computed)
        for i, kind in types.items():
            if i in index_keys and kind != index_keys[i][0].attribute.type:
                raise ArgumentError(
                    f"--column_types sets column {names[i]!r} to {kind}, but "
                    f"{index_keys[i][0].describe()} declares {attributes[i]!r} as "
                    f"{index_keys[i][0].attribute.type}, and DynamoDB refuses an index key of "
                    "another type: drop the entry")
        if self.partition_key_shards is not None and key_schema.partition.type != "S":
            raise TargetTableError(
                f"--partition_key_shards appends '#<shard>' to the partition key, but "
                f"{key_schema.partition.name!r} is of type {key_schema.partition.type}: sharding "
                "needs a string (S) partition key")
        if self.partition_key_shards is not None and key_schema.sort is None:
            # The shard hashes the sort key; without one every row of a partition-key value
            # would hash alike and land in one shard, so the option would spread nothing.
            raise TargetTableError(
                f"--partition_key_shards {self.partition_key_shards} spreads the rows of one "
                "partition-key value over shards by a hash of their sort key, which tells those "
                f"rows apart, but the table's key is {key_schema.partition.name!r} alone (no "
                "sort key), so each value would stay in one shard: drop --partition_key_shards, "
                "or load into a table with a sort key")
        if version_column is not None and attributes[version_column] is None:
            raise ArgumentError(
                f"--version_column {self.version_column!r} is not stored (--drop_columns or "
                "--ttl_attribute takes it), so no later file could be compared with it: keep it")
        return ResolvedMapping(
            attribute_names=tuple(attributes),
            column_types=tuple(types.get(i) for i in range(len(names))),
            key_columns=key_columns, key_templates=template_parts,
            ttl_column=ttl_column,
            ttl_value=(self.load_time + self.ttl_seconds if self.ttl_seconds is not None
                       else None),
            version_column=version_column, index_keys=index_keys)

    def _index_key_columns(self, attributes: Sequence[str | None], key_schema: KeySchema,
                           computed: set[str]) -> dict[int, tuple[IndexKey, ...]]:
        """Column → the index keys it is stored as. A table key attribute is typed as the table
        declares (the same type: one attribute, one definition); a computed TTL is a number."""
        out: dict[int, tuple[IndexKey, ...]] = {}
        for key in key_schema.index_keys:
            name = key.attribute.name
            if name in key_schema.names:
                continue
            if name == self.ttl_attribute and key.attribute.type != "N":
                raise ArgumentError(
                    f"--ttl_attribute {name!r} holds epoch seconds (N), but {key.describe()} "
                    f"declares {name!r} as {key.attribute.type}, so DynamoDB would refuse every "
                    "item: choose another --ttl_attribute")
            if name in computed or name not in attributes:
                continue
            column = attributes.index(name)
            out[column] = (*out.get(column, ()), key)
        return out

    def key_hash_parts(self, columns: Sequence[Column],
                       key_schema: KeySchema) -> list[KeyHashPart]:
        """What Spark hashes to partition the rows: one (parts, "S"/"N") per key attribute.

        ``parts`` is the attribute as it is built, literal text and column indexes in order, so
        rows whose keys are equal hash alike even when a template splits the text differently
        (``{a}#{b}`` from ``x#y``+``z`` and from ``x``+``y#z``), and an N key hashes by value.
        """
        resolved = self.resolve(columns, key_schema)
        out: list[KeyHashPart] = []
        for attribute in key_schema.attributes:
            kind = "N" if attribute.type == "N" else "S"
            if attribute.name in resolved.key_columns:
                out.append(((resolved.key_columns[attribute.name],), kind))
            else:
                out.append((resolved.key_templates[attribute.name], kind))
        return out


def _template_option(key: str, key_schema: KeySchema) -> str:
    return "partition_key_template" if key == key_schema.partition.name else "sort_key_template"
