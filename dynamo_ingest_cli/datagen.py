"""A realistic, deterministic orders CSV for the demo, tests and benchmarks, and an oracle
that computes the table a correct load must leave, independently of the job's code."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    from _csv import Writer

Layout = Literal["orders"]
LineEnding = Literal["crlf", "lf"]
AttributeType = Literal["S", "N", "BOOL"]
EmptyValue = Literal["omit", "null", "empty_string"]
NumberForm = Literal["as_written", "canonical"]
Item = dict[str, dict[str, Any]]

# Names keep their case on purpose: DynamoDB attribute names are case-sensitive.
ORDERS_SCHEMA: tuple[tuple[str, str], ...] = (
    ("batchId", "string"),
    ("orderId", "string"),
    ("customerEmail", "string"),
    ("amount", "double"),
    ("quantity", "bigint"),
    ("isPriority", "boolean"),
    ("createdAt", "string"),
    ("note", "string"),
)
# The order puts the kinds that would change an inferred column type (a text amount, NaN) after
# the first few MB, which is the part of a file a crawler's classifier samples.
BAD_ROW_KINDS = ("column_count", "empty_key", "too_many_digits", "not_a_number", "nan")
ORDERS_PER_BATCH = 5000

_ID_SPACE = 10**9
_ID_MULTIPLIER = 611_953_421  # coprime with 10**9, so key index → id is a bijection
_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_DIGITS = 38

_FIRST = ("anna", "jürgen", "li", "maria", "olu", "sven", "chloé", "raj", "ines", "tom",
          "noah", "emma", "yuki", "pavel", "sara", "omar")
_LAST = ("mueller", "garcia", "smith", "nguyen", "okafor", "rossi", "dubois", "kowalski",
         "tanaka", "silva", "berg", "haddad", "novak", "jensen", "fischer", "ali")
_DOMAINS = ("example.com", "example.org", "mail.example.net", "shop.example.co.uk")
_NOTE_PARTS = (
    "Leave at the front desk, ring twice",
    'Customer wrote "please, no plastic"',
    "Gift wrap; card says: Alles Gute zum Geburtstag, Jürgen!",
    "Café order 😀 extra sugar, no milk",
    "Deliver after 6pm, side entrance by the garage",
    "Naïve résumé paper, 3 reams, A4",
    "Fragile: glass, handle with care",
    'Size "L" swapped for "XL" on request',
    "Call on arrival, +1 555 0100",
    "Über-express shipping requested by the customer",
    "Paid with voucher 20% off, second order this week",
    "Return label included; do not bend",
    "Back-ordered item ships separately, ETA 5 days",
    "Customer prefers email, not phone",
    "Fits the 2-step ladder, model 7 ½",
    "Address line 2: building C, floor 3, door on the left",
    "Split shipment approved by support after a call with the customer on Monday",
    'Marked "urgent" by the store manager, priority handling until the end of the week',
    "Straße und Hausnummer geprüft, Lieferung an die Packstation möglich",
    "Bulk order for the school fair: 40 mugs, 40 T-shirts (mixed sizes), 2 banners",
)


@dataclass(frozen=True)
class GeneratedFile:
    """A generated CSV and what a correct load of it must report."""

    path: Path
    rows: int
    header: tuple[str, ...]
    bytes: int
    expected_duplicates: int
    expected_rejects: Mapping[int, str]
    layout: Layout = "orders"

    @property
    def expected_item_count(self) -> int:
        """Distinct keys a correct load leaves in the table."""
        return self.rows - self.expected_duplicates - len(self.expected_rejects)

    def expected_items(self, *, key_columns: Sequence[str] = ("orderId",),
                       column_types: Mapping[str, AttributeType] | None = None,
                       empty_value: EmptyValue = "omit",
                       numbers: NumberForm = "as_written") -> dict[tuple[str, ...], Item]:
        """The oracle's table for this file; ``column_types`` default to the layout's types."""
        types = attribute_types_for_layout(self.layout) if column_types is None else column_types
        return expected_items(self.path, key_columns=key_columns, column_types=types,
                              empty_value=empty_value, numbers=numbers)


@dataclass(frozen=True)
class ExpectedOutcome:
    """The oracle's table and the counts a run report must show for the same file."""

    items: dict[tuple[str, ...], Item]
    rows_read: int
    rejected: dict[int, str]
    duplicate_rows: int


