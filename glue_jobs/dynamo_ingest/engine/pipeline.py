"""One partition's work inside a Spark task: decode, type and validate each record, keep the
last row per key (under a version guard, its newest version), write in batches, checkpoint,
and account for every row.

Plain Python (pyarrow batches in, counts out) so it is unit-testable without a JVM and can
serve a Lambda-sized load later. Rows arrive sorted by (key hash, record number), so the
rows of one key are adjacent and de-duplication needs memory for one hash group only.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from dynamo_ingest.control.checkpoints import Checkpoint
from dynamo_ingest.core.arguments import EmptyPolicy, WriteMode
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.catalog import Column
from dynamo_ingest.core.keys import KeySchema
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.core.report import RowCounts
from dynamo_ingest.engine.items import (
    BuiltItem,
    ItemBuilder,
    Rejection,
    decode_utf8,
    past_last_column,
)
from dynamo_ingest.engine.layout import (
    CORRUPT_COLUMN,
    KEY_HASH,
    RECORD_NO,
    allow_large_csv_fields,
    value_column,
)
from dynamo_ingest.engine.rejects import RejectsFile
from dynamo_ingest.engine.writer import RetryPolicy, WriteOutcome, WriteRequest, WriteStats

BATCH_ITEMS = 25  # BatchWriteItem's limit: the items one acknowledged batch covers at most
# A kill rewrites what was acknowledged after a partition's last checkpoint: at most
# checkpoint_every batches per running partition. The default keeps that within this share of
# the file's rows, and within CHECKPOINT_SECONDS of writes for files too big for the share.
REWRITE_SHARE = 0.01
CHECKPOINT_SECONDS = 5.0


class ItemWriter(Protocol):
    """BatchWriter or ConditionalWriter: writes a partition's stream, reports what happened."""

    stats: WriteStats  # the running write_all's counters (WCU consumed so far)

    def write_all(self, requests: Iterable[WriteRequest]) -> WriteOutcome:
        """Write every request; stop consuming after a batch that cannot finish."""


class CheckpointStore(Protocol):
    """Where a task reads its partition's last checkpoint and records new ones."""

    def load(self, partition: int) -> Checkpoint | None:
        """The partition's last checkpoint, if any."""

    def save(self, partition: int, checkpoint: Checkpoint) -> None:
        """Record a checkpoint (called every K acknowledged batches and at the end)."""


@dataclass(frozen=True)
class PartitionTask:
    """Everything a Spark task needs; picklable, built once on the driver."""

    columns: tuple[Column, ...]
    key_schema: KeySchema
    target_table: str
    empty_value: EmptyPolicy
    delimiter: str
    quote_char: str
    aws: AwsConfig
    retry: RetryPolicy
    rate_per_task: float | None
    rejects_parts_prefix: str
    checkpoint_every: int = 100
    checkpoint_seconds: float = CHECKPOINT_SECONDS
    ledger_table: str | None = None
    source_key: tuple[str, str, str] | None = None  # (bucket, key, etag) for the ledger
    partitions: int = 1
    resume: bool = True
    mapping: AttributeMapping | None = None
    write_mode: WriteMode = "overwrite"
    trailing_delimiter: bool = False  # every line ends with it: one more, unnamed, field
    value_encoding: str = "utf-8"  # what the values' bytes decode as (core.formats)

    @property
    def conditional(self) -> bool:
        """True when items need PutItem/UpdateItem with a condition (not BatchWriteItem)."""
        return self.write_mode != "overwrite" or bool(
            self.mapping is not None and self.mapping.version_attribute())

    def rejects_part(self, partition: int) -> str:
        """The rejects part file of one partition (merged into one file by the driver)."""
        sep = "" if self.rejects_parts_prefix.endswith("/") else "/"
        return f"{self.rejects_parts_prefix}{sep}part-{partition:05d}.csv"


@dataclass
class PartitionResult:
    """What one partition reports back to the driver."""

    partition: int
    counts: RowCounts
    exhausted: bool = False
    error: str | None = None
    rejects_written: int = 0


