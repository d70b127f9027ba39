"""Resume: a partition killed at any point and run again ends exactly like an uninterrupted run,
its checkpoints add up to the file across attempts, and only rows after the last checkpoint
are written twice. First on one partition without a JVM, then the real CLI SIGKILLed."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import psutil
import pyarrow as pa
import pytest
from dynamo_ingest.control.checkpoints import Checkpoint
from dynamo_ingest.control.ledger import Ledger, LedgerStatus, SourceObject
from dynamo_ingest.control.storage import file_md5
from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.catalog import Column
from dynamo_ingest.core.keys import KeyAttribute, KeySchema
from dynamo_ingest.core.report import RowCounts
from dynamo_ingest.engine.layout import CORRUPT_COLUMN, KEY_HASH, RECORD_NO, value_column
from dynamo_ingest.engine.pipeline import (
    REWRITE_SHARE,
    PartitionResult,
    PartitionTask,
    auto_checkpoint_every,
    process_partition,
)
from dynamo_ingest.engine.transport import BatchRejectedError, ThrottledError
from dynamo_ingest.engine.writer import BatchWriter, RetryPolicy

from dynamo_ingest_cli.datagen import expected_outcome
from local_aws.dynamodb_double import DynamoDBDouble, FaultPlan
from tests.glue_jobs.conftest import (
    TABLE,
    MemoryCheckpoints,
    create_table,
    dynamodb_double,
    read_rejects,
    scan_table,
)

# -- one partition, no JVM ---------------------------------------------------------------------

PARTITION_TABLE = "t"
COLUMNS = (Column("id"), Column("n", "bigint"), Column("note"))


class SimulatedKill(BaseException):
    """The process dies: nothing after this point of the attempt runs."""


class MemoryTable:
    """A DynamoDB table behind a transport that can die right after DynamoDB took a batch
    (the worst moment: written, but the writer never hears of it)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.accepted = 0
        self.requests = 0
        self.kill_after: int | None = None
        self.throttle_after: int | None = None  # a storm from this request on
        self.poison: frozenset[str] = frozenset()  # ids DynamoDB refuses (ValidationException)

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        puts = request["RequestItems"][PARTITION_TABLE]
        if self.throttle_after is not None and self.requests >= self.throttle_after:
            raise ThrottledError("ProvisionedThroughputExceededException", "storm")
        if any(put["PutRequest"]["Item"]["id"]["S"] in self.poison for put in puts):
            self.requests += 1
            raise BatchRejectedError("ValidationException", "an item AWS refuses")
        for put in puts:
            item = put["PutRequest"]["Item"]
            self.items[item["id"]["S"]] = item
            self.accepted += 1
        self.requests += 1
        if self.kill_after is not None and self.requests >= self.kill_after:
            self.kill_after = None
            raise SimulatedKill
        return {"UnprocessedItems": {}}


def partition_rows(rows: int) -> list[list[str | None]]:
    """Rows (id, n, note) with duplicates, empty keys and malformed records (as Spark hands
    them over: values None, raw text in the corrupt column)."""
    out: list[list[str | None]] = []
    for record_no in range(1, rows + 1):
        key = f"id{record_no:05d}"
        if record_no % 7 == 0:
            key = f"id{record_no - 3:05d}"  # a later row of an earlier key: it wins
        if record_no % 31 == 0:
            key = ""
        corrupt = f'{key},{record_no},"unbalanced' if record_no % 37 == 0 else None
        values: list[str | None] = ([None, None, None] if corrupt else
                                    [key, str(record_no), "x" * (record_no % 13)])
        out.append([*values, corrupt, str(record_no)])
    return out


def shared_hash(row: list[str | None]) -> int:
    """A small hash space, so that different keys share a hash group too."""
    return zlib.crc32((row[0] or row[3] or "").encode()) % 40


def arrow_batches(rows: list[list[str | None]],
                  key_hash: Callable[[list[str | None]], int] = shared_hash,
                  ) -> list[pa.RecordBatch]:
    """The partition as Spark's mapInArrow sees it: sorted by (key hash, record number)."""

    ordered = sorted(rows, key=lambda r: (key_hash(r), int(r[4] or 0)))
    names = [value_column(i) for i in range(len(COLUMNS))]
    table = pa.table({
        **{name: [r[i] for r in ordered] for i, name in enumerate(names)},
        CORRUPT_COLUMN: [r[3] for r in ordered],
        RECORD_NO: pa.array([int(r[4] or 0) for r in ordered], pa.int64()),
        KEY_HASH: pa.array([key_hash(r) for r in ordered], pa.int64()),
    })
    batches: list[pa.RecordBatch] = table.to_batches(max_chunksize=64)
    return batches


