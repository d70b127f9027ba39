"""The in-process engine: the Spark path's load without a JVM, for files small enough that
starting Spark would cost more than loading them.

It does what :func:`dynamo_ingest.job.run` asks of Spark, in the same terms:

1. split the file with :class:`dynamo_ingest.engine.records.RecordSplitter` (the records and record
   numbers Spark's reader gives);
2. hash each record's key exactly as :func:`dynamo_ingest.spark.read.key_hash` does (Spark's
   ``xxhash64``, seed 42, of the same columns) and pick its partition as Spark's
   ``repartition`` does (Murmur3 of that hash, seed 42, modulo the partition count), spilling
   each partition's records to its own temporary file;
3. sort each partition by (key hash, record number) with an external sort (sorted runs of at
   most :data:`RUN_RECORDS` records, merged from disk), so memory does not grow with the file;
4. feed the sorted records to :func:`dynamo_ingest.engine.partition_run.run_partition` as the Arrow
   batches a Spark task would receive, one worker process per core, each partition with its
   share of the global write budget.

Partitions, their order and so checkpoints and rejects files are those of the Spark engine;
resume still compares the engine (see :func:`engine_fingerprint`).
"""

from __future__ import annotations

import heapq
import logging
import os
import pickle
import re
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import IO, Any, BinaryIO

from dynamo_ingest.core.catalog import CsvSchema
from dynamo_ingest.core.errors import DynamoIngestError
from dynamo_ingest.core.mapping import KeyHashPart
from dynamo_ingest.core.report import RowCounts
from dynamo_ingest.engine.layout import CORRUPT_COLUMN, KEY_HASH, RECORD_NO, value_column
from dynamo_ingest.engine.pipeline import PartitionResult, PartitionTask
from dynamo_ingest.engine.records import Dialect, RecordSplitter

LOG = logging.getLogger(__name__)
# Records one sorted run holds in memory (a few hundred bytes each for typical rows).
RUN_RECORDS = 100_000
# Records held while spilling, over all partitions.
SPILL_RECORDS = 50_000
# Rows per Arrow batch handed to the pipeline (Spark's Arrow batches hold 10,000 too).
BATCH_ROWS = 10_000
# Spark's seed for xxhash64() and for the Murmur3 hash that repartition() applies.
SPARK_SEED = 42
_MASK64 = (1 << 64) - 1
# What Java's Double.parseDouble accepts in decimal (Spark's cast of a string to double), and
# the special words Spark's cast adds; anything else is null, which the hash skips.
_JAVA_DOUBLE = re.compile(r"[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[fFdD]?")
_SPARK_SPECIALS = {"inf": "inf", "+inf": "inf", "infinity": "inf", "+infinity": "inf",
                   "-inf": "-inf", "-infinity": "-inf", "nan": "nan"}
# Java's String.trim() (after Spark's regexp strip of the Unicode spaces) drops these too.
_JAVA_TRIM = "".join(chr(code) for code in range(33))

# A spilled record: (key hash, record number, values, corrupt text).
SpilledRecord = tuple[int, int, list[str | None], str | None]


class LocalEngineError(DynamoIngestError):
    """The in-process engine could not read or spill the file."""


class ScratchSpaceError(LocalEngineError):
    """The scratch folder has too little free space for the file's spill (a Lambda's /tmp is
    what it is configured to be: another run meets the same limit)."""

    retryable = False


# Free space the spill always leaves in its folder (for the sort's runs and the rejects).
SCRATCH_RESERVE_BYTES = 16 * 1024 * 1024


def check_scratch_space(directory: Path, needed: int, source: str) -> None:
    """:class:`ScratchSpaceError` unless ``directory`` has ``needed`` bytes free beyond
    :data:`SCRATCH_RESERVE_BYTES`."""
    free = shutil.disk_usage(directory).free
    if free - SCRATCH_RESERVE_BYTES >= needed:
        return
    raise ScratchSpaceError(
        f"{source}: the in-process engine spills the file's records to {directory}, which has "
        f"{free / 2**20:,.0f} MiB free; {needed / 2**20:,.0f} MiB more (and a reserve of "
        f"{SCRATCH_RESERVE_BYTES / 2**20:,.0f} MiB) are needed: give it more space (a "
        "Lambda's ephemeral storage, TMPDIR), or load with --engine spark")


def resolve_engine(requested: str) -> str:
    """The engine a run uses: ``auto`` means ``spark`` until the small-file threshold model
    (the estimate's size and time model at the table's write rate) decides between them."""
    return "spark" if requested == "auto" else requested


