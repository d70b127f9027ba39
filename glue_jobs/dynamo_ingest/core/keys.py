"""The target table's key schema and its secondary indexes' keys, read once with
DescribeTable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dynamo_ingest.core.errors import ArgumentError, MissingTableError, TargetTableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KeyType = Literal["S", "N", "B"]


@dataclass(frozen=True)
class KeyAttribute:
    """One key attribute: its name (case-sensitive, as in the table) and scalar type."""

    name: str
    type: KeyType


@dataclass(frozen=True)
class IndexKey:
    """One key attribute of a GSI or LSI: DynamoDB refuses an item whose value of it has
    another type or is empty, and leaves an item without it out of the index."""

    index: str  # the index name
    kind: Literal["GSI", "LSI"]
    role: Literal["partition", "sort"]
    attribute: KeyAttribute

    def describe(self) -> str:
        """How a message names it: ``GSI by-score``."""
        return f"{self.kind} {self.index}"


@dataclass(frozen=True)
class KeySchema:
    """The table's partition key and optional sort key, and its indexes' key attributes.

    Two schemas are equal when their table keys are: the key names an item, and indexes come
    and go (UpdateTable) without changing which item a key names.
    """

    partition: KeyAttribute
    sort: KeyAttribute | None = None
    index_keys: tuple[IndexKey, ...] = field(default=(), compare=False)

    @property
    def attributes(self) -> tuple[KeyAttribute, ...]:
        """Partition key first, then the sort key when the table has one."""
        return (self.partition,) if self.sort is None else (self.partition, self.sort)

    @property
    def names(self) -> tuple[str, ...]:
        """The key attribute names, partition key first."""
        return tuple(a.name for a in self.attributes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form, used in run reports and job arguments."""
        return {"partition": [self.partition.name, self.partition.type],
                "sort": None if self.sort is None else [self.sort.name, self.sort.type]}


def key_schema_from_description(table: dict[str, Any]) -> KeySchema:
    """Build the key schema, index keys included, from a DescribeTable ``Table`` dict."""
    types: dict[str, str] = {
        a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])
    }
    hash_key = range_key = None
    for element in table.get("KeySchema", []):
        attr = KeyAttribute(element["AttributeName"], types[element["AttributeName"]])  # type: ignore[arg-type]
        if element["KeyType"] == "HASH":
            hash_key = attr
        else:
            range_key = attr
    if hash_key is None:
        raise TargetTableError(f"table {table.get('TableName')!r} has no HASH key in its schema")
    return KeySchema(hash_key, range_key, index_keys_from_description(table))


def index_keys_from_description(table: dict[str, Any]) -> tuple[IndexKey, ...]:
    """The key attributes of the table's GSIs, then LSIs (types from AttributeDefinitions,
    which declares every index key attribute)."""
    types: dict[str, str] = {
        a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])
    }
    out: list[IndexKey] = []
    for kind, entries in (("GSI", table.get("GlobalSecondaryIndexes") or []),
                          ("LSI", table.get("LocalSecondaryIndexes") or [])):
        for entry in entries:
            for element in entry.get("KeySchema", []):
                name = element["AttributeName"]
                out.append(IndexKey(
                    entry["IndexName"], kind,  # type: ignore[arg-type]
                    "partition" if element["KeyType"] == "HASH" else "sort",
                    KeyAttribute(name, types[name])))  # type: ignore[arg-type]
    return tuple(out)


def check_key_arguments(schema: KeySchema, partition_key: str | None, sort_key: str | None,
                        table_name: str) -> None:
    """Fail clearly when ``--partition_key``/``--sort_key`` (``NAME`` or ``NAME:TYPE``)
    disagree with the table."""
    if partition_key:
        _check_key_argument("partition_key", "partition key", partition_key, schema.partition,
                            table_name)
    if sort_key and schema.sort is not None:
        _check_key_argument("sort_key", "sort key", sort_key, schema.sort, table_name)
    elif sort_key:
        raise TargetTableError(f"--sort_key is {sort_key!r} but table {table_name!r} has no sort "
                               "key: fix or drop --sort_key")


def _check_key_argument(option: str, role: str, given: str, actual: KeyAttribute,
                        table_name: str) -> None:
    """One key option against the table's key attribute: the name, and the type if given."""
    if given == actual.name:  # checked first: an attribute name may itself hold a ':'
        return
    name, _, kind = given.rpartition(":")
    if name == actual.name and kind.upper() in ("S", "N", "B"):
        if kind.upper() == actual.type:
            return
        raise TargetTableError(
            f"--{option} is {given!r} but table {table_name!r} has {role} {actual.name!r} of "
            f"type {actual.type}, not {kind.upper()}: pass --{option} {actual.name} (or "
            f"{actual.name}:{actual.type})")
    raise TargetTableError(
        f"--{option} is {given!r} but table {table_name!r} has {role} {actual.name!r}: pass "
        f"--{option} {actual.name}")


def key_attribute_from_argument(option: str, value: str) -> KeyAttribute:
    """A key attribute for a table to create, from ``NAME`` (a string) or ``NAME:S|N|B``."""
    name, colon, kind = value.rpartition(":")
    if not colon:
        name, kind = value, "S"
    if not name or kind.upper() not in ("S", "N", "B"):
        raise ArgumentError(f"--{option} expects NAME or NAME:S, NAME:N or NAME:B, found "
                            f"{value!r}")
    return KeyAttribute(name, kind.upper())  # type: ignore[arg-type]


def describe_key_schema(dynamodb: DynamoDBClient, table_name: str) -> tuple[KeySchema,
                                                                              dict[str, Any]]:
    """DescribeTable → (key schema, the raw ``Table`` description)."""
    from botocore.exceptions import ClientError

    try:
        table = dynamodb.describe_table(TableName=table_name)["Table"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            found = err.response.get("Error", {}).get("Message", "")
            raise MissingTableError(
                f"target table {table_name!r} does not exist: {found}: create it (or run "
                f"`dynamo-ingest init`), or check --target_table, the region and "
                "AWS_ENDPOINT_URL_DYNAMODB") from err
        raise TargetTableError(f"cannot describe table {table_name!r}: {err}") from err
    return key_schema_from_description(dict(table)), dict(table)