@dataclass
class Attempt:
    """What one attempt of the partition left behind."""

    result: PartitionResult | None
    rejects: list[str]


def run_attempt(batches: list[pa.RecordBatch], table: MemoryTable,
                checkpoints: MemoryCheckpoints | None, checkpoint_every: int) -> Attempt:
    task = PartitionTask(
        columns=COLUMNS, key_schema=KeySchema(KeyAttribute("id", "S")),
        target_table=PARTITION_TABLE, empty_value="omit", delimiter=",", quote_char='"',
        aws=AwsConfig(), retry=RetryPolicy(max_retry_seconds=5), rate_per_task=None,
        rejects_parts_prefix="unused", checkpoint_every=checkpoint_every)
    rejects: list[str] = []

    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds  # simulated time: a retry budget runs out without waiting

    def writer_factory(on_acknowledged: Any) -> BatchWriter:
        return BatchWriter(table, PARTITION_TABLE, on_acknowledged=on_acknowledged,
                           policy=RetryPolicy(max_retry_seconds=5), sleep=sleep,
                           clock=lambda: clock[0])

    def put_rejects(path: Path, _key: str) -> None:
        rejects.extend(path.read_text(encoding="utf-8").splitlines())

    try:
        result = process_partition(0, batches, task, writer_factory, checkpoints, put_rejects)
    except SimulatedKill:
        return Attempt(None, rejects)
    return Attempt(result, rejects)


@pytest.fixture(scope="module")
def uninterrupted() -> tuple[list[pa.RecordBatch], MemoryTable, Attempt]:
    batches = arrow_batches(partition_rows(600))
    table = MemoryTable()
    return batches, table, run_attempt(batches, table, None, checkpoint_every=1)


def checkpoint_counts(checkpoint: Checkpoint) -> tuple[int, int, int, int]:
    return (checkpoint.rows_done, checkpoint.items_written, checkpoint.rows_rejected,
            checkpoint.duplicate_rows)


def file_counts(counts: RowCounts) -> tuple[int, int, int, int]:
    return counts.rows_read, counts.items_written, counts.rows_rejected, counts.duplicate_rows


def test_the_uninterrupted_partition_is_a_sound_reference(
        uninterrupted: tuple[list[pa.RecordBatch], MemoryTable, Attempt]) -> None:
    _, table, attempt = uninterrupted
    assert attempt.result is not None
    counts = attempt.result.counts
    assert counts.identity_holds
    assert counts.rows_skipped_by_resume == 0
    assert counts.duplicate_rows > 0
    assert counts.rows_rejected > 0
    assert table.accepted == counts.items_written == len(table.items)
    assert len(attempt.rejects) == counts.rows_rejected


@pytest.mark.parametrize("checkpoint_every", [1, 2, 5])
@pytest.mark.parametrize("kills", [(1,), (2,), (3,), (6,), (11,), (17,), (4, 3), (9, 1, 5)],
                         ids=lambda k: "kill-after-" + "-".join(map(str, k)))
def test_killed_and_resumed_partition_ends_like_an_uninterrupted_one(
        kills: tuple[int, ...], checkpoint_every: int,
        uninterrupted: tuple[list[pa.RecordBatch], MemoryTable, Attempt]) -> None:
    batches, reference_table, reference = uninterrupted
    assert reference.result is not None
    table = MemoryTable()
    checkpoints = MemoryCheckpoints()
    written_twice = 0
    for kill_after in kills:
        table.kill_after = kill_after
        before = checkpoints.saved.get(0)
        accepted_before = table.accepted
        assert run_attempt(batches, table, checkpoints, checkpoint_every).result is None
        after = checkpoints.saved.get(0)
        # What the attempt wrote beyond its last checkpoint is what the next one writes again.
        covered = (after.items_written if after else 0) - (before.items_written if before else 0)
        written_twice += table.accepted - accepted_before - covered
        assert table.accepted - accepted_before - covered <= (checkpoint_every + 1) * 25

    skipped_rows = checkpoints.saved[0].rows_done if 0 in checkpoints.saved else 0
    final = run_attempt(batches, table, checkpoints, checkpoint_every)

    assert final.result is not None
    assert not final.result.exhausted
    counts = final.result.counts
    assert counts.identity_holds
    assert counts.rows_skipped_by_resume == skipped_rows
    assert table.items == reference_table.items
    assert table.accepted - len(table.items) == written_twice
    # The last checkpoint carries the earlier attempts: it adds up to the whole partition.
    done = checkpoints.saved[0]
    assert done.done
    assert checkpoint_counts(done) == file_counts(reference.result.counts)
    # WCU over the attempts: never less than one uninterrupted run's (hash groups may end
    # after a checkpoint, so part of a rewrite is counted), never more than was sent.
    assert reference.result.counts.wcu_consumed <= done.wcu_consumed <= table.accepted
    # The rejects file of the last attempt is complete: earlier attempts' rejects re-emitted.
    assert sorted(final.rejects) == sorted(reference.rejects)