def original_values(raw: Sequence[str | None]) -> list[str | None]:
    """Values for the rejects file, bytes preserved (read as ISO-8859-1 by Spark)."""
    out: list[str | None] = []
    for value in raw:
        if value is None or value.isascii():
            out.append(value)
        else:
            out.append(value.encode("latin-1").decode("utf-8", "surrogateescape"))
    return out


def malformed_reason(raw: str, expected: int, delimiter: str,
                     quote_char: str) -> tuple[str, list[str | None]]:
    """Why Spark could not parse a record, and its fields as far as Python can split them."""
    text = original_values([raw])[0] or ""
    allow_large_csv_fields()
    try:
        fields = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                                 quotechar=quote_char), [])
    except csv.Error as err:
        return f"malformed record: {err}", [text]
    found = len(fields)
    if found != expected:
        return f"malformed record: expected {expected} fields, found {found}", list(fields)
    return "malformed record: unbalanced quotes or stray characters", list(fields)


@dataclass
class _Group:
    """Rows sharing one key hash: the winning row per exact key, in first-seen order."""

    key_hash: int | None = None
    winners: dict[tuple[str, ...], tuple[int, BuiltItem, list[str | None]]] = field(
        default_factory=dict)
    duplicates: int = 0


def _older_version(row: BuiltItem, winner: BuiltItem, attribute: str) -> bool:
    """True when ``row``'s version is below ``winner``'s, so ``winner`` stays the key's row."""
    new, old = row.item.get(attribute, {}), winner.item.get(attribute, {})
    # The order DynamoDB's ``#v <= :v`` applies: numbers by value, strings by UTF-8 bytes.
    if "N" in new and "N" in old:
        return Decimal(new["N"]) < Decimal(old["N"])
    if "S" in new and "S" in old:
        return str(new["S"]).encode("utf-8") < str(old["S"]).encode("utf-8")
    # Versions of different types never compare in DynamoDB: keep the later row, as without one.
    return False


def _rows(batches: Iterable[Any],
          width: int) -> Iterator[tuple[list[str | None], str | None, int, int]]:
    """(values, corrupt raw text, record number, key hash) for every row of the batches."""
    names = [value_column(i) for i in range(width)]
    for batch in batches:
        # NumPy's conversion costs ~1/9 of to_pydict()'s (benchmarks/README.md);
        # it gives None for null strings, and the two int64 columns are never null.
        data = {name: batch.column(name).to_numpy(zero_copy_only=False).tolist()
                for name in batch.schema.names}
        columns = [data[name] for name in names]
        corrupt = data[CORRUPT_COLUMN]
        record_nos = data[RECORD_NO]
        hashes = data[KEY_HASH]
        for row in range(batch.num_rows):
            yield [col[row] for col in columns], corrupt[row], record_nos[row], hashes[row]