def schema_for_layout(layout: Layout = "orders") -> list[tuple[str, str]]:
    """Column names and the Glue types the CSV classifier infers for a layout's clean rows."""
    if layout != "orders":
        raise ValueError(f"layout expects 'orders', found {layout!r}")
    return list(ORDERS_SCHEMA)


def attribute_types_for_layout(layout: Layout = "orders") -> dict[str, AttributeType]:
    """DynamoDB types the layout's columns load as (bigint/double → N, boolean → BOOL)."""
    glue_to_dynamodb: dict[str, AttributeType] = {"bigint": "N", "double": "N", "boolean": "BOOL"}
    return {name: glue_to_dynamodb.get(t, "S") for name, t in schema_for_layout(layout)}


def _email_pool(rng: random.Random, size: int = 4096) -> list[str]:
    pool = []
    for i in range(size):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        # Mail addresses stay ASCII; a few customers leave the field empty.
        first = first.replace("ü", "ue").replace("é", "e")
        tag = f"+{rng.randrange(100)}" if rng.random() < 0.1 else ""
        pool.append("" if i % 37 == 5 else
                    f"{first}.{last}{rng.randrange(1000)}{tag}@{rng.choice(_DOMAINS)}")
    return pool


def _note_pool(rng: random.Random, size: int = 1024) -> list[str]:
    pool = []
    for i in range(size):
        if i % 50 == 7:
            pool.append("")
            continue
        note = ", ".join(rng.sample(_NOTE_PARTS, rng.choice((1, 2, 2, 3, 3))))
        if i % 200 == 11:
            note = note.replace(", ", "\n", 1) if ", " in note else note + "\nsecond line"
        pool.append(note)
    return pool


def generate_csv(path: Path, rows: int, *, seed: int = 7, duplicate_every: int | None = 5000,
                 bad_every: int | None = 10000, layout: Layout = "orders",
                 line_ending: LineEnding = "crlf") -> GeneratedFile:
    """Stream ``rows`` data rows (about 200 bytes each) of ``layout`` to ``path``.

    Record ``n`` (1-based data row) is a bad row when ``n % bad_every == 0`` (kinds rotate
    through :data:`BAD_ROW_KINDS`), otherwise a re-emitted earlier key with new values when
    ``n % duplicate_every == 0``, otherwise a new order. Same arguments, same bytes.
    """
    header = tuple(name for name, _ in schema_for_layout(layout))
    if rows < 0:
        raise ValueError(f"rows expects a count >= 0, found {rows}")
    if duplicate_every is not None and duplicate_every < 2:
        raise ValueError(f"duplicate_every expects None or >= 2 (a duplicate needs an earlier "
                         f"row), found {duplicate_every}")
    if bad_every is not None and bad_every < 1:
        raise ValueError(f"bad_every expects None or >= 1, found {bad_every}")
    if line_ending not in ("crlf", "lf"):
        raise ValueError(f"line_ending expects 'crlf' or 'lf', found {line_ending!r}")
    rejects: dict[int, str] = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="", buffering=1 << 20) as out:
        writer = csv.writer(out, lineterminator="\r\n" if line_ending == "crlf" else "\n")
        writer.writerow(header)
        duplicates = _write_orders(out, writer, random.Random(seed), rows,
                                   duplicate_every or 0, bad_every or 0, rejects)
    return GeneratedFile(path=path, rows=rows, header=header, bytes=path.stat().st_size,
                         expected_duplicates=duplicates, expected_rejects=rejects,
                         layout=layout)


def _csv_field(value: str, line_end: str) -> str:
    """``value`` as the csv module writes it inside a record (quoted only when needed)."""
    buffer = io.StringIO()
    # Two fields, because the csv module quotes a lone empty field; the same line end,
    # because Python 3.11 quotes only the line-break characters of the line terminator.
    csv.writer(buffer, lineterminator=line_end).writerow((value, ""))
    return buffer.getvalue()[: -1 - len(line_end)]


def _cents_text(cents: int) -> str:
    """An amount of cents in decimal text without trailing fraction zeros: 1230 → ``12.3``."""
    whole, fraction = divmod(cents, 100)
    return f"{whole}.{fraction:02d}".rstrip("0").rstrip(".")