@pytest.mark.parametrize("checkpoint_every", [1, 2, 3])
@pytest.mark.parametrize("kill_after", [1, 2, 3, 4, 5, 7, 10])
def test_a_checkpoint_covers_every_acknowledged_batch(kill_after: int,
                                                      checkpoint_every: int) -> None:
    # One key per hash group, so every batch ends at a group end: the last checkpoint must be
    # exactly the last K-th acknowledged batch. What a kill costs is then the batches since it
    # (K - 1 acknowledged, plus the one DynamoDB took as the process died), never more.
    rows = [[f"id{i:05d}", str(i), "x", None, str(i)] for i in range(1, 401)]
    batches = arrow_batches(rows, key_hash=lambda row: int(row[4] or 0))
    table = MemoryTable()
    checkpoints = MemoryCheckpoints()
    table.kill_after = kill_after

    assert run_attempt(batches, table, checkpoints, checkpoint_every).result is None

    checkpointed_batches = (kill_after - 1) // checkpoint_every * checkpoint_every
    saved = checkpoints.saved.get(0)
    assert (saved.items_written if saved else 0) == checkpointed_batches * 25
    assert (saved.positions_done if saved else 0) == checkpointed_batches * 25
    assert table.accepted == kill_after * 25


def test_a_finished_partition_is_skipped_whole_and_writes_nothing(
        uninterrupted: tuple[list[pa.RecordBatch], MemoryTable, Attempt]) -> None:
    batches, _reference_table, reference = uninterrupted
    assert reference.result is not None
    table = MemoryTable()
    checkpoints = MemoryCheckpoints()
    run_attempt(batches, table, checkpoints, checkpoint_every=3)
    accepted = table.accepted

    again = run_attempt(batches, table, checkpoints, checkpoint_every=3)

    assert again.result is not None
    assert table.accepted == accepted
    assert again.result.counts.rows_skipped_by_resume == reference.result.counts.rows_read
    assert again.result.counts.identity_holds
    assert checkpoint_counts(checkpoints.saved[0]) == file_counts(reference.result.counts)


def test_a_run_out_of_retry_budget_checkpoints_and_the_next_attempt_completes(
        uninterrupted: tuple[list[pa.RecordBatch], MemoryTable, Attempt]) -> None:
    batches, reference_table, reference = uninterrupted
    assert reference.result is not None
    table = MemoryTable()
    checkpoints = MemoryCheckpoints()
    table.throttle_after = 7

    failed = run_attempt(batches, table, checkpoints, checkpoint_every=2)

    assert failed.result is not None
    assert failed.result.exhausted
    assert failed.result.counts.identity_holds
    assert len(failed.rejects) == failed.result.counts.rows_rejected
    assert not checkpoints.saved[0].done
    table.throttle_after = None
    final = run_attempt(batches, table, checkpoints, checkpoint_every=2)
    assert final.result is not None
    assert final.result.counts.identity_holds
    assert table.items == reference_table.items
    assert checkpoint_counts(checkpoints.saved[0]) == file_counts(reference.result.counts)
    assert sorted(final.rejects) == sorted(reference.rejects)


