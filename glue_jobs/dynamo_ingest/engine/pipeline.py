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
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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

if TYPE_CHECKING:
    from dynamo_ingest.control.budget import BudgetShare

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
    # This task's part of the table's write budget, shared with the table's other loads
    # through the ledger (control/budget.py); None: rate_per_task alone.
    budget_share: BudgetShare | None = None
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


# A row as the pipeline reads it: (key hash, record number, values, corrupt raw text). The
# in-process engine's spilled records have this shape, so they need no conversion.
Row = tuple[int, int, list[str | None], str | None]
# The end of a hash group: (positions_end, rows_end, rejected, duplicates).
_Snapshot = tuple[int, int, int, int]
# A key's winning row in its hash group: (record number, item, values as read).
_Winner = tuple[int, BuiltItem, list[str | None]]
_Winners = dict[tuple[str, ...], _Winner]


def arrow_rows(batches: Iterable[Any], width: int) -> Iterator[Row]:
    """Every row of the Arrow batches a Spark task receives (columns ``c0…cN``,
    ``_corrupt_record``, ``_record_no``, ``_key_hash``)."""
    names = [value_column(i) for i in range(width)]
    for batch in batches:
        # NumPy's conversion costs ~1/9 of to_pydict()'s (benchmarks/README.md);
        # it gives None for null strings, and the two int64 columns are never null.
        data = {name: batch.column(name).to_numpy(zero_copy_only=False).tolist()
                for name in batch.schema.names}
        values = zip(*(data[name] for name in names), strict=True)
        yield from zip(data[KEY_HASH], data[RECORD_NO], map(list, values),
                       data[CORRUPT_COLUMN], strict=True)


def process_partition(partition: int, batches: Iterable[Any], task: PartitionTask,
                      writer_factory: Callable[[Callable[[int], None]], ItemWriter],
                      checkpoints: CheckpointStore | None,
                      put_rejects: Callable[[Path, str], None]) -> PartitionResult:
    """Process one partition's Arrow batches (see :class:`PartitionPipeline`)."""
    pipeline = PartitionPipeline(partition, task, writer_factory, checkpoints, put_rejects)
    return pipeline.run(arrow_rows(batches, pipeline.read_width))