def engine_fingerprint(load_fingerprint: str, engine: str) -> str:
    """What resume compares: the load's fingerprint, plus the engine unless it is Spark's
    (whose checkpoints predate the choice). The engines partition alike, but the splitter
    keeps a quoted CRLF that Spark turns into LF, so a key holding one could hash apart:
    checkpoints of one engine are never resumed by the other."""
    return load_fingerprint if engine == "spark" else f"{load_fingerprint}+{engine}"


def worker_count() -> int:
    """Cores this process may use (a 3,008 MB Lambda has 2)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


# -- the key hash, as Spark computes it -----------------------------------------------------


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _java_double(text: str) -> float | None:
    """Spark's ``cast(string as double)`` of an N key's text (its edges already stripped)."""
    text = text.strip(_JAVA_TRIM)
    special = _SPARK_SPECIALS.get(text.lower())
    if special is not None:
        return float(special)
    if not _JAVA_DOUBLE.fullmatch(text):
        return None
    return float(text.rstrip("fFdD").replace("Infinity", "inf"))


def _double_bits(value: float) -> bytes:
    """Java's ``doubleToLongBits`` as 8 little-endian bytes (every NaN is the canonical one)."""
    if value != value:
        return struct.pack("<q", 0x7FF8000000000000)
    return struct.pack("<d", value)


def key_hasher(key_parts: Sequence[KeyHashPart]) -> Callable[[Sequence[str | None]], int]:
    """The function giving a record's ``_key_hash`` from its values (bytes read as
    ISO-8859-1), equal to :func:`dynamo_ingest.spark.read.key_hash`'s Spark column."""
    try:
        import xxhash
    except ImportError as err:
        # The Glue job ships without it: Spark hashes there.
        raise LocalEngineError("the in-process engine needs the xxhash package (a dependency "
                               "of dynamo-ingest); install it, or use --engine spark") from err

    hash64 = xxhash.xxh64_intdigest
    prepared = [(tuple(p if isinstance(p, int) else p.encode("utf-8").decode("latin-1")
                       for p in parts), kind) for parts, kind in key_parts]

    def text(parts: tuple[str | int, ...], values: Sequence[str | None]) -> str | None:
        pieces = []
        for part in parts:
            piece = values[part] if isinstance(part, int) else part
            if piece is None:
                return None  # Spark's concat of a null is null
            pieces.append(piece)
        return "".join(pieces)

    def hashed(values: Sequence[str | None]) -> int:
        seed = SPARK_SEED
        for parts, kind in prepared:
            value = values[parts[0]] if len(parts) == 1 and isinstance(parts[0], int) \
                else text(parts, values)
            if value is None:
                continue  # xxhash64 skips a null column
            if kind == "N":
                decoded = value.encode("latin-1").decode("utf-8", "replace").strip()
                number = _java_double(decoded)
                if number is None:
                    continue
                seed = hash64(_double_bits(0.0 if number == 0 else number), seed)
            else:
                # Spark hashes the string's UTF-8 bytes: the ISO-8859-1 text re-encoded.
                seed = hash64(value.encode("utf-8"), seed)
        return _signed(seed)

    return hashed


def spark_partition(key_hash: int, partitions: int) -> int:
    """The partition ``repartition(partitions, _key_hash)`` gives a row: pmod of Spark's
    ``Murmur3_x86_32.hashLong(key_hash, 42)`` (inlined: it runs once per record)."""
    unsigned = key_hash & _MASK64
    h1 = SPARK_SEED
    for k1 in (unsigned & 0xFFFFFFFF, unsigned >> 32):
        k1 = (k1 * 0xCC9E2D51) & 0xFFFFFFFF
        k1 = ((k1 << 15) | (k1 >> 17)) & 0xFFFFFFFF
        h1 ^= (k1 * 0x1B873593) & 0xFFFFFFFF
        h1 = ((h1 << 13) | (h1 >> 19)) & 0xFFFFFFFF
        h1 = (h1 * 5 + 0xE6546B64) & 0xFFFFFFFF
    h1 ^= 8
    h1 ^= h1 >> 16
    h1 = (h1 * 0x85EBCA6B) & 0xFFFFFFFF
    h1 ^= h1 >> 13
    h1 = (h1 * 0xC2B2AE35) & 0xFFFFFFFF
    h1 ^= h1 >> 16
    return (h1 - (1 << 32) if h1 >= 1 << 31 else h1) % partitions