def test_an_item_dynamodb_refuses_is_counted_once_across_attempts(
        uninterrupted: tuple[list[pa.RecordBatch], MemoryTable, Attempt]) -> None:
    batches, reference_table, reference = uninterrupted
    assert reference.result is not None
    poison = sorted(reference_table.items)[len(reference_table.items) // 3]
    table = MemoryTable()
    table.poison = frozenset({poison})
    checkpoints = MemoryCheckpoints()
    table.kill_after = 15

    assert run_attempt(batches, table, checkpoints, checkpoint_every=1).result is None
    final = run_attempt(batches, table, checkpoints, checkpoint_every=1)

    assert final.result is not None
    counts = final.result.counts
    assert counts.identity_holds
    assert {k: v for k, v in reference_table.items.items() if k != poison} == table.items
    expected = file_counts(reference.result.counts)
    done = checkpoints.saved[0]
    assert checkpoint_counts(done) == (expected[0], expected[1] - 1, expected[2] + 1, expected[3])
    assert sum(poison in line for line in final.rejects) == 1


def test_rows_left_unwritten_keep_their_original_bytes_in_the_rejects_file() -> None:
    note = "café 😀"
    # As Spark hands values over: the file's UTF-8 bytes read as ISO-8859-1.
    as_read = note.encode("utf-8").decode("latin-1")
    rows = [[f"id{i:03d}", str(i), as_read, None, str(i)] for i in range(1, 41)]
    table = MemoryTable()
    table.throttle_after = 0  # a storm from the first request: the retry budget runs out

    attempt = run_attempt(arrow_batches(rows), table, None, checkpoint_every=1)

    assert attempt.result is not None
    assert attempt.result.exhausted
    assert attempt.result.counts.rows_rejected == 40
    assert len(attempt.rejects) == 40
    assert all(line.endswith(f",{note}") for line in attempt.rejects), attempt.rejects[:2]


# -- the real CLI, SIGKILLed ------------------------------------------------------------------

CLI = Path(sys.executable).parent / "dynamo-ingest"
KILL_ROWS = 10_000
KILL_PARTITIONS = 4


class CliRun:
    """``dynamo-ingest run`` in a session of its own. :meth:`kill` SIGKILLs it and everything
    it started, like a lost machine: that includes the PySpark daemon, which moves itself and
    its workers to a process group of their own."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self._log = log.open("wb")
        self.process = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._descendants: dict[int, psutil.Process] = {}

    def running(self) -> bool:
        """True while the CLI lives; also learns which processes it started."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self._descendants.setdefault(child.pid, child)
        return self.process.poll() is None

    def descendants(self) -> list[psutil.Process]:
        """The processes the CLI started that are alive now."""
        self.running()
        return [p for p in self._descendants.values() if p.is_running()]

    def wait(self, timeout_s: float) -> int:
        """Wait for the CLI to exit by itself; returns its exit status."""
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the CLI's process group and every process it started (each checked to be
        the very process seen, not a reused pid), then wait until all are gone."""
        self.running()
        if self.process.returncode is None:
            # Not reaped yet, so its group id cannot belong to anyone else.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        for process in self._descendants.values():
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                if process.is_running() and os.getpgid(process.pid) == process.pid:
                    # A group leader (the PySpark daemon): its group holds the workers it forked.
                    os.killpg(process.pid, signal.SIGKILL)
                process.kill()
        self.process.wait()
        self._log.close()
        _, alive = psutil.wait_procs(list(self._descendants.values()), timeout=30)
        assert not alive, f"processes of the killed CLI still alive: {alive}"


@pytest.fixture
def cli_runs() -> Iterator[Callable[[list[str], dict[str, str], Path], CliRun]]:
    """Starts CLI runs; whatever is still running at the end of the test is killed."""
    started: list[CliRun] = []

    def start(argv: list[str], env: dict[str, str], log: Path) -> CliRun:
        run = CliRun(argv, env, log)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process.returncode is None:
            run.kill()


def resume_file(path: Path, rows: int) -> Path:
    """Small rows with a later duplicate every 50 and an empty key every 401."""
    lines = ["id,n,note"]
    for record_no in range(1, rows + 1):
        key = f"r{record_no:06d}"
        if record_no % 50 == 0:
            key = f"r{record_no - 17:06d}"
        if record_no % 401 == 0:
            key = ""
        lines.append(f"{key},{record_no},{'v' * (record_no % 20)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def wait_until_answered(double: DynamoDBDouble, timeout_s: float = 300.0) -> int:
    """Items accepted once the double has answered every request of a killed run.

    A condition, not a quiet window: the run's processes are gone (``CliRun.kill`` waits for
    that), so no request arrives any more, and a request already in the double's hands keeps
    its connection open in this process until its handler has counted it and closed it. So
    once no connection to the double's port is left, the count is final."""
    port = urlsplit(double.url).port
    me = psutil.Process()
    connections = getattr(me, "net_connections", None) or me.connections  # psutil < 6
    deadline = time.monotonic() + timeout_s
    while any(c.laddr and c.laddr.port == port and c.status != psutil.CONN_LISTEN
              for c in connections(kind="tcp")):
        assert time.monotonic() < deadline, "the double still holds the killed run's requests"
        time.sleep(0.02)
    return double.stats.items_accepted