class PartitionPipeline:
    """One partition's load; every input row ends up written, rejected or duplicate (or
    skipped because an earlier attempt already finished it).

    Rows arrive sorted by (key hash, record number). "Position" numbers the partition's write
    stream from 0 in every attempt, so the prefix an earlier attempt wrote is replayed (not
    sent) up to ``base_positions``; checkpoints are taken at acknowledged hash-group ends.
    """

    def __init__(self, partition: int, task: PartitionTask,
                 writer_factory: Callable[[Callable[[int], None]], ItemWriter],
                 checkpoints: CheckpointStore | None,
                 put_rejects: Callable[[Path, str], None]) -> None:
        self.partition = partition
        self.task = task
        self._writer_factory = writer_factory
        self._checkpoints = checkpoints
        self._put_rejects = put_rejects
        self._builder = ItemBuilder(task.columns, task.key_schema, task.empty_value,
                                    task.mapping)
        self._version = task.mapping.version_attribute() if task.mapping is not None else None
        self.width = len(task.columns)
        self.read_width = self.width + task.trailing_delimiter
        self.counts = RowCounts()
        self.rejects = RejectsFile()
        self._resume_from = checkpoints.load(partition) if (checkpoints and task.resume) \
            else None
        # A checkpoint marked done is not trusted to cover the whole partition: a task whose
        # job was cancelled (or whose driver died) can see its input end early, cleanly, and
        # record "done" over the rows it got. Resuming after its rows_done is exact either
        # way; a partition that really was finished skips every row and records the same.
        self._skip_rows = self._resume_from.rows_done if self._resume_from else 0
        self._base_positions = self._resume_from.positions_done if self._resume_from else 0
        self._snapshots: list[_Snapshot] = []
        self._acked_positions = self._base_positions
        self._acked_batches = 0
        self._last_checkpoint = time.monotonic()
        self._rows_done = 0  # rows whose groups are handed over (this attempt's, not skipped)
        self._rejected = 0
        self._duplicates = 0
        self._position = 0
        self._writer: ItemWriter | None = None

    def run(self, rows: Iterable[Row]) -> PartitionResult:
        """Write the partition's rows; the result counts every one of them."""
        stream = self._requests(rows)
        self._writer = self._writer_factory(self._on_acknowledged)
        outcome = self._writer.write_all(stream)
        result = PartitionResult(self.partition, self.counts, exhausted=outcome.exhausted)
        for failed in outcome.failed:
            request = failed.request
            self._reject(request.record_no, failed.reason, request.values)
        if outcome.exhausted:
            # The rest of the partition is not attempted: report each row, it is not lost.
            reason = ("not written: an earlier batch of this partition exhausted the retry "
                      "budget; a retry resumes from the last checkpoint")
            for request in stream:
                self._reject(request.record_no, reason, request.values)
            result.error = outcome.failed[-1].reason if outcome.failed else reason
        self._take_counts(outcome)
        if outcome.exhausted:
            self._save_checkpoint()
        else:
            self._save_checkpoint(written_at_end=outcome.stats.items_written)
        path = self.rejects.close()
        result.rejects_written = self.rejects.count
        if path is not None:
            self._put_rejects(path, self.task.rejects_part(self.partition))
        return result

    # -- reading: rows → write requests, one hash group at a time ---------------------------

    def _requests(self, rows: Iterable[Row]) -> Iterator[WriteRequest]:
        # Hash groups of one row are nearly all of them: their end is handled inline, without
        # a sort or a generator per group (it is the per-row path of every engine).
        counts = self.counts
        skip_rows = self._skip_rows
        winners: _Winners = {}
        duplicates = 0
        group_hash: int | None = None
        group_in_prefix = False
        for index, row in enumerate(rows):
            counts.rows_read += 1
            in_prefix = index < skip_rows
            # The end of the prefix is a group end too: a checkpoint an input cut short left
            # may fall inside a hash group, whose later rows must still be written.
            if row[0] != group_hash or group_hash is None or (group_in_prefix and not in_prefix):
                if len(winners) == 1 and not group_in_prefix:
                    self._group_end(1, duplicates)
                    for winner in winners.values():
                        yield self._request(*winner)
                else:
                    yield from self._flush(winners, duplicates, group_in_prefix)
                winners, duplicates = {}, 0
                group_hash, group_in_prefix = row[0], in_prefix
            if in_prefix:
                counts.rows_skipped_by_resume += 1
            else:
                self._rows_done = index + 1
            built = self._built(row, count=not in_prefix)
            if built is None:
                continue
            previous = winners.pop(built.key, None)
            if previous is None:
                winners[built.key] = (row[1], built, row[2])
            else:
                duplicates += 1
                winners[built.key] = self._later_winner(previous, (row[1], built, row[2]))
        yield from self._flush(winners, duplicates, group_in_prefix)
        self._rows_done = counts.rows_read

    def _built(self, row: Row, *, count: bool) -> BuiltItem | None:
        """The row's item, or None when the row is rejected (with its reason)."""
        _, record_no, raw, corrupt = row
        task = self.task
        if corrupt is not None:
            reason, fields = malformed_reason(corrupt, self.read_width, task.delimiter,
                                              task.quote_char)
            self._reject(record_no, reason, fields, count=count)
            return None
        beyond = past_last_column(raw[self.width]) if task.trailing_delimiter else None
        if beyond is not None:
            self._reject(record_no, beyond.reason, raw, count=count)
            return None
        decoded = decode_utf8(raw, encoding=task.value_encoding)
        if isinstance(decoded, Rejection):
            self._reject(record_no, decoded.reason, raw, count=count)
            return None
        built = self._builder.build(decoded)
        if isinstance(built, Rejection):
            self._reject(record_no, built.reason, raw, count=count)
            return None
        return built

    def _later_winner(self, previous: _Winner, row: _Winner) -> _Winner:
        """Of two rows of one key, the one written: the later (under a version guard, the
        newer; on a tie, the later)."""
        if self._version is not None and _older_version(row[1], previous[1], self._version):
            # The guard would refuse this row after the newer one, and sending only this one
            # would lose the file's newest version: keep the earlier row.
            return previous
        return row

    def _group_end(self, winners: int, duplicates: int) -> None:
        """Record a written group's end: its duplicates, and a snapshot for checkpoints.

        The end is recorded before the group's last item is handed over: the writer sends a
        full batch as soon as it has that item, so a snapshot appended afterwards would miss
        the acknowledgement and every checkpoint would lag one group behind."""
        self._duplicates += duplicates
        self._snapshots.append((self._position + winners, self._rows_done, self._rejected,
                                self._duplicates))

    def _flush(self, winners: _Winners, duplicates: int,
               in_prefix: bool) -> Iterator[WriteRequest]:
        """The group's winners in record order (a prefix group only moves the positions)."""
        if in_prefix:
            self._position += len(winners)
            return
        self._group_end(len(winners), duplicates)
        for winner in sorted(winners.values(), key=itemgetter(0)):
            yield self._request(*winner)

    def _request(self, record_no: int, built: BuiltItem, raw: list[str | None]) -> WriteRequest:
        position = self._position
        self._position = position + 1
        self.counts.wcu_estimated += built.wcu
        return WriteRequest(position - self._base_positions, record_no, built.item, built.key,
                            built.size, built.wcu, raw)

    def _reject(self, record_no: int, reason: str, values: Sequence[str | None], *,
                count: bool = True) -> None:
        self.rejects.add(record_no, reason, original_values(values))
        if count:
            self._rejected += 1

    # -- writing: acknowledgements, checkpoints and the counts ------------------------------

    def _on_acknowledged(self, prefix: int) -> None:
        self._acked_positions = self._base_positions + prefix
        self._acked_batches += 1
        now = time.monotonic()
        if (self._acked_batches % self.task.checkpoint_every == 0
                or now - self._last_checkpoint >= self.task.checkpoint_seconds):
            self._last_checkpoint = now
            self._save_checkpoint()

    def _take_counts(self, outcome: WriteOutcome) -> None:
        stats, counts = outcome.stats, self.counts
        counts.items_written = stats.items_written
        counts.wcu_consumed = stats.wcu_consumed
        counts.throttled_retries = stats.throttled_retries
        counts.items_bounced = stats.items_bounced
        counts.items_skipped_existing = getattr(outcome, "items_skipped_existing", 0)
        counts.items_skipped_stale = getattr(outcome, "items_skipped_stale", 0)
        counts.rows_rejected = self._rejected
        counts.duplicate_rows = self._duplicates

    def _save_checkpoint(self, written_at_end: int | None = None) -> None:
        """A checkpoint at the last acknowledged group end, or (``written_at_end`` given) the
        partition's done checkpoint; its counts add the earlier attempts' prefix."""
        if self._checkpoints is None:
            return
        counts = self.counts
        if written_at_end is not None:
            mark = (self._position, counts.rows_read, self._rejected, self._duplicates)
            # DynamoDB may have refused items: they hold positions but were not written.
            written = written_at_end
            skipped = (counts.items_skipped_existing, counts.items_skipped_stale)
        else:
            usable = [s for s in self._snapshots if s[0] <= self._acked_positions]
            if not usable:
                return
            mark = usable[-1]
            del self._snapshots[:len(usable) - 1]
            # The acknowledged prefix stops at the first refused item, so every position
            # before the mark was written (or, in a conditional mode, kept by its condition).
            skipped = self._skipped_before(mark[0] - self._base_positions)
            written = mark[0] - self._base_positions - skipped[0] - skipped[1]
        self._checkpoints.save(self.partition, self._checkpoint(mark, written, skipped,
                                                                done=written_at_end is not None))

    def _checkpoint(self, mark: _Snapshot, written: int, skipped: tuple[int, int], *,
                    done: bool) -> Checkpoint:
        positions_end, rows_end, rejected, duplicates = mark
        prior = self._resume_from
        # WCU this attempt consumed so far (a kill loses only what followed the last
        # checkpoint, which the next attempt consumes again and counts).
        wcu = self._writer.stats.wcu_consumed if self._writer is not None else 0.0
        return Checkpoint(
            rows_done=rows_end,
            positions_done=positions_end,
            items_written=written + (prior.items_written if prior else 0),
            rows_rejected=rejected + (prior.rows_rejected if prior else 0),
            duplicate_rows=duplicates + (prior.duplicate_rows if prior else 0),
            wcu_consumed=wcu + (prior.wcu_consumed if prior else 0.0),
            done=done,
            items_skipped_existing=skipped[0] + (prior.items_skipped_existing if prior else 0),
            items_skipped_stale=skipped[1] + (prior.items_skipped_stale if prior else 0))

    def _skipped_before(self, position: int) -> tuple[int, int]:
        counter = getattr(self._writer, "skipped_before", None)
        return counter(position) if counter is not None else (0, 0)