# -- spilling and the external sort ---------------------------------------------------------


def _dump_all(records: Iterable[SpilledRecord], handle: IO[bytes]) -> int:
    count = 0
    for record in records:
        pickle.dump(record, handle, protocol=pickle.HIGHEST_PROTOCOL)
        count += 1
    return count


def _load_all(path: Path) -> Iterator[SpilledRecord]:
    with open(path, "rb") as handle:
        while True:
            try:
                yield pickle.load(handle)
            except EOFError:
                return


def _sort_key(record: SpilledRecord) -> tuple[int, int]:
    return record[0], record[1]


@dataclass
class ExternalSort:
    """Sorts records by (key hash, record number) holding at most ``run_records`` of them
    while it builds runs, and one per run while it merges them from ``directory``."""

    directory: Path
    run_records: int = RUN_RECORDS
    max_held: int = 0  # the most records held at once (runs being built, heads being merged)
    runs: int = 0
    _paths: list[Path] = field(default_factory=list)

    def sorted(self, records: Iterable[SpilledRecord]) -> Iterator[SpilledRecord]:
        """``records`` in order; the temporary runs are deleted once merged."""
        run: list[SpilledRecord] = []
        for record in records:
            run.append(record)
            self.max_held = max(self.max_held, len(run))
            if len(run) >= self.run_records:
                self._write_run(run)
                run = []
        if not self._paths:
            run.sort(key=_sort_key)
            yield from run
            return
        if run:
            self._write_run(run)
        self.max_held = max(self.max_held, len(self._paths))
        try:
            yield from heapq.merge(*(_load_all(path) for path in self._paths), key=_sort_key)
        finally:
            for path in self._paths:
                path.unlink(missing_ok=True)

    def _write_run(self, run: list[SpilledRecord]) -> None:
        run.sort(key=_sort_key)
        fd, name = tempfile.mkstemp(prefix="run-", suffix=".pickle", dir=self.directory)
        with open(fd, "wb") as handle:
            _dump_all(run, handle)
        self._paths.append(Path(name))
        self.runs += 1


def arrow_batches(records: Iterable[SpilledRecord], width: int,
                  batch_rows: int = BATCH_ROWS) -> Iterator[Any]:
    """The records as the Arrow batches a Spark task receives (columns ``c0…cN``,
    ``_corrupt_record``, ``_record_no``, ``_key_hash``)."""
    import pyarrow as pa

    names = [value_column(i) for i in range(width)]
    schema = pa.schema([*((name, pa.string()) for name in names),
                        (CORRUPT_COLUMN, pa.string()), (RECORD_NO, pa.int64()),
                        (KEY_HASH, pa.int64())])
    chunk: list[SpilledRecord] = []

    def batch() -> Any:
        columns: list[list[Any]] = [[record[2][i] for record in chunk] for i in range(width)]
        columns.append([record[3] for record in chunk])
        columns.append([record[1] for record in chunk])
        columns.append([record[0] for record in chunk])
        return pa.RecordBatch.from_arrays(
            [pa.array(values, type=schema.field(i).type) for i, values in enumerate(columns)],
            schema=schema)

    for record in records:
        chunk.append(record)
        if len(chunk) >= batch_rows:
            yield batch()
            chunk = []
    if chunk:
        yield batch()


# -- the engine -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalLoad:
    """What the engine needs beyond the task: where the file is and how it is laid out."""

    path: str  # a local path, or s3://bucket/key read as a stream
    schema: CsvSchema
    key_parts: tuple[KeyHashPart, ...]
    workers: int
    run_records: int = RUN_RECORDS
    text_bytes: int = 0  # the file's text size (spilled once, about as large)


def load_file(load: LocalLoad, task: PartitionTask,
              open_source: Callable[[str], BinaryIO] | None = None) -> list[PartitionResult]:
    """Load the file; one :class:`PartitionResult` per partition, as the Spark engine's
    ``mapInArrow`` returns, plus one for records the splitter rejected (if any)."""
    with tempfile.TemporaryDirectory(prefix="dynamo-ingest-local-") as scratch:
        directory = Path(scratch)
        check_scratch_space(directory, load.text_bytes, load.path)
        spills, too_long = _spill(load, task, directory, open_source or _open_local)
        with _executor(min(load.workers, task.partitions)) as pool:
            futures = [pool.submit(_partition_worker, task, partition, str(path),
                                   _width(load.schema), load.run_records)
                       for partition, path in enumerate(spills)]
            results = [future.result() for future in futures]
        if too_long:
            results.append(_splitter_rejects(task, too_long, directory))
        return results


