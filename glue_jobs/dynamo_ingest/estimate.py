"""``dynamo-ingest estimate``: what loading a file would write, consume, take and cost, from
one streaming pass over the file with the job's own decoding, typing, mapping and sizing.

The records are split by the in-process engine's splitter
(:class:`dynamo_ingest.engine.records.RecordSplitter`, which splits as the job's Spark reader
does), so record numbers, rejected rows and duplicates are the job's, and a record over the
splitter's limit is rejected without being held. Distinct keys are counted in memory: a dict
of key → (rows, item size[, index data]), about 130 bytes per distinct one-attribute key
(measured: 1 million keys, 153 MB peak RSS, 21 s), more with a sort key or secondary indexes.

Cost model (prices are arguments; defaults are us-east-1 list prices):

- write units: Σ ⌈item size / 1 KB⌉ over the items written (the last row of each key), plus
  for each secondary index the item appears in (it has the index's key attributes) the write
  units of its index entry (table key + index key + projected attributes; with ``ALL`` the
  whole item). On-demand bills the same count in write request units.
- on-demand: WRU × price per million. Provisioned: the average rate the load needs (total
  WCU / predicted time) held for the load, billed per started hour.
- time: the table's write units at the job's write rate, but never faster than 1,000 WCU/s
  for the hottest partition key value, nor than a provisioned index's capacity allows.
- Glue: workers × DPU per worker × predicted time (billed per second, 1-minute minimum);
  Spark start-up and reading are not included.
- Import from S3 (new or empty tables only): source bytes (uncompressed) × price per GB.
"""

from __future__ import annotations

import heapq
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

from dynamo_ingest.core.arguments import EmptyPolicy, JobArguments, WriteMode
from dynamo_ingest.core.capacity import table_write_capacity
from dynamo_ingest.core.catalog import CsvSchema
from dynamo_ingest.core.errors import ArgumentError
from dynamo_ingest.core.formats import value_encoding
from dynamo_ingest.core.keys import KeySchema, index_keys_from_description
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.engine.items import (
    BuiltItem,
    ItemBuilder,
    Rejection,
    decode_utf8,
    past_last_column,
)
from dynamo_ingest.engine.pipeline import malformed_reason
from dynamo_ingest.engine.records import Dialect, Record, RecordSplitter
from dynamo_ingest.engine.sizing import item_size, write_units
from dynamo_ingest.engine.source import SourceLimits, open_source, source_format

PARTITION_KEY_WCU_S = 1000.0  # per partition (key value) write throughput, AWS quota
ITEM_COLLECTION_LIMIT_BYTES = 10 * 1024**3  # tables with a local secondary index only
INDEX_ENTRY_OVERHEAD_BYTES = 100  # AWS: per index item, in storage sizes
GLUE_MINIMUM_BILLED_S = 60.0
DPU_PER_WORKER = {"G.025X": 0.25, "G.1X": 1.0, "G.2X": 2.0, "G.4X": 4.0, "G.8X": 8.0}
_EXAMPLES = 10
_HOT_KEYS = 5


# --- secondary indexes -------------------------------------------------------------------

@dataclass(frozen=True)
class SecondaryIndex:
    """A GSI or LSI of the target table, from DescribeTable."""

    name: str
    local: bool
    keys: tuple[tuple[str, str], ...]  # (attribute, S|N|B), partition key first
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: frozenset[str] = frozenset()
    write_capacity: float | None = None  # provisioned WCU of a GSI; None: on demand / LSI


