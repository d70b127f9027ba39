"""The CSV layout of a source: columns with Glue types, delimiter, quote; to and from the
Glue Data Catalog's table structure (what a crawler with our CSV classifier registers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dynamo_ingest.core.errors import CatalogError, SchemaMismatchError

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient

OPEN_CSV_SERDE = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
LAZY_SIMPLE_SERDE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
# Hive's SerDe parameter for a text encoding (LazySimpleSerDe reads it; OpenCSVSerde, which
# the crawler's CSV classifier registers, ignores it, so Athena still reads such a table as
# UTF-8). The job reads it when --encoding is not given.
ENCODING_PARAMETER = "serialization.encoding"
NUMERIC_GLUE_TYPES = frozenset(
    {"bigint", "int", "smallint", "tinyint", "double", "float", "long"})


@dataclass(frozen=True)
class Column:
    """A CSV column: its name exactly as the header writes it and its Glue type."""

    name: str
    type: str = "string"
    # Where the type came from (the crawler's sample, a catalog table), for reject reasons.
    origin: str = field(default="", compare=False)


@dataclass(frozen=True)
class CsvSchema:
    """What the job needs to read a CSV file: columns in file order and the dialect."""

    columns: tuple[Column, ...]
    delimiter: str = ","
    quote_char: str = '"'
    has_header: bool = True
    parameters: dict[str, str] = field(default_factory=dict, compare=False)
    # Every line ends with the delimiter: the file holds one more, unnamed and empty, field.
    trailing_delimiter: bool = False
    # The SerDe's serialization.encoding (None: not recorded, UTF-8 unless a BOM says UTF-16).
    encoding: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in file order."""
        return tuple(c.name for c in self.columns)

    def with_header_names(self, header: Sequence[str]) -> CsvSchema:
        """Take the file header's spelling of each name (the catalog lower-cases them).

        Columns are matched by name, so a file with the catalog's columns in another order
        loads (attributes are named by the header anyway). Raises :class:`SchemaMismatchError`
        naming missing and unexpected columns when the header and the catalog disagree
        (compared case-insensitively, as Glue does).
        """
        catalog = [c.name.lower() for c in self.columns]
        found = [h.lower() for h in header]
        if catalog != found and sorted(catalog) == sorted(found) and len(set(found)) == len(found):
            by_name = {c.name.lower(): c for c in self.columns}
            return replace(self, columns=tuple(replace(by_name[h.lower()], name=h)
                                               for h in header))
        if catalog != found:
            missing = [c for c in catalog if c not in found]
            unexpected = [h for h, low in zip(header, found, strict=True) if low not in catalog]
            detail = []
            if missing:
                detail.append("missing columns: " + ", ".join(missing))
            if unexpected:
                detail.append("unexpected columns: " + ", ".join(unexpected))
            if not detail:
                detail.append(f"columns in another order: expected {catalog}, found {list(header)}")
            raise SchemaMismatchError(
                "the file header does not match the catalog table (" + "; ".join(detail)
                + "): re-run the crawler for the new layout or fix the file")
        return replace(self, columns=tuple(replace(c, name=h)
                                           for c, h in zip(self.columns, header, strict=True)))


def schema_from_glue_table(table: dict[str, Any]) -> CsvSchema:
    """Read columns, types, delimiter and quote from a ``glue:GetTable`` ``Table`` dict."""
    sd = table.get("StorageDescriptor") or {}
    origin = f"the catalog table {table.get('DatabaseName')}.{table.get('Name')}"
    columns = tuple(Column(c["Name"], c.get("Type", "string").lower(), origin)
                    for c in sd.get("Columns", []))
    if not columns:
        raise CatalogError(f"catalog table {table.get('Name')!r} has no columns: run the crawler")
    serde = sd.get("SerdeInfo") or {}
    params: dict[str, str] = dict(serde.get("Parameters") or {})
    table_params: dict[str, str] = dict(table.get("Parameters") or {})
    delimiter = (params.get("separatorChar") or params.get("field.delim")
                 or table_params.get("delimiter") or ",")
    quote = params.get("quoteChar") or '"'
    header = table_params.get("skip.header.line.count", "1") != "0"
    return CsvSchema(columns, delimiter, quote, header, {**table_params, **params},
                     encoding=params.get(ENCODING_PARAMETER) or None)


def glue_table_input(name: str, schema: CsvSchema, location: str) -> dict[str, Any]:
    """The ``TableInput`` a Glue crawler with our CSV classifier would register."""
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "csv",
            "delimiter": schema.delimiter,
            "skip.header.line.count": "1" if schema.has_header else "0",
            "areColumnsQuoted": "true",
            "typeOfData": "file",
        },
        "StorageDescriptor": {
            # The catalog lower-cases names like Glue does; the job reads the exact case
            # from the file header.
            "Columns": [{"Name": c.name.lower(), "Type": c.type} for c in schema.columns],
            "Location": location,
            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": OPEN_CSV_SERDE,
                "Parameters": {"separatorChar": schema.delimiter,
                               "quoteChar": schema.quote_char,
                               "escapeChar": "\\",
                               **({ENCODING_PARAMETER: schema.encoding}
                                  if schema.encoding else {})},
            },
        },
    }


def get_catalog_schema(glue: GlueClient, database: str, table: str) -> CsvSchema:
    """``glue:GetTable`` → :class:`CsvSchema`, with a clear error when it is missing."""
    from botocore.exceptions import ClientError

    try:
        response = glue.get_table(DatabaseName=database, Name=table)
    except ClientError as err:
        raise CatalogError(
            f"catalog table {database}.{table} not found ({err.response['Error']['Code']}): "
            "run the crawler or `dynamo-ingest crawl` first") from err
    return schema_from_glue_table(dict(response["Table"]))