ONE_WRITE = """
import sys, boto3
client = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1")
client.batch_write_item(RequestItems={sys.argv[2]: [
    {"PutRequest": {"Item": {"id": {"S": "a"}}}}]})
"""


def test_the_wait_after_a_kill_counts_a_write_still_in_the_doubles_hands(aws: str) -> None:
    # The double holds every request 3 s (far past any quiet window): a client killed while
    # its write is held leaves a count that is not final until the double answers it.
    create_table(TABLE, [("id", "S", "HASH")])
    with DynamoDBDouble(aws, FaultPlan(tables=(TABLE,), latency_s=3.0)) as double:
        child = subprocess.Popen([sys.executable, "-c", ONE_WRITE, double.url, TABLE])
        try:
            deadline = time.monotonic() + 300
            while double.stats.requests < 1:
                assert child.poll() is None, "the writer ended before the double held its write"
                assert time.monotonic() < deadline, "the writer never reached the double"
                time.sleep(0.02)
        finally:
            child.kill()
            child.wait()
        assert double.stats.items_accepted == 0  # still held
        assert wait_until_answered(double) == 1


# Both engines: Spark's tasks and the in-process engine's worker processes checkpoint alike.
CLI_ENGINES = [pytest.param("spark", marks=pytest.mark.spark), "local"]


@pytest.mark.slow
@pytest.mark.parametrize("engine", CLI_ENGINES)
def test_cli_killed_at_random_points_resumes_to_the_exact_table(
        aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str,
        cli_runs: Callable[[list[str], dict[str, str], Path], CliRun]) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = resume_file(tmp_path / "in.csv", KILL_ROWS)
    oracle = expected_outcome(source, key_columns=("id",),
                              column_types={"id": "S", "n": "N", "note": "S"})
    distinct = len(oracle.items)
    report_path = tmp_path / "report.json"
    # The default checkpointing (--checkpoint_every auto): a kill must rewrite <= 1 % of rows.
    argv = [str(CLI), "run", "--source_path", str(source), "--target_table", TABLE,
            "--partitions", str(KILL_PARTITIONS), "--report_path", str(report_path), "--quiet",
            "--engine", engine]
    rng = random.Random(20_240_601)
    # Three kills at seeded random progress points, spread over the load. A kill costs at most
    # K batches per running partition (acknowledged after the last checkpoint, or taken by
    # DynamoDB as the process died); auto picks K so that is <= 1 % of the file's rows.
    kill_points = [int(distinct * (0.1 + 0.25 * k + rng.uniform(0.0, 0.15))) for k in range(3)]
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    source_object = SourceObject("", str(source), file_md5(source))

    rewrites: list[int] = []
    inside_a_partition = 0
    with DynamoDBDouble(aws, FaultPlan(tables=(TABLE,))) as double:
        env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": double.url}
        checkpointed = 0
        for attempt, kill_at in enumerate(kill_points, start=1):
            run = cli_runs(argv, env, tmp_path / f"attempt-{attempt}.log")
            while double.stats.items_accepted < kill_at:
                assert run.running(), (
                    f"attempt {attempt} ended before its kill point {kill_at}: "
                    + (tmp_path / f"attempt-{attempt}.log").read_text(errors="replace")[-2000:])
                time.sleep(0.02)
            run.kill()
            accepted = wait_until_answered(double)
            checkpoints = ledger.load_checkpoints(source_object)
            covered = sum(int(c.counts["items_written"]) for c in checkpoints.values())
            # Items written but not covered by a checkpoint are the ones written again.
            rewrites.append(accepted - sum(rewrites) - covered)
            assert covered >= checkpointed, "a checkpoint never moves back"
            checkpointed = covered
            inside_a_partition += sum(1 for c in checkpoints.values()
                                      if not int(c.counts["done"]) and int(c.counts["rows_done"]))

        final = cli_runs(argv, env, tmp_path / "final.log")
        status = final.wait(timeout_s=300)
        total_accepted = double.stats.items_accepted

    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert status == 0, (tmp_path / "final.log").read_text(errors="replace")[-3000:]
    shares = [r / KILL_ROWS for r in rewrites]
    print(f"kill points {kill_points}: items written twice per kill {rewrites} "
          f"({', '.join(f'{s:.2%}' for s in shares)} of {KILL_ROWS} rows)")
    assert all(r <= KILL_ROWS * REWRITE_SHARE for r in rewrites)
    assert report["status"] == "SUCCEEDED_WITH_REJECTS"
    assert inside_a_partition > 0, "no kill landed inside a partition after its checkpoint"
    assert report["rows_skipped_by_resume"] > 0
    # Counts across the attempts add up to the file (the checkpoints carry earlier attempts).
    # WCU too: each attempt's up to its last checkpoint, which here covers exactly the items
    # it wrote once (1 WCU each); what a kill rewrote is counted by the attempt that finished
    # it, so the file's WCU is that of one uninterrupted load, while this run's own is less.
    assert report["file_counts"] == {
        "rows_read": KILL_ROWS, "items_written": distinct,
        "rows_rejected": len(oracle.rejected), "duplicate_rows": oracle.duplicate_rows,
        "wcu_consumed": float(distinct)}
    assert report["wcu_consumed"] < distinct
    assert report["rows_read"] == (report["items_written"] + report["rows_rejected"]
                                   + report["duplicate_rows"] + report["rows_skipped_by_resume"])
    assert scan_table(TABLE) == oracle.items
    # The last run's rejects file holds every rejected row of the file once, earlier attempts'
    # included.
    rejects = read_rejects(report["rejects_path"])[1:]
    assert sorted(int(row[0]) for row in rejects) == sorted(oracle.rejected)
    written_twice = total_accepted - distinct
    assert written_twice == sum(rewrites)