def secondary_indexes(table: dict[str, Any]) -> list[SecondaryIndex]:
    """The table's GSIs then LSIs, with key types from its AttributeDefinitions."""
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    out = []
    for local, entries in ((False, table.get("GlobalSecondaryIndexes") or []),
                           (True, table.get("LocalSecondaryIndexes") or [])):
        for entry in entries:
            keys = sorted(entry.get("KeySchema", []), key=lambda k: k["KeyType"] != "HASH")
            projection = entry.get("Projection") or {}
            capacity = (entry.get("ProvisionedThroughput") or {}).get("WriteCapacityUnits") or 0
            billing = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
            out.append(SecondaryIndex(
                name=entry["IndexName"], local=local,
                keys=tuple((k["AttributeName"], types.get(k["AttributeName"], "S")) for k in keys),
                projection=projection.get("ProjectionType", "ALL"),
                included=frozenset(projection.get("NonKeyAttributes") or ()),
                write_capacity=(float(capacity) if capacity and not local
                                and billing != "PAY_PER_REQUEST" else None)))
    return out


class _IndexRejection(NamedTuple):
    """DynamoDB would refuse the item: an index key attribute of the wrong type or empty."""

    record_no: int
    reason: str


def _index_entries(item: dict[str, dict[str, Any]], record_no: int, table_keys: Sequence[str],
                   indexes: Sequence[SecondaryIndex]) -> tuple[int, ...] | _IndexRejection:
    """Per index: the bytes of the item's index entry (0 when it is not in the index)."""
    sizes = []
    for index in indexes:
        names = [name for name, _ in index.keys]
        if not all(name in item for name in names):
            sizes.append(0)  # a sparse index: the item does not appear in it
            continue
        for name, kind in index.keys:
            ((found, value),) = item[name].items()
            if found != kind or (kind in ("S", "B") and not value):
                return _IndexRejection(record_no, (
                    f"rejected by DynamoDB: attribute {name!r} is a key of index "
                    f"{index.name!r} and must be a non-empty {kind}, found "
                    f"{found} {str(value)[:40]!r}"))
        if index.projection == "ALL":
            sizes.append(item_size(item))
            continue
        kept = set(table_keys) | set(names)
        if index.projection == "INCLUDE":
            kept |= index.included
        sizes.append(item_size({k: v for k, v in item.items() if k in kept}))
    return tuple(sizes)


# --- prices and the estimate ---------------------------------------------------------------

@dataclass(frozen=True)
class Prices:
    """USD list prices (defaults: us-east-1)."""

    on_demand_per_million_wru: float = 0.625
    provisioned_per_wcu_hour: float = 0.00065
    glue_per_dpu_hour: float = 0.44
    import_per_gb: float = 0.15

    def on_demand_usd(self, write_units: float) -> float:
        """On-demand write cost of ``write_units`` (1 WRU per started KB of each write)."""
        return write_units * self.on_demand_per_million_wru / 1e6

    def glue_usd(self, seconds: float, dpus: float) -> float:
        """Glue cost: per second with a 1-minute minimum."""
        return dpus * max(seconds, GLUE_MINIMUM_BILLED_S) / 3600.0 * self.glue_per_dpu_hour


@dataclass(frozen=True)
class GlueWorkers:
    """The Glue job's workers (``NumberOfWorkers`` and ``WorkerType``)."""

    count: int = 2
    worker_type: str = "G.1X"

    def __post_init__(self) -> None:
        if self.count < 1 or self.worker_type not in DPU_PER_WORKER:
            raise ArgumentError(
                f"expected at least 1 worker of type {', '.join(DPU_PER_WORKER)}, found "
                f"{self.count} × {self.worker_type!r}")

    @property
    def dpus(self) -> float:
        """DPUs billed while the job runs."""
        return self.count * DPU_PER_WORKER[self.worker_type]


@dataclass(frozen=True)
class SizeDistribution:
    """Item sizes in bytes (DynamoDB's sizing) of the items written."""

    min: int
    p50: int
    p90: int
    p99: int
    max: int
    total: int


@dataclass(frozen=True)
class HotKey:
    """One partition key value and the write units its items take."""

    partition_key: str
    items: int
    wcu: int


