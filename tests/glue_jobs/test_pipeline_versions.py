"""De-duplication under the version guard: among a file's rows of one key, the newest version is
the one sent (ties to the later row); without a version column the last row wins. One
partition, no JVM."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.catalog import Column
from dynamo_ingest.core.keys import KeyAttribute, KeySchema
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.engine.layout import CORRUPT_COLUMN, KEY_HASH, RECORD_NO, value_column
from dynamo_ingest.engine.pipeline import PartitionResult, PartitionTask, process_partition
from dynamo_ingest.engine.writer import BatchWriter, RetryPolicy

from tests.glue_jobs.conftest import MemoryCheckpoints

TABLE = "t"
COLUMNS = (Column("id"), Column("ver", "bigint"), Column("note"))
# An explicit N: versions compare as numbers, 7.00 equal to 7 (DynamoDB stores it as 7).
VERSIONED = AttributeMapping(version_column="ver", column_types=(("ver", "N"),))

Row = tuple[str, str, str]  # (id, ver, note); the record number is the row's place in the file


class SimulatedKill(BaseException):
    """The process dies right after DynamoDB took a batch."""


class RecordingTable:
    """BatchWriteItem into a dict that remembers every item sent, in order."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.requests = 0
        self.kill_after: int | None = None

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        for put in request["RequestItems"][TABLE]:
            item = put["PutRequest"]["Item"]
            self.sent.append(item)
            self.items[item["id"]["S"]] = item
        self.requests += 1
        if self.kill_after is not None and self.requests >= self.kill_after:
            self.kill_after = None
            raise SimulatedKill
        return {"UnprocessedItems": {}}

    def sent_notes(self) -> list[str]:
        """The note of every item sent, in the order sent."""
        return [item["note"]["S"] for item in self.sent]


def arrow_batches(rows: list[Row], groups: int = 1) -> list[pa.RecordBatch]:
    """The partition as Spark's mapInArrow hands it over: sorted by (key hash, record number),
    with ``groups`` hash values so that several keys share a hash group."""
    def key_hash(key: str) -> int:
        return sum(key.encode()) % groups

    numbered = sorted(enumerate(rows, start=1), key=lambda r: (key_hash(r[1][0]), r[0]))
    table = pa.table({
        **{value_column(i): [row[i] for _, row in numbered] for i in range(len(COLUMNS))},
        CORRUPT_COLUMN: pa.array([None] * len(numbered), pa.string()),
        RECORD_NO: pa.array([record_no for record_no, _ in numbered], pa.int64()),
        KEY_HASH: pa.array([key_hash(row[0]) for _, row in numbered], pa.int64()),
    })
    batches: list[pa.RecordBatch] = table.to_batches(max_chunksize=16)
    return batches


def run_partition(batches: list[pa.RecordBatch], mapping: AttributeMapping | None,
                  table: RecordingTable,
                  checkpoints: MemoryCheckpoints | None = None) -> PartitionResult | None:
    """Run ``process_partition`` over the batches into ``table``; None when the attempt died."""
    task = PartitionTask(
        columns=COLUMNS, key_schema=KeySchema(KeyAttribute("id", "S")), target_table=TABLE,
        empty_value="omit", delimiter=",", quote_char='"', aws=AwsConfig(),
        retry=RetryPolicy(max_retry_seconds=5), rate_per_task=None,
        rejects_parts_prefix="unused", checkpoint_every=1, mapping=mapping)

    def writer_factory(on_acknowledged: Any) -> BatchWriter:
        return BatchWriter(table, TABLE, on_acknowledged=on_acknowledged,  # type: ignore[arg-type]
                           policy=RetryPolicy(max_retry_seconds=5))

    def put_rejects(path: Path, _key: str) -> None:
        raise AssertionError(f"no row should be rejected: {path.read_text(encoding='utf-8')}")

    try:
        return process_partition(0, batches, task, writer_factory, checkpoints, put_rejects)
    except SimulatedKill:
        return None