def _open_local(path: str) -> BinaryIO:
    if path.startswith("s3://"):
        raise LocalEngineError(f"{path}: the in-process engine reads a local copy; stage the "
                               "object first (the local runtime does) or use --engine spark")
    try:
        return open(path, "rb")
    except OSError as err:
        raise LocalEngineError(f"{path}: cannot open the file ({err})") from err


def _executor(workers: int) -> Executor:
    # One process per core: the per-row work is Python, and threads would share one core.
    # Spawned, not forked: the caller may hold threads (the progress poller, an embedded
    # moto) whose locks a fork would copy held.
    if workers <= 1:
        return ThreadPoolExecutor(max_workers=1)
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


def _spill(load: LocalLoad, task: PartitionTask, directory: Path,
           open_source: Callable[[str], BinaryIO]
           ) -> tuple[list[Path], list[tuple[int, str, list[str | None]]]]:
    """Split, hash and spill every record to its partition's file; returns the files and the
    records the splitter rejected (too long to hold), which no partition receives."""
    schema = load.schema
    dialect = Dialect(schema.delimiter, schema.quote_char, schema.has_header)
    hashed = key_hasher(load.key_parts)
    spill = _Spill([directory / f"partition-{p:05d}.pickle" for p in range(task.partitions)],
                   load.path)
    too_long: list[tuple[int, str, list[str | None]]] = []
    with open_source(load.path) as source:
        splitter = RecordSplitter(source, dialect, _width(schema), source=load.path)
        for record in splitter:
            if record.rejected is not None:
                too_long.append((record.record_no, record.rejected, record.values))
                continue
            key_hash = hashed(record.values)
            spill.add(spark_partition(key_hash, task.partitions),
                      (key_hash, record.record_no, record.values, record.corrupt))
    spill.flush()
    return spill.paths, too_long


class _Spill:
    """Per-partition spill files, written in bursts: at most :data:`SPILL_RECORDS` records
    are held, and no file stays open (a run may have thousands of partitions)."""

    def __init__(self, paths: list[Path], source: str) -> None:
        self.paths = paths
        self._source = source
        self._pending: list[list[SpilledRecord]] = [[] for _ in paths]
        self._held = 0
        for path in paths:
            path.touch()

    def add(self, partition: int, record: SpilledRecord) -> None:
        self._pending[partition].append(record)
        self._held += 1
        if self._held >= SPILL_RECORDS:
            self.flush()

    def flush(self) -> None:
        # A file larger than predicted (or a disk others fill) stops before the disk is full.
        if self.paths:
            check_scratch_space(self.paths[0].parent, 0, self._source)
        for path, pending in zip(self.paths, self._pending, strict=True):
            if pending:
                with open(path, "ab") as handle:
                    _dump_all(pending, handle)
                pending.clear()
        self._held = 0


def _width(schema: CsvSchema) -> int:
    """Fields per record as Spark reads them: a delimiter ending every line adds one."""
    return len(schema.columns) + schema.trailing_delimiter


def _partition_worker(task: PartitionTask, partition: int, spill: str, width: int,
                      run_records: int) -> PartitionResult:
    """One partition in a worker: sort its spill file and write it (top level: picklable)."""
    from dynamo_ingest.engine.partition_run import run_partition

    path = Path(spill)
    sorter = ExternalSort(path.parent, run_records)
    batches = arrow_batches(sorter.sorted(_load_all(path)), width)
    result = run_partition(task, partition, batches)
    path.unlink(missing_ok=True)
    return result


def _splitter_rejects(task: PartitionTask, records: list[tuple[int, str, list[str | None]]],
                      directory: Path) -> PartitionResult:
    """Records too long to hold, as one more rejects part after every partition's."""
    from dynamo_ingest.control.storage import Storage
    from dynamo_ingest.engine.rejects import RejectsFile

    rejects = RejectsFile()
    for record_no, reason, values in records:
        rejects.add(record_no, reason, values)
    path = rejects.close()
    if path is not None:
        Storage(task.aws).put_file(path, task.rejects_part(task.partitions))
        path.unlink(missing_ok=True)
    counts = RowCounts(rows_read=len(records), rows_rejected=len(records))
    return PartitionResult(task.partitions, counts, rejects_written=rejects.count)


__all__ = ["ExternalSort", "LocalLoad", "arrow_batches", "engine_fingerprint",
           "key_hasher", "load_file", "resolve_engine", "spark_partition", "worker_count"]