@dataclass(frozen=True)
class ItemCollections:
    """The 10 GB item-collection check (tables with a local secondary index only)."""

    largest_partition_key: str | None
    largest_bytes: int
    limit_bytes: int = ITEM_COLLECTION_LIMIT_BYTES

    @property
    def within_limit(self) -> bool:
        """True when this file's largest collection fits (data already stored not counted)."""
        return self.largest_bytes <= self.limit_bytes


@dataclass(frozen=True)
class Costs:
    """USD for the load, by model."""

    on_demand: float
    provisioned: float
    provisioned_rate_wcu_s: float
    glue: float
    glue_dpus: float
    import_from_s3: float | None  # None: the table is not new or empty


@dataclass(frozen=True)
class Estimate:
    """Everything ``dynamo-ingest estimate`` reports."""

    source: str
    source_bytes: int
    rows: int
    items: int
    distinct_keys: int
    duplicate_rows: int
    rejected_rows: int
    rejected_examples: list[tuple[int, str]]
    item_sizes: SizeDistribution | None
    wcu_table: int
    wcu_indexes: dict[str, int]
    wcu_total: int
    partition_keys: int
    hottest_keys: list[HotKey]
    hottest_key_share: float
    capacity_wcu_s: float
    capacity_origin: str
    write_rate_wcu_s: float
    load_s_at_capacity: float
    load_s_at_key_limit: float
    predicted_load_s: float
    item_collections: ItemCollections | None
    costs: Costs
    notes: list[str] = field(default_factory=list)
    compression: str | None = None  # the file's (None: plain text)
    text_bytes: int = 0  # the (uncompressed) text's size, counted while reading it

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``--json``)."""
        data = asdict(self)
        data["rejected_examples"] = [{"record_no": n, "reason": r}
                                     for n, r in self.rejected_examples]
        if self.item_collections is not None:
            data["item_collections"]["within_limit"] = self.item_collections.within_limit
        return data


# Per distinct key: rows with the key, the last row's item size and, when the table has
# indexes, that item's index entry sizes (or why DynamoDB refuses it). Without indexes the
# first two are packed in one int (rows << 20 | size: sizes stay under 400 KB < 2**20), and
# one-attribute keys are stored as their text, which roughly halves the memory per key.
_KeyState = int | tuple[int, int, "tuple[int, ...] | _IndexRejection"]
_SIZE_BITS = 20
_SIZE_MASK = (1 << _SIZE_BITS) - 1


class _Tally:
    """The per-key state of one pass: key → (rows, item size, index entries or rejection)."""

    def __init__(self) -> None:
        self.keys: dict[str | tuple[str, ...], _KeyState] = {}
        self.rows = 0
        self.rejected: list[tuple[int, str]] = []
        self.rejected_count = 0

    def reject(self, record_no: int, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < _EXAMPLES:
            self.rejected.append((record_no, reason))


def estimate_source(path: str | Path, *, schema: CsvSchema, key_schema: KeySchema,
                    mapping: AttributeMapping | None = None, empty_value: EmptyPolicy = "omit",
                    table_description: dict[str, Any] | None = None, prices: Prices = Prices(),
                    write_rate_wcu_s: float | None = None,
                    workers: GlueWorkers = GlueWorkers(),
                    write_mode: WriteMode = "overwrite", encoding: str | None = None,
                    limits: SourceLimits = SourceLimits(), name: str | None = None) -> Estimate:
    """Read ``path`` once as the job would and estimate what loading it writes and costs.

    ``table_description`` is DescribeTable's ``Table`` (None: the table is new or was not
    reachable). ``write_rate_wcu_s`` is the job's rate (default: the job's default share of
    the table's capacity). The file is read through
    :func:`dynamo_ingest.engine.source.open_source` (decompressed, UTF-16 as UTF-8; values
    decoded with ``encoding``), so sizes are the text's, counted exactly.
    """
    source = Path(path)
    found = source_format(str(source), encoding=encoding, name=name)
    if table_description:  # the job types index keys as the table's indexes declare
        key_schema = replace(key_schema, index_keys=index_keys_from_description(table_description))
    builder = ItemBuilder(schema.columns, key_schema, empty_value, mapping)
    indexes = secondary_indexes(table_description) if table_description else []
    tally = _Tally()
    counted = _Counted(open_source(str(source), encoding=found.encoding, limits=limits,
                                   name=name))
    # The in-process engine's splitter, so records, their numbers and the bound on a record
    # too long to hold (rejected, never held whole) are the run's.
    records = RecordSplitter(cast(BinaryIO, counted), Dialect(
        schema.delimiter, schema.quote_char, schema.has_header), _width(schema),
        source=name or str(source))
    names, values_in = schema.names, value_encoding(found.encoding)
    with counted:
        for record in records:
            tally.rows += 1
            built = _built(record, schema, names, builder, values_in)
            if isinstance(built, str):
                tally.reject(record.record_no, built)
            else:
                _count(tally, built, record.record_no, key_schema, indexes)
    estimate = _summarise(tally, source, indexes, table_description, prices, write_rate_wcu_s,
                          workers, write_mode, bool(mapping and mapping.version_column),
                          counted.count)
    if found.codec is None:
        return estimate
    ratio = counted.count / max(1, estimate.source_bytes)
    estimate.notes.insert(0, f"{found.codec.name}-compressed: its text is {counted.count:,} "
                             f"bytes ({ratio:.1f}× the file, counted exactly); Import from S3 "
                             "bills the text")
    return replace(estimate, compression=found.codec.name)


def _width(schema: CsvSchema) -> int:
    """Fields per record as the job reads them: a delimiter ending every line adds one."""
    return len(schema.names) + schema.trailing_delimiter


def _built(record: Record, schema: CsvSchema, names: Sequence[str], builder: ItemBuilder,
           values_in: str) -> BuiltItem | str:
    """The record's item, or why the job would reject it."""
    if record.rejected is not None:
        return record.rejected
    if record.corrupt is not None:
        reason, _ = malformed_reason(record.corrupt, _width(schema), schema.delimiter,
                                     schema.quote_char)
        return reason
    fields = record.values
    beyond = past_last_column(fields[-1]) if schema.trailing_delimiter else None
    if beyond is not None:
        return beyond.reason
    decoded = decode_utf8(fields, names, values_in)
    if isinstance(decoded, Rejection):
        return decoded.reason
    built = builder.build(decoded)
    return built.reason if isinstance(built, Rejection) else built