def _write_orders(out: TextIO, writer: Writer, rng: random.Random, rows: int,
                  duplicate_every: int, bad_every: int, rejects: dict[int, str]) -> int:
    """Write the data rows; returns how many re-emit an earlier key."""
    # Values come from pools built once and picked by random bits, and pooled text is quoted
    # once by the csv module: formatting and quoting every value per row would cost more than
    # half the write rate. Rows that differ from the pools go through ``writer`` whole.
    emails = _email_pool(rng)
    notes = _note_pool(rng)
    end = writer.dialect.lineterminator
    quoted_emails = [_csv_field(e, end) for e in emails]
    quoted_notes = [_csv_field(n, end) for n in notes]
    # Amounts are written as DynamoDB stores them (12.3, not 12.30), so a crawled catalog
    # types the column as a number: DynamoDB would not keep 12.30 as written.
    amounts = [_cents_text(rng.randrange(1, 250_000)) for _ in range(1 << 14)]
    quantities = [str(q) for q in range(1, 65)]
    minutes = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
    seconds_z = [f"{s:02d}Z" for s in range(60)]
    days = [(_START + dt.timedelta(days=d)).strftime("%Y-%m-%dT")
            for d in range((rows + 1) * 7 // 86400 + 1)]
    batches = [f"batch-{b + 1:04d}" for b in range(rows // ORDERS_PER_BATCH + 1)]
    id_offset = rng.randrange(_ID_SPACE)
    getrandbits = rng.getrandbits
    write = out.write
    duplicates = 0

    def is_normal(record_no: int) -> bool:
        return not ((bad_every and record_no % bad_every == 0)
                    or (duplicate_every and record_no % duplicate_every == 0))

    # Key index == record number of the row that introduced the key, so a duplicate can
    # rebuild an earlier key without remembering it (memory stays flat).
    for n in range(1, rows + 1):
        r = getrandbits(64)
        source = n
        kind = ""
        if bad_every and n % bad_every == 0:
            kind = BAD_ROW_KINDS[(n // bad_every - 1) % len(BAD_ROW_KINDS)]
        elif duplicate_every and n % duplicate_every == 0:
            source = n - 1 - getrandbits(32) % min(n - 1, 50_000)
            while not is_normal(source):
                source -= 1
            duplicates += 1
        order_no = (source * _ID_MULTIPLIER + id_offset) % _ID_SPACE
        # One id in ten is all digits with leading zeros: a string key that looks numeric.
        order_id = f"{order_no:010d}" if source % 10 == 3 else f"ORD-{order_no:09d}"
        seconds = n * 7 + ((r >> 50) & 7)
        batch = batches[source // ORDERS_PER_BATCH]
        amount = amounts[(r >> 22) & 0x3FFF]
        quantity = quantities[(r >> 40) & 63]
        priority = "true" if r & (1 << 49) else "false"
        created = (days[seconds // 86400] + minutes[seconds % 86400 // 60]
                   + seconds_z[seconds % 60])
        if source == n and not kind:
            write(f"{batch},{order_id},{quoted_emails[r & 4095]},{amount},{quantity},"
                  f"{priority},{created},{quoted_notes[(r >> 12) & 1023]}{end}")
            continue
        row = [batch, order_id, emails[r & 4095], amount, quantity, priority, created,
               notes[(r >> 12) & 1023]]
        if source != n:
            row[7] = f"Correction (supersedes record {source}): {row[7]}"
            if duplicates % 4 == 0:
                row[2] = ""  # the whole item is replaced, so the old email must disappear
        else:
            rejects[n] = kind
            if kind == "column_count":
                row.pop()
            elif kind == "empty_key":
                row[1] = ""
            elif kind == "too_many_digits":
                row[3] = f"{10**36 + r % 10**36}.89"
            elif kind == "not_a_number":
                # a European decimal comma
                row[3] = (amount if "." in amount else amount + ".00").replace(".", ",")
            else:
                row[4] = "NaN"
        writer.writerow(row)
    return duplicates


def expected_outcome(path: Path, *, key_columns: Sequence[str],
                     column_types: Mapping[str, AttributeType], empty_value: EmptyValue = "omit",
                     numbers: NumberForm = "as_written",
                     exact_numbers: bool = True) -> ExpectedOutcome:
    """Compute the final table and counts of a correct load of ``path``, from first principles.

    Rules: RFC 4180 records (blank lines skipped); a record with the wrong field count, an
    empty key, a value that is not a DynamoDB number (N) or not true/false in any case (BOOL),
    surrounding spaces ignored for both, is rejected; with ``exact_numbers`` (N columns typed
    by a catalog) so is a number AWS would not return as written (``02869``, ``12.50``, ``+3``,
    ``1e5``), while without it (``--column_types col:N``) such a number is stored;
    of the valid rows with one key the last in file order wins and replaces the whole item;
    empty fields follow ``empty_value``; numbers keep their text unless ``numbers`` is
    ``"canonical"`` (how AWS returns them: no leading/trailing zeros, no exponent).
    """
    items: dict[tuple[str, ...], Item] = {}
    rejected: dict[int, str] = {}
    valid = rows_read = 0
    # A DynamoDB item holds 400 KB; the csv module refuses fields over 128 KiB by default.
    csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))
    with path.open(encoding="utf-8-sig", newline="") as source:
        reader = csv.reader(source)
        header = next(reader, None)
        if header is None:
            return ExpectedOutcome(items, 0, rejected, 0)
        missing = [k for k in key_columns if k not in header]
        if missing:
            raise ValueError(f"key columns {missing} are not in the header {header}")
        key_positions = [header.index(k) for k in key_columns]
        types = [column_types.get(name, "S") for name in header]
        for record in reader:
            if not record:
                continue
            rows_read += 1
            if len(record) != len(header):
                rejected[rows_read] = f"column_count: expected {len(header)}, found {len(record)}"
                continue
            item, reason = _item(header, types, record, key_positions, empty_value, numbers,
                                 exact_numbers)
            if item is None:
                rejected[rows_read] = reason
                continue
            valid += 1
            items[tuple(record[p] for p in key_positions)] = item
    return ExpectedOutcome(items, rows_read, rejected, valid - len(items))


def expected_items(path: Path, *, key_columns: Sequence[str],
                   column_types: Mapping[str, AttributeType], empty_value: EmptyValue = "omit",
                   numbers: NumberForm = "as_written",
                   exact_numbers: bool = True) -> dict[tuple[str, ...], Item]:
    """The exact items (DynamoDB low-level JSON) a correct load of ``path`` leaves, by key."""
    return expected_outcome(path, key_columns=key_columns, column_types=column_types,
                            empty_value=empty_value, numbers=numbers,
                            exact_numbers=exact_numbers).items


def _item(header: Sequence[str], types: Sequence[str], record: Sequence[str],
          key_positions: Sequence[int], empty_value: EmptyValue,
          numbers: NumberForm, exact_numbers: bool) -> tuple[Item | None, str]:
    if any(record[p] == "" for p in key_positions):
        return None, "empty_key"
    item: Item = {}
    for name, kind, raw in zip(header, types, record, strict=True):
        if raw == "":
            if empty_value == "null":
                item[name] = {"NULL": True}
            elif empty_value == "empty_string":
                item[name] = {"S": ""}
            continue
        if kind == "N":
            text = raw.strip()
            problem = _number_problem(text)
            if not problem and exact_numbers and _canonical(text) != text:
                problem = "not_kept_as_written"
            if problem:
                return None, f"{problem}: {name}={raw!r}"
            item[name] = {"N": _canonical(text) if numbers == "canonical" else text}
        elif kind == "BOOL":
            text = raw.strip().lower()
            if text not in ("true", "false"):
                return None, f"not_a_boolean: {name}={raw!r}"
            item[name] = {"BOOL": text == "true"}
        else:
            item[name] = {"S": raw}
    return item, ""


def _significant_digits(raw: str) -> str:
    mantissa = re.split("[eE]", raw.lstrip("+-"))[0]
    return mantissa.replace(".", "").strip("0")


def _number_problem(raw: str) -> str:
    """Empty when DynamoDB can hold ``raw`` as a number, else a short reason."""
    if not _NUMBER.fullmatch(raw):
        return "not_a_number"
    if len(_significant_digits(raw)) > _MAX_DIGITS:
        return "too_many_digits"
    value = Decimal(raw)  # exact: construction from a string never rounds
    if value != 0 and not -130 <= value.adjusted() <= 125:
        return "out_of_range"
    return ""


def _canonical(raw: str) -> str:
    value = Decimal(raw)
    if value == 0:
        return "0"
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: _NUMBER admits no NaN or Infinity
    while digits and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    return format(Decimal((sign, digits, exponent)), "f")