def rate_per_task(total_wcu_s: float | None, partitions: int, slots: int) -> float | None:
    """Split a global WCU/s budget among the tasks that run at the same time."""
    if total_wcu_s is None:
        return None
    return total_wcu_s / max(1, min(partitions, slots))


def auto_checkpoint_every(predicted_rows: int, partitions: int, running: int | None = None) -> int:
    """``--checkpoint_every auto``: batches between checkpoints so that a kill rewrites at most
    ``REWRITE_SHARE`` of the rows. Each running partition rewrites up to that many batches, so
    the share of one partition's rows bounds the file's; the time bound
    (``CHECKPOINT_SECONDS``) caps it for big files.

    With ``running`` (the partitions that run at once, fewer than all), each of those
    rewrites up to that many batches plus the one in flight, and the file's share is split
    among them only: fewer checkpoints, each a PutItem to the ledger."""
    if running is None or running >= partitions:
        rows_per_partition = predicted_rows / max(1, partitions)
        return max(1, math.floor(rows_per_partition * REWRITE_SHARE / BATCH_ITEMS))
    batches = predicted_rows * REWRITE_SHARE / (max(1, running) * BATCH_ITEMS)
    return max(1, math.floor(batches) - 1)


def default_partitions(parallelism: int, size_bytes: int, predicted_rows: int = 0,
                       rows_per_partition: int | None = None) -> int:
    """A fixed partition count: enough for every core, ≤ ~64 MB of CSV per partition, and
    (``rows_per_partition`` given) about that many rows at most in each."""
    by_size = size_bytes // (64 * 1024 * 1024) + 1
    by_rows = predicted_rows // rows_per_partition + 1 if rows_per_partition else 1
    return max(2 * parallelism, by_size, by_rows, 4)