class _Counted(io.RawIOBase):
    """A stream that counts the bytes read through it (the text's size)."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[:len(data)] = data
        self.count += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def _count(tally: _Tally, built: BuiltItem, record_no: int, key_schema: KeySchema,
           indexes: Sequence[SecondaryIndex]) -> None:
    key = built.key[0] if len(built.key) == 1 else built.key
    previous = tally.keys.get(key)
    if not indexes:
        rows = (previous >> _SIZE_BITS) + 1 if isinstance(previous, int) else 1
        tally.keys[key] = rows << _SIZE_BITS | built.size
        return
    entries = _index_entries(built.item, record_no, key_schema.names, indexes)
    rows = previous[0] + 1 if isinstance(previous, tuple) else 1
    tally.keys[key] = (rows, built.size, entries)


def _percentile(sizes: Counter[int], total: int, share: float) -> int:
    """Nearest-rank percentile of a size histogram holding ``total`` items."""
    rank = max(1, math.ceil(share * total))
    seen = 0
    for size in sorted(sizes):
        seen += sizes[size]
        if seen >= rank:
            return size
    raise ValueError(f"expected a non-empty histogram, found {total} items")


@dataclass
class _Totals:
    """What the distinct keys add up to (one pass over the tally)."""

    sizes: Counter[int] = field(default_factory=Counter)
    items: int = 0
    wcu_table: int = 0
    duplicates: int = 0
    index_wcu: list[int] = field(default_factory=list)
    hot: list[HotKey] = field(default_factory=list)
    partition_keys: int = 0
    collection: tuple[str, int] | None = None
    index_rejected: int = 0
    index_examples: list[tuple[int, str]] = field(default_factory=list)


def _aggregate(tally: _Tally, indexes: Sequence[SecondaryIndex]) -> _Totals:
    totals = _Totals(index_wcu=[0] * len(indexes))
    # Per partition key (tables with a sort key; else each item is its own partition key):
    # wcu << 32 | items, and the item collection's bytes when the table has an LSI.
    per_key: dict[str, int] = {}
    collections: dict[str, int] = {}
    has_lsi = any(i.local for i in indexes)
    examples: list[tuple[int, str]] = []  # a max-heap (negated record numbers) of the first
    for key, state in tally.keys.items():
        rows, size, entries = _unpacked(state)
        totals.duplicates += rows - 1
        if isinstance(entries, _IndexRejection):
            totals.index_rejected += 1
            heapq.heappush(examples, (-entries.record_no, entries.reason))
            if len(examples) > _EXAMPLES:
                heapq.heappop(examples)
            continue
        totals.sizes[size] += 1
        totals.items += 1
        wcu = write_units(size)
        totals.wcu_table += wcu
        if not isinstance(key, str):
            per_key[key[0]] = per_key.get(key[0], 0) + (wcu << 32 | 1)
        if entries:
            for position, entry in enumerate(entries):
                if entry:
                    totals.index_wcu[position] += write_units(entry)
            if has_lsi and not isinstance(key, str):
                collections[key[0]] = collections.get(key[0], 0) + size + sum(
                    e + INDEX_ENTRY_OVERHEAD_BYTES
                    for e, i in zip(entries, indexes, strict=True) if e and i.local)
    totals.index_examples = sorted((-n, reason) for n, reason in examples)
    if per_key:
        totals.partition_keys = len(per_key)
        totals.hot = [HotKey(k, v & 0xFFFFFFFF, v >> 32) for k, v in
                      heapq.nlargest(_HOT_KEYS, per_key.items(), key=lambda kv: kv[1] >> 32)]
    else:
        totals.partition_keys = totals.items
        written = ((str(k), write_units(_unpacked(s)[1])) for k, s in tally.keys.items()
                   if not isinstance(_unpacked(s)[2], _IndexRejection))
        totals.hot = [HotKey(k, 1, wcu) for k, wcu in
                      heapq.nlargest(_HOT_KEYS, written, key=lambda kv: kv[1])]
    if has_lsi:
        largest = max(collections.items(), key=lambda kv: kv[1], default=None)
        totals.collection = largest if largest else ("", 0)
    return totals


def _unpacked(state: _KeyState) -> tuple[int, int, tuple[int, ...] | _IndexRejection | None]:
    """(rows, last item size, index entries) of a key's state."""
    if isinstance(state, int):
        return state >> _SIZE_BITS, state & _SIZE_MASK, None
    return state