@pytest.mark.spark
def test_restart_ignores_the_checkpoints_of_a_failed_run(run_job: Any, aws: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = resume_file(tmp_path / "in.csv", 2000)
    oracle = expected_outcome(source, key_columns=("id",),
                              column_types={"id": "S", "n": "N", "note": "S"})
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    source_object = SourceObject("", str(source), file_md5(source))
    # A storm after 30 write requests outlasts the 1-second retry budget: the run fails with
    # checkpoints to resume from.
    with dynamodb_double(aws, FaultPlan(fail_after_requests=30, tables=(TABLE,)),
                         monkeypatch) as double:
        failed = run_job(source_path=str(source), partitions=2, max_retry_seconds=1,
                         checkpoint_every=2)
        checkpoints = ledger.load_checkpoints(source_object)
        double.set_plan(FaultPlan(tables=(TABLE,)))
        double.reset_stats()
        restarted = run_job(source_path=str(source), partitions=2, restart=True)
        accepted = double.stats.items_accepted

    assert failed.status == "FAILED"
    assert failed.retryable  # a storm may pass: the callback retries this one
    assert sum(int(c.counts["items_written"]) for c in checkpoints.values()) > 0
    assert restarted.status == "SUCCEEDED_WITH_REJECTS", restarted.error
    assert restarted.counts.rows_skipped_by_resume == 0
    assert restarted.counts.identity_holds
    # Everything is written again, exactly once.
    assert accepted == restarted.counts.items_written == len(oracle.items)
    assert scan_table(TABLE) == oracle.items
    assert restarted.extra["file_counts"] == {
        "rows_read": 2000, "items_written": len(oracle.items),
        "rows_rejected": len(oracle.rejected), "duplicate_rows": oracle.duplicate_rows,
        "wcu_consumed": float(len(oracle.items))}  # the failed run's WCU went with --restart


@pytest.mark.spark
@pytest.mark.parametrize("change", ["another_table", "another_mapping"])
def test_checkpoints_resume_only_a_run_with_the_same_arguments(
        run_job: Any, aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        change: str) -> None:
    # A failed run leaves checkpoints; the next run of the same file writes elsewhere (or
    # other attributes). Resuming would skip rows it never wrote that way: it must start over.
    create_table(TABLE, [("id", "S", "HASH")])
    create_table("other", [("id", "S", "HASH")])
    source = resume_file(tmp_path / "in.csv", 2000)
    oracle = expected_outcome(source, key_columns=("id",),
                              column_types={"id": "S", "n": "N", "note": "S"})
    with dynamodb_double(aws, FaultPlan(fail_after_requests=30, tables=(TABLE,)), monkeypatch):
        failed = run_job(source_path=str(source), partitions=2, max_retry_seconds=1,
                         checkpoint_every=2)
    assert failed.status == "FAILED"
    assert Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE).load_checkpoints(
        SourceObject("", str(source), file_md5(source)))

    again = (run_job(source_path=str(source), partitions=2, target_table="other")
             if change == "another_table" else
             run_job(source_path=str(source), partitions=2, rename="note:remark"))

    assert again.status == "SUCCEEDED_WITH_REJECTS", again.error
    assert again.counts.rows_skipped_by_resume == 0
    assert again.counts.items_written == len(oracle.items)
    if change == "another_table":
        assert scan_table("other") == oracle.items
    else:
        assert all("remark" in item or "note" not in oracle.items[key]
                   for key, item in scan_table(TABLE).items())