def process_partition(partition: int, batches: Iterable[Any], task: PartitionTask,
                      writer_factory: Callable[[Callable[[int], None]], ItemWriter],
                      checkpoints: CheckpointStore | None,
                      put_rejects: Callable[[Path, str], None]) -> PartitionResult:
    """Process one partition; every input row ends up written, rejected or duplicate (or
    skipped because an earlier attempt already finished it)."""
    builder = ItemBuilder(task.columns, task.key_schema, task.empty_value, task.mapping)
    version = task.mapping.version_attribute() if task.mapping is not None else None
    width = len(task.columns)
    read_width = width + task.trailing_delimiter
    counts = RowCounts()
    rejects = RejectsFile()
    resume_from = checkpoints.load(partition) if (checkpoints and task.resume) else None
    # A checkpoint marked done is not trusted to cover the whole partition: a task whose job
    # was cancelled (or whose driver died) can see its input end early, cleanly, and record
    # "done" over the rows it got. Resuming after its rows_done is exact either way; a
    # partition that really was finished skips every row and records the same checkpoint.
    skip_rows = resume_from.rows_done if resume_from else 0
    base_positions = resume_from.positions_done if resume_from else 0

    # Snapshots at hash-group ends: (positions_end, rows_end, rejected, duplicates).
    snapshots: list[tuple[int, int, int, int]] = []
    acked = {"positions": base_positions, "batches": 0}
    last_checkpoint = [time.monotonic()]
    # "position" numbers the partition's write stream from 0 in every attempt, so the
    # prefix an earlier attempt wrote is replayed (not sent) up to base_positions.
    state = {"rows": 0, "rejected": 0, "duplicates": 0, "position": 0}

    def save_checkpoint(written_at_end: int | None = None) -> None:
        """A checkpoint at the last acknowledged group end, or (``written_at_end`` given) the
        partition's done checkpoint; its counts add the earlier attempts' prefix."""
        if checkpoints is None:
            return
        if written_at_end is not None:
            mark = (state["position"], counts.rows_read, state["rejected"], state["duplicates"])
            # DynamoDB may have refused items: they hold positions but were not written.
            written = written_at_end
            skipped = (counts.items_skipped_existing, counts.items_skipped_stale)
        else:
            usable = [s for s in snapshots if s[0] <= acked["positions"]]
            if not usable:
                return
            mark = usable[-1]
            del snapshots[:len(usable) - 1]
            # The acknowledged prefix stops at the first refused item, so every position
            # before the mark was written (or, in a conditional mode, kept by its condition).
            skipped = skipped_before(mark[0] - base_positions)
            written = mark[0] - base_positions - skipped[0] - skipped[1]
        positions_end, rows_end, rejected, duplicates = mark
        prior = resume_from
        checkpoints.save(partition, Checkpoint(
            rows_done=rows_end,
            positions_done=positions_end,
            items_written=written + (prior.items_written if prior else 0),
            rows_rejected=rejected + (prior.rows_rejected if prior else 0),
            duplicate_rows=duplicates + (prior.duplicate_rows if prior else 0),
            # WCU this attempt consumed so far (a kill loses only what followed the last
            # checkpoint, which the next attempt consumes again and counts).
            wcu_consumed=writer.stats.wcu_consumed + (prior.wcu_consumed if prior else 0.0),
            done=written_at_end is not None,
            items_skipped_existing=skipped[0] + (prior.items_skipped_existing if prior else 0),
            items_skipped_stale=skipped[1] + (prior.items_skipped_stale if prior else 0)))

    def on_acknowledged(prefix: int) -> None:
        acked["positions"] = base_positions + prefix
        acked["batches"] += 1
        now = time.monotonic()
        if (acked["batches"] % task.checkpoint_every == 0
                or now - last_checkpoint[0] >= task.checkpoint_seconds):
            last_checkpoint[0] = now
            save_checkpoint()

    def reject(record_no: int, reason: str, values: Sequence[str | None], *, count: bool) -> None:
        rejects.add(record_no, reason, original_values(values))
        if count:
            state["rejected"] += 1

    def flush(group: _Group, in_prefix: bool) -> Iterator[WriteRequest]:
        if not in_prefix:
            state["duplicates"] += group.duplicates
            # The group's end is recorded before its last item is handed over: the writer sends
            # a full batch as soon as it has that item, so a snapshot appended afterwards would
            # miss the acknowledgement and every checkpoint would lag one group behind.
            snapshots.append((state["position"] + len(group.winners), state["rows"],
                              state["rejected"], state["duplicates"]))
        for record_no, built, raw in sorted(group.winners.values(), key=lambda w: w[0]):
            position = state["position"]
            state["position"] += 1
            if not in_prefix:
                counts.wcu_estimated += built.wcu
                yield WriteRequest(position - base_positions, record_no, built.item, built.key,
                                   built.size, built.wcu, raw)

    def requests() -> Iterator[WriteRequest]:
        group = _Group()
        group_in_prefix = False
        for index, (raw, corrupt, record_no, hashed) in enumerate(_rows(batches, read_width)):
            counts.rows_read += 1
            in_prefix = index < skip_rows
            # The end of the prefix is a group end too: a checkpoint an input cut short left
            # may fall inside a hash group, whose later rows must still be written.
            if (hashed != group.key_hash or group.key_hash is None
                    or (group_in_prefix and not in_prefix)):
                yield from flush(group, group_in_prefix)
                group = _Group(key_hash=hashed)
                group_in_prefix = in_prefix
            if in_prefix:
                counts.rows_skipped_by_resume += 1
            else:
                state["rows"] = index + 1
            if corrupt is not None:
                reason, fields = malformed_reason(corrupt, read_width, task.delimiter,
                                                  task.quote_char)
                reject(record_no, reason, fields, count=not in_prefix)
                continue
            beyond = past_last_column(raw[width]) if task.trailing_delimiter else None
            if beyond is not None:
                reject(record_no, beyond.reason, raw, count=not in_prefix)
                continue
            decoded = decode_utf8(raw, encoding=task.value_encoding)
            if isinstance(decoded, Rejection):
                reject(record_no, decoded.reason, raw, count=not in_prefix)
                continue
            built = builder.build(decoded)
            if isinstance(built, Rejection):
                reject(record_no, built.reason, raw, count=not in_prefix)
                continue
            previous = group.winners.pop(built.key, None)
            if previous is not None:
                group.duplicates += 1
                if version is not None and _older_version(built, previous[1], version):
                    # The guard would refuse this row after the newer one, and sending only
                    # this one would lose the file's newest version: keep the earlier row.
                    group.winners[built.key] = previous
                    continue
            group.winners[built.key] = (record_no, built, raw)
        yield from flush(group, group_in_prefix)
        state["rows"] = counts.rows_read

    def skipped_before(position: int) -> tuple[int, int]:
        counter = getattr(writer, "skipped_before", None)
        return counter(position) if counter is not None else (0, 0)

    stream = requests()
    writer = writer_factory(on_acknowledged)
    outcome = writer.write_all(stream)
    result = PartitionResult(partition, counts, exhausted=outcome.exhausted)
    for failed in outcome.failed:
        request = failed.request
        reject(request.record_no, failed.reason, request.values, count=True)
    if outcome.exhausted:
        # The rest of the partition is not attempted: report each row, it is not lost.
        reason = ("not written: an earlier batch of this partition exhausted the retry budget; "
                  "a retry resumes from the last checkpoint")
        for request in stream:
            reject(request.record_no, reason, request.values, count=True)
        result.error = outcome.failed[-1].reason if outcome.failed else reason
    stats = outcome.stats
    counts.items_written = stats.items_written
    counts.wcu_consumed = stats.wcu_consumed
    counts.throttled_retries = stats.throttled_retries
    counts.items_bounced = stats.items_bounced
    counts.items_skipped_existing = getattr(outcome, "items_skipped_existing", 0)
    counts.items_skipped_stale = getattr(outcome, "items_skipped_stale", 0)
    counts.rows_rejected = state["rejected"]
    counts.duplicate_rows = state["duplicates"]
    if outcome.exhausted:
        save_checkpoint()
    else:
        save_checkpoint(written_at_end=stats.items_written)
    path = rejects.close()
    result.rejects_written = rejects.count
    if path is not None:
        put_rejects(path, task.rejects_part(partition))
    return result


def rate_per_task(total_wcu_s: float | None, partitions: int, slots: int) -> float | None:
    """Split a global WCU/s budget among the tasks that run at the same time."""
    if total_wcu_s is None:
        return None
    return total_wcu_s / max(1, min(partitions, slots))


def auto_checkpoint_every(predicted_rows: int, partitions: int) -> int:
    """``--checkpoint_every auto``: batches between checkpoints so that a kill rewrites at most
    ``REWRITE_SHARE`` of the rows. Each running partition rewrites up to that many batches and
    at most ``partitions`` run at once, so the share of one partition's rows bounds the
    file's; the time bound (``CHECKPOINT_SECONDS``) caps it for big files."""
    rows_per_partition = predicted_rows / max(1, partitions)
    return max(1, math.floor(rows_per_partition * REWRITE_SHARE / BATCH_ITEMS))


def default_partitions(parallelism: int, size_bytes: int) -> int:
    """A fixed partition count: enough for every core, and ≤ ~64 MB of CSV per partition."""
    by_size = size_bytes // (64 * 1024 * 1024) + 1
    return max(2 * parallelism, by_size, 4)