def _summarise(tally: _Tally, source: Path, indexes: Sequence[SecondaryIndex],
               table: dict[str, Any] | None, prices: Prices, write_rate: float | None,
               workers: GlueWorkers, write_mode: WriteMode, versioned: bool,
               text_bytes: int) -> Estimate:
    totals = _aggregate(tally, indexes)
    rejected_examples = sorted(tally.rejected + totals.index_examples)[:_EXAMPLES]
    wcu_table = totals.wcu_table
    wcu_total = wcu_table + sum(totals.index_wcu)
    hottest_wcu = totals.hot[0].wcu if totals.hot else 0
    index_wcu = totals.index_wcu
    sizes = totals.sizes

    capacity, origin = table_write_capacity(table or {})
    if write_rate is None:
        write_rate = capacity * _default_write_share()
    load_at_capacity = wcu_table / capacity
    load_at_key = hottest_wcu / PARTITION_KEY_WCU_S
    index_limits = [index_wcu[n] / i.write_capacity for n, i in enumerate(indexes)
                    if i.write_capacity]
    predicted = max([wcu_table / write_rate, load_at_key, *index_limits], default=0.0)
    needed_rate = wcu_total / predicted if predicted else 0.0
    hours = math.ceil(predicted / 3600.0)
    source_bytes = source.stat().st_size
    empty_table = table is None or int(table.get("ItemCount") or 0) == 0
    notes = _notes(table, indexes, empty_table, write_mode, versioned, load_at_key, predicted)
    collections = None
    if totals.collection is not None:
        name, largest = totals.collection
        collections = ItemCollections(name or None, largest)
    items = totals.items
    return Estimate(
        source=str(source), source_bytes=source_bytes, rows=tally.rows, items=items,
        distinct_keys=len(tally.keys), duplicate_rows=totals.duplicates,
        rejected_rows=tally.rejected_count + totals.index_rejected,
        rejected_examples=rejected_examples,
        item_sizes=SizeDistribution(
            min(sizes), _percentile(sizes, items, 0.5), _percentile(sizes, items, 0.9),
            _percentile(sizes, items, 0.99), max(sizes),
            sum(size * count for size, count in sizes.items())) if items else None,
        wcu_table=wcu_table, wcu_indexes={i.name: index_wcu[n] for n, i in enumerate(indexes)},
        wcu_total=wcu_total, partition_keys=totals.partition_keys,
        hottest_keys=totals.hot,
        hottest_key_share=hottest_wcu / wcu_table if wcu_table else 0.0,
        capacity_wcu_s=capacity, capacity_origin=origin, write_rate_wcu_s=write_rate,
        load_s_at_capacity=load_at_capacity, load_s_at_key_limit=load_at_key,
        predicted_load_s=predicted, item_collections=collections,
        costs=Costs(
            on_demand=prices.on_demand_usd(wcu_total),
            provisioned=needed_rate * hours * prices.provisioned_per_wcu_hour,
            provisioned_rate_wcu_s=needed_rate,
            glue=prices.glue_usd(predicted, workers.dpus), glue_dpus=workers.dpus,
            import_from_s3=(text_bytes / 1024**3 * prices.import_per_gb
                            if empty_table else None)),
        notes=notes, text_bytes=text_bytes)