@pytest.mark.spark
def test_checkpoints_do_not_resume_into_a_table_created_again(
        run_job: Any, aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A failed run leaves checkpoints; the table is then deleted and created again under the
    # same name: it holds none of the rows the checkpoints cover, so the run must start over.
    create_table(TABLE, [("id", "S", "HASH")])
    source = resume_file(tmp_path / "in.csv", 2000)
    oracle = expected_outcome(source, key_columns=("id",),
                              column_types={"id": "S", "n": "N", "note": "S"})
    with dynamodb_double(aws, FaultPlan(fail_after_requests=30, tables=(TABLE,)), monkeypatch):
        failed = run_job(source_path=str(source), partitions=2, max_retry_seconds=1,
                         checkpoint_every=2)
    assert failed.status == "FAILED"
    client = boto3.client("dynamodb")
    client.delete_table(TableName=TABLE)
    create_table(TABLE, [("id", "S", "HASH")])

    again = run_job(source_path=str(source), partitions=2)

    assert again.status == "SUCCEEDED_WITH_REJECTS", again.error
    assert again.counts.rows_skipped_by_resume == 0
    assert "another instance of the target table" in again.extra["checkpoints_discarded"]
    assert scan_table(TABLE) == oracle.items


def test_auto_checkpointing_bounds_a_kills_rewrites_to_one_percent_of_the_rows() -> None:
    # At most min(partitions, slots) partitions run at once, each rewriting up to K batches.
    for rows, partitions, slots in ((10_000, 4, 2), (58_537, 4, 2), (1_000, 4, 8),
                                    (200, 1, 2), (10_000_000, 16, 8)):
        every = auto_checkpoint_every(rows, partitions)
        running = min(partitions, slots)
        assert every >= 1
        if rows >= 100 * 25 * partitions:  # small files checkpoint every batch (K = 1)
            assert running * every * 25 <= rows * REWRITE_SHARE, (rows, partitions, every)
    assert auto_checkpoint_every(58_537, 4) == 5  # 100 was the old fixed default: 6.4 %


INTERRUPT_ROWS = 10_000
STORM_AFTER = 40  # write requests before the target table throttles until the plan changes


def checkpointed_items(ledger: Ledger, source: SourceObject) -> int:
    return sum(int(c.counts["items_written"]) for c in ledger.load_checkpoints(source).values())


@pytest.mark.slow
@pytest.mark.parametrize("engine", CLI_ENGINES)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_cli_run_reports_its_checkpoints_ends_failed_and_resumes(
        aws: str, tmp_path: Path, signum: signal.Signals, engine: str,
        cli_runs: Callable[[list[str], dict[str, str], Path], CliRun]) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = resume_file(tmp_path / "in.csv", INTERRUPT_ROWS)
    oracle = expected_outcome(source, key_columns=("id",),
                              column_types={"id": "S", "n": "N", "note": "S"})
    report_path = tmp_path / "report.json"
    argv = [str(CLI), "run", "--source_path", str(source), "--target_table", TABLE,
            "--partitions", str(KILL_PARTITIONS), "--report_path", str(report_path), "--quiet",
            "--engine", engine]
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    source_object = SourceObject("", str(source), file_md5(source))
    log = tmp_path / "interrupted.log"
    # A throttling storm after STORM_AFTER requests holds the run in its retries (budget
    # 300 s) until the test interrupts it: the signal lands mid-load on any machine.
    with DynamoDBDouble(aws, FaultPlan(fail_after_requests=STORM_AFTER,
                                       tables=(TABLE,))) as double:
        env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": double.url}
        run = cli_runs(argv, env, log)
        deadline = time.monotonic() + 300
        while (double.stats.items_throttled == 0
               or checkpointed_items(ledger, source_object) == 0):
            assert run.running(), log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the load never reached the storm"
            time.sleep(0.05)
        started = run.descendants()
        if signum == signal.SIGINT:
            # Like Ctrl-C in a terminal: the whole process group (PySpark's JVM ignores it).
            os.killpg(run.process.pid, signum)
        else:
            run.process.send_signal(signum)  # like `kill PID`
        status = run.process.wait(timeout=120)
        # The run stopped what it started (the in-process engine's workers, Spark's Python
        # workers) before it exited: nothing keeps writing after the report.
        _, alive = psutil.wait_procs(started, timeout=30)
        run.kill()
        if engine == "local":
            assert alive == [], f"processes of the interrupted run still alive: {alive}"

        report = json.loads(report_path.read_text(encoding="utf-8"))
        record = ledger.get(source_object)
        checkpointed = checkpointed_items(ledger, source_object)

        double.set_plan(FaultPlan(tables=(TABLE,)))
        final = cli_runs(argv, env, tmp_path / "final.log")
        final_status = final.wait(timeout_s=300)

    name = signal.Signals(signum).name
    output = log.read_text(errors="replace")
    assert status == 128 + signum, output[-3000:]
    assert report["status"] == "FAILED"
    assert report["error"] == f"interrupted ({name})"
    assert "Traceback" not in output, output[-3000:]
    assert report["partitions"] == KILL_PARTITIONS
    # The counts the checkpoints hold, which the identity ties together.
    assert report["items_written"] == checkpointed > 0
    assert report["rows_read"] == (report["items_written"] + report["rows_rejected"]
                                   + report["duplicate_rows"] + report["rows_skipped_by_resume"])
    assert record is not None
    assert record.status == LedgerStatus.FAILED
    assert record.error == f"interrupted ({name})"
    assert record.finished_at is not None
    assert record.report_retryable
    assert record.lease is None
    assert final_status == 0, (tmp_path / "final.log").read_text(errors="replace")[-3000:]
    resumed = json.loads(report_path.read_text(encoding="utf-8"))
    assert resumed["status"] == "SUCCEEDED_WITH_REJECTS"
    assert resumed["rows_skipped_by_resume"] > 0
    assert resumed["rows_read"] == resumed["file_counts"]["rows_read"] == INTERRUPT_ROWS
    assert scan_table(TABLE) == oracle.items


@pytest.mark.parametrize("batches_seen", [0, 1, 4])
def test_a_partition_whose_input_was_cut_short_is_resumed_not_skipped(
        uninterrupted: tuple[list[pa.RecordBatch], MemoryTable, Attempt],
        batches_seen: int) -> None:
    # A task whose Spark job was cancelled (Ctrl-C) or whose driver died can see its input end
    # early as if the partition were complete, and record a done checkpoint over the rows it
    # got (none at all when it had not received its first batch yet). The next attempt must
    # write the rest: skipping the partition whole lost those rows and reported
    # file_counts.rows_read short of rows_read by exactly the rows "skipped by resume".
    batches, _reference_table, reference = uninterrupted
    assert reference.result is not None
    table = MemoryTable()
    checkpoints = MemoryCheckpoints()
    cut = run_attempt(batches[:batches_seen], table, checkpoints, checkpoint_every=2)
    assert cut.result is not None
    assert checkpoints.saved[0].done
    seen = sum(b.num_rows for b in batches[:batches_seen])
    assert checkpoints.saved[0].rows_done == seen

    again = run_attempt(batches, table, checkpoints, checkpoint_every=2)

    assert again.result is not None
    counts = again.result.counts
    assert counts.identity_holds
    assert counts.rows_read == reference.result.counts.rows_read
    assert counts.rows_skipped_by_resume == seen
    assert set(table.items) == set(_reference_table.items)
    assert table.items == _reference_table.items
    done = checkpoints.saved[0]
    assert done.done
    assert done.rows_done == counts.rows_read
    assert done.rows_rejected == reference.result.counts.rows_rejected