@pytest.mark.parametrize("mapping", [
    VERSIONED,
    # The guard compares the stored attribute, the version column's name after --rename.
    AttributeMapping(version_column="ver", rename=(("ver", "version"),)),
], ids=["version-column", "renamed-version-column"])
def test_the_newest_version_of_a_key_is_the_row_sent(mapping: AttributeMapping) -> None:
    table = RecordingTable()
    rows = [("a", "5", "a5"), ("b", "1", "b1"), ("a", "7", "a7"), ("a", "6", "a6")]

    result = run_partition(arrow_batches(rows), mapping, table)

    assert result is not None
    assert table.sent_notes() == ["b1", "a7"]  # winners go out in record-number order
    assert result.counts.duplicate_rows == 2
    assert result.counts.items_written == 2
    assert result.counts.identity_holds


def test_versions_compare_as_numbers_not_text() -> None:
    table = RecordingTable()
    # As text "9" > "10" and "9.5" > "10"; as numbers 10 is the newest.
    rows = [("a", "9", "a9"), ("a", "10", "a10"), ("a", "9.5", "a9.5")]

    result = run_partition(arrow_batches(rows), VERSIONED, table)

    assert result is not None
    assert table.sent_notes() == ["a10"]
    assert result.counts.duplicate_rows == 2


@pytest.mark.parametrize("equal", ["7", "7.00"], ids=["same-text", "same-number"])
def test_equal_versions_go_to_the_later_row(equal: str) -> None:
    table = RecordingTable()
    rows = [("a", "5", "first 5"), ("a", "7", "first 7"), ("a", equal, "second 7"),
            ("a", "6", "last 6")]

    result = run_partition(arrow_batches(rows), VERSIONED, table)

    assert result is not None
    assert table.sent_notes() == ["second 7"]
    assert result.counts.duplicate_rows == 3
    assert result.counts.identity_holds


def test_without_a_version_column_the_last_row_wins() -> None:
    table = RecordingTable()
    rows = [("a", "5", "a5"), ("b", "1", "b1"), ("a", "7", "a7"), ("a", "6", "a6")]

    result = run_partition(arrow_batches(rows), None, table)

    assert result is not None
    assert table.sent_notes() == ["b1", "a6"]
    assert result.counts.duplicate_rows == 2
    assert result.counts.identity_holds


def test_a_killed_and_resumed_partition_stores_the_newest_version_of_every_key() -> None:
    rng = random.Random(7)
    keys = [f"k{i:02d}" for i in range(60)]
    rows: list[Row] = []
    for n in range(400):
        key = rng.choice(keys)
        rows.append((key, str(rng.randrange(20)), f"{key} row {n + 1}"))
    newest: dict[str, str] = {}
    for key, ver, note in rows:  # ties go to the later row
        if key not in newest or int(ver) >= int(newest[key].split("|")[0]):
            newest[key] = f"{ver}|{note}"
    batches = arrow_batches(rows, groups=9)
    table = RecordingTable()
    checkpoints = MemoryCheckpoints()
    table.kill_after = 2

    assert run_partition(batches, VERSIONED, table, checkpoints) is None
    resumed = run_partition(batches, VERSIONED, table, checkpoints)

    assert resumed is not None
    assert resumed.counts.identity_holds
    assert resumed.counts.rows_skipped_by_resume > 0  # the kill left a checkpoint to resume from
    stored = {key: f"{item['ver']['N']}|{item['note']['S']}" for key, item in table.items.items()}
    assert stored == newest
    done = checkpoints.saved[0]
    assert done.done
    # Across both attempts every row is one item or one duplicate.
    assert (done.rows_done, done.items_written, done.duplicate_rows) == (
        len(rows), len(newest), len(rows) - len(newest))


def test_string_versions_compare_like_dynamodb_strings() -> None:
    # A string version column: DynamoDB's ``<=`` orders strings by their UTF-8 bytes, so "9" is
    # newer than "10" there, and the row sent must be the one the guard would keep.
    table = RecordingTable()
    mapping = AttributeMapping(version_column="ver", column_types=(("ver", "S"),))
    rows = [("a", "9", "a9"), ("a", "10", "a10"), ("b", "2024-05-01", "b new"),
            ("b", "2024-04-30", "b old")]

    result = run_partition(arrow_batches(rows), mapping, table)

    assert result is not None
    assert table.sent_notes() == ["a9", "b new"]
    assert result.counts.duplicate_rows == 2