def _default_write_share() -> float:
    share = next(f.default for f in fields(JobArguments) if f.name == "write_share")
    return float(share)  # type: ignore[arg-type]


def _notes(table: dict[str, Any] | None, indexes: Sequence[SecondaryIndex], empty_table: bool,
           write_mode: WriteMode, versioned: bool, load_at_key: float,
           predicted: float) -> list[str]:
    notes = []
    if table is None:
        notes.append("the target table was not described (new, or not reachable): no secondary "
                     "indexes counted, capacity assumed that of a new on-demand table")
    if not any(i.local for i in indexes):
        notes.append("the 10 GB item-collection limit does not apply: the table has no local "
                     "secondary index")
    else:
        notes.append("item collections count this file's items and LSI entries only, not "
                     "items already in the table")
    if predicted and load_at_key >= predicted:
        notes.append("the hottest partition key value limits the load (1,000 WCU/s per key): "
                     "--partition_key_shards spreads it")
    if write_mode == "merge":
        notes.append("merge: UpdateItem is charged the larger of the stored and the new item, "
                     "so updates of larger stored items cost more than estimated")
    if write_mode == "insert" or versioned:
        notes.append("a conditional write is charged even when its condition fails and the "
                     "stored item is kept (the larger of the two items' write units)")
    notes.append("on-demand writes of items over 1 KB cost 1 WRU per started KB, as counted")
    if empty_table:
        notes.append("Import from S3 only creates a new table (it cannot load into an existing "
                     "one); ItemCount is refreshed about every 6 hours")
    return notes
