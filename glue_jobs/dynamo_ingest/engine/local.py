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
4. feed the sorted records, as they are, to
   :func:`dynamo_ingest.engine.partition_run.run_partition_rows` (the per-row code a Spark task
   runs over its Arrow batches), one worker process per core, each partition with its share
   of the global write budget.

Partitions, their order and so checkpoints and rejects files are those of the Spark engine;
resume still compares the engine (see :func:`engine_fingerprint`).
"""

from __future__ import annotations

import functools
import gc
import heapq
import logging
import marshal
import os
import re
import shutil
import signal
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, BinaryIO

from dynamo_ingest.control.interrupt import Interrupt
from dynamo_ingest.control.storage import ResolvedSource
from dynamo_ingest.core.catalog import CsvSchema
from dynamo_ingest.core.errors import DynamoIngestError
from dynamo_ingest.core.mapping import KeyHashPart
from dynamo_ingest.core.report import RowCounts
from dynamo_ingest.engine.base import LoadPlan, result_row
from dynamo_ingest.engine.pipeline import PartitionResult, PartitionTask
from dynamo_ingest.engine.records import Dialect, RecordSplitter
from dynamo_ingest.engine.workers import run_in_processes

LOG = logging.getLogger(__name__)
# Records one sorted run holds in memory (~850 bytes each for the benchmark's 200-byte rows).
RUN_RECORDS = 200_000
# Rows the plan puts in one partition at most (predicted from the file's bytes per row): half
# a run, so that a partition the key hash or the prediction makes bigger still sorts in
# memory, without writing and merging runs (~3 us per row more, measured at 1M rows).
PARTITION_ROWS = RUN_RECORDS // 2
# Rows a worker process must have to pay for itself. A spawned worker re-imports the engine
# and opens its own connections (~0.8 CPU-s on a busy 2-core machine), and a load split over
# more workers checkpoints more often (auto_checkpoint_every: the rewrite bound is shared by
# the partitions running at once). Measured in the local event flow (README, "The Lambda
# path"): 10,000 rows reach complete/ sooner in one process, 20,000 sooner in two.
ROWS_PER_WORKER = 10_000
# Records held while spilling, over all partitions.
SPILL_RECORDS = 50_000
# Records per marshalled chunk of a spill or run file (a merge holds one chunk per run).
SPILL_CHUNK = 1_000
# marshal's current format; the files are read back by the same interpreter.
MARSHAL_VERSION = 4
_CHUNK_LENGTH = struct.Struct("<I")
# Rows per Arrow batch handed to the pipeline (Spark's Arrow batches hold 10,000 too).
BATCH_ROWS = 10_000
# With a stop flag, records between looks at it, and so rows per batch: a stop waits for at
# most this many rows to be written (a few batches) before the partition ends.
STOP_CHECK_RECORDS = 1000
# Spark's seed for xxhash64() and for the Murmur3 hash that repartition() applies.
SPARK_SEED = 42
_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1
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


def engine_fingerprint(load_fingerprint: str, engine: str) -> str:
    """What resume compares: the load's fingerprint, plus the engine unless it is Spark's
    (whose checkpoints predate the choice). Both engines now read the same values (a quoted
    CRLF too, since Spark is given the line separator) and so hash and partition every key
    alike; still, checkpoints of one engine are not resumed by the other until a test
    interrupts a load on one engine and resumes it on the other."""
    return load_fingerprint if engine == "spark" else f"{load_fingerprint}+{engine}"


def worker_count(predicted_rows: int | None = None) -> int:
    """Partitions a load runs at once: one per core this process may use (a 3,008 MB Lambda
    has 2), but at most one per :data:`ROWS_PER_WORKER` rows of ``predicted_rows`` (None: the
    cores). One means the load runs in this process and spawns no worker."""
    cores = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count() or 1)
    if predicted_rows is None:
        return cores
    return max(1, min(cores, predicted_rows // ROWS_PER_WORKER))


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

    if len(prepared) == 1 and prepared[0][1] != "N" and len(prepared[0][0]) == 1 \
            and isinstance(prepared[0][0][0], int):
        return _one_text_column_hasher(prepared[0][0][0], hash64)

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


def _one_text_column_hasher(index: int, hash64: Callable[[bytes, int], int]
                            ) -> Callable[[Sequence[str | None]], int]:
    """The key hash of the usual key, one text column as it is: :func:`key_hasher`'s general
    function less its loops (it runs once per record)."""
    def hashed(values: Sequence[str | None]) -> int:
        value = values[index]
        if value is None:
            return SPARK_SEED  # xxhash64 skips a null column
        # Spark hashes the string's UTF-8 bytes: the ISO-8859-1 text re-encoded.
        digest = hash64(value.encode("utf-8"), SPARK_SEED)
        return digest - (1 << 64) if digest >= 1 << 63 else digest

    return hashed


def spark_partition(key_hash: int, partitions: int) -> int:
    """The partition ``repartition(partitions, _key_hash)`` gives a row: pmod of Spark's
    ``Murmur3_x86_32.hashLong(key_hash, 42)``."""
    return partitioner()(key_hash, partitions)


@functools.cache
def partitioner() -> Callable[[int, int], int]:
    """:func:`spark_partition` as fast as this interpreter allows (it runs once per record):
    mmh3's C Murmur3 when installed (0.3 µs, against 1.8 µs in Python, per record), else
    :func:`python_spark_partition`."""
    try:
        import mmh3
    except ImportError:
        return python_spark_partition
    hash32 = mmh3.hash

    def partition(key_hash: int, partitions: int) -> int:
        # hashLong mixes the long's low then high 32 bits and finalises with length 8:
        # Murmur3_x86_32 of its 8 little-endian bytes. mmh3 gives it signed, as Java's int,
        # and Python's % is Spark's pmod.
        return hash32(key_hash.to_bytes(8, "little", signed=True), SPARK_SEED) % partitions

    return partition


def python_spark_partition(key_hash: int, partitions: int) -> int:
    """:func:`spark_partition` in Python, unrolled (a third less CPU than the loop over the
    two halves)."""
    unsigned = key_hash & _MASK64
    # A product's low 32 bits only depend on its factors' low 32 bits: the rotations' results
    # are masked once, after their multiplication.
    k1 = ((unsigned & _MASK32) * 0xCC9E2D51) & _MASK32
    k1 = (((k1 << 15) | (k1 >> 17)) * 0x1B873593) & _MASK32
    h1 = SPARK_SEED ^ k1
    h1 = (((h1 << 13) | (h1 >> 19)) * 5 + 0xE6546B64) & _MASK32
    k1 = ((unsigned >> 32) * 0xCC9E2D51) & _MASK32
    k1 = (((k1 << 15) | (k1 >> 17)) * 0x1B873593) & _MASK32
    h1 ^= k1
    h1 = (((h1 << 13) | (h1 >> 19)) * 5 + 0xE6546B64) & _MASK32
    h1 ^= 8
    h1 ^= h1 >> 16
    h1 = (h1 * 0x85EBCA6B) & _MASK32
    h1 ^= h1 >> 13
    h1 = (h1 * 0xC2B2AE35) & _MASK32
    h1 ^= h1 >> 16
    return (h1 - (1 << 32) if h1 >= 1 << 31 else h1) % partitions


# -- spilling and the external sort ---------------------------------------------------------


def _dump_all(records: list[SpilledRecord], handle: IO[bytes]) -> int:
    """Append the records as marshalled chunks, each after its length: one call per chunk,
    not per record, costs a fraction per record, and reading holds one chunk at a time. The
    records are only ints, strings, lists and None, which marshal writes and reads back at
    about half pickle's CPU (the files never leave this run's scratch folder and
    interpreter). ``marshal.load`` of a file reads it in small pieces, hence the lengths."""
    for start in range(0, len(records), SPILL_CHUNK):
        data = marshal.dumps(records[start:start + SPILL_CHUNK], MARSHAL_VERSION)
        handle.write(_CHUNK_LENGTH.pack(len(data)))
        handle.write(data)
    return len(records)


def _load_chunks(path: Path) -> Iterator[list[SpilledRecord]]:
    """The chunks :func:`_dump_all` appended to ``path``, in order."""
    with open(path, "rb") as handle:
        while head := handle.read(_CHUNK_LENGTH.size):
            length = _CHUNK_LENGTH.unpack(head)[0] if len(head) == _CHUNK_LENGTH.size else 0
            data = handle.read(length)
            if not length or len(data) != length:
                raise LocalEngineError(f"{path}: a spill file ends inside a chunk (a chunk of "
                                       f"{length} bytes, {len(data)} left); the scratch folder "
                                       "was changed while the load ran: run it again")
            chunk: list[SpilledRecord] = marshal.loads(data)
            yield chunk


def _load_all(path: Path) -> Iterator[SpilledRecord]:
    """Every record of ``path``, in order."""
    return chain.from_iterable(_load_chunks(path))


def _chunked(records: Iterable[SpilledRecord]) -> Iterator[list[SpilledRecord]]:
    """``records`` in lists of at most :data:`SPILL_CHUNK`."""
    iterator = iter(records)
    while chunk := list(islice(iterator, SPILL_CHUNK)):
        yield chunk


# Records reach the sort in record-number order (the splitter's, kept by the spill and by
# every run), so a stable sort by key hash alone orders them by (key hash, record number):
# an int key instead of a tuple per record, a third of the sort's CPU.
_sort_key = itemgetter(0)


@dataclass
class ExternalSort:
    """Sorts records by (key hash, record number) holding at most ``run_records`` of them
    while it builds runs, and one chunk per run while it merges them from ``directory``.

    The records must arrive in record-number order (see :data:`_sort_key`)."""

    directory: Path
    run_records: int = RUN_RECORDS
    max_held: int = 0  # the most records held at once (runs being built, heads being merged)
    runs: int = 0
    _paths: list[Path] = field(default_factory=list)

    def sorted(self, records: Iterable[SpilledRecord]) -> Iterator[SpilledRecord]:
        """``records`` in order; the temporary runs are deleted once merged."""
        return chain.from_iterable(self.sorted_chunks(_chunked(records)))

    def sorted_chunks(self, chunks: Iterable[list[SpilledRecord]]
                      ) -> Iterator[list[SpilledRecord]]:
        """The records of ``chunks`` in order, as lists (a list per record costs a generator
        step per record: the merge's and the stop check's, done once per list instead)."""
        run: list[SpilledRecord] = []
        for chunk in chunks:
            start = 0
            while start < len(chunk):
                taken = chunk[start:start + self.run_records - len(run)]
                run += taken
                start += len(taken)
                self.max_held = max(self.max_held, len(run))
                if len(run) >= self.run_records:
                    self._write_run(run)
                    run = []
        if not self._paths:
            run.sort(key=_sort_key)
            for start in range(0, len(run), SPILL_CHUNK):
                yield run[start:start + SPILL_CHUNK]
            return
        if run:
            self._write_run(run)
        self.max_held = max(self.max_held, len(self._paths))
        try:
            merged = heapq.merge(*(_load_all(path) for path in self._paths), key=_sort_key)
            yield from _chunked(merged)
        finally:
            for path in self._paths:
                path.unlink(missing_ok=True)

    def _write_run(self, run: list[SpilledRecord]) -> None:
        run.sort(key=_sort_key)
        fd, name = tempfile.mkstemp(prefix="run-", suffix=".marshal", dir=self.directory)
        with open(fd, "wb") as handle:
            _dump_all(run, handle)
        self._paths.append(Path(name))
        self.runs += 1


@contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Python's cyclic garbage collector paused for a per-record loop (re-enabled after).

    The loops allocate a few containers per record (a record's values, its tuple, its item)
    and hold up to a partition of them, none in a cycle: reference counting frees them all,
    while the collector would walk every held container again and again as they pile up
    (half the split's and the sort's CPU at 100,000 held records, benchmarks/README.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- the engine -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalLoad:
    """What the engine needs beyond the task: where the file is and how it is laid out."""

    path: str  # a local path, or s3://bucket/key read as a stream
    schema: CsvSchema
    key_parts: tuple[KeyHashPart, ...]
    workers: int
    run_records: int = RUN_RECORDS
    # Once this file exists, every partition ends its input at the next record: what it
    # wrote is checkpointed as its prefix and a resume continues after it (a stop request).
    stop_flag: str | None = None
    text_bytes: int = 0  # the file's text size (spilled once, about as large)


def load_file(load: LocalLoad, task: PartitionTask,
              open_source: Callable[[str], BinaryIO] | None = None) -> list[PartitionResult]:
    """Load the file; one :class:`PartitionResult` per partition, as the Spark engine's
    ``mapInArrow`` returns, plus one for records the splitter rejected (if any).

    A stop request (SIGINT, SIGTERM: the run's :class:`~dynamo_ingest.control.interrupt.
    Interrupt` raises in this thread) stops the worker processes at once, as Spark's cancelled
    tasks stop: each partition's last checkpoint holds what it wrote, and the next run
    resumes from there."""
    with tempfile.TemporaryDirectory(prefix="dynamo-ingest-local-") as scratch:
        directory = Path(scratch)
        check_scratch_space(directory, load.text_bytes, load.path)
        spills, too_long = _spill(load, task, directory, open_source or _open_local)
        jobs = [(task, partition, str(path), _width(load.schema), load.run_records,
                 load.stop_flag) for partition, path in enumerate(spills)]
        workers = min(load.workers, task.partitions)
        if workers <= 1:
            # In this thread: a stop request interrupts the partition where it is.
            results = [_partition_worker(*job) for job in jobs]
        else:
            results = _in_worker_processes(jobs, workers)
        if too_long:
            results.append(_splitter_rejects(task, too_long, directory))
        return results


def _in_worker_processes(jobs: list[tuple[PartitionTask, int, str, int, int, str | None]],
                         workers: int) -> list[PartitionResult]:
    """The partitions, one worker process per core (the per-row work is Python, and threads
    would share one core), over pipes: a Lambda has no semaphores for an executor's queues
    (see :mod:`dynamo_ingest.engine.workers`). A stop request, or a partition that raised,
    ends the running workers and starts no other partition."""
    results: list[PartitionResult] = run_in_processes(_partition_worker, jobs, workers,
                                                      _ignore_interrupts)
    return results


def _ignore_interrupts() -> None:
    """In a worker: Ctrl-C reaches the whole process group, but only the run's own process
    decides what a stop request does (it ends the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _open_local(path: str) -> BinaryIO:
    if path.startswith("s3://"):
        raise LocalEngineError(f"{path}: the in-process engine reads a local copy; stage the "
                               "object first (the local runtime does) or use --engine spark")
    try:
        return open(path, "rb")
    except OSError as err:
        raise LocalEngineError(f"{path}: cannot open the file ({err})") from err


def _spill(load: LocalLoad, task: PartitionTask, directory: Path,
           open_source: Callable[[str], BinaryIO]
           ) -> tuple[list[Path], list[tuple[int, str, list[str | None]]]]:
    """Split, hash and spill every record to its partition's file; returns the files and the
    records the splitter rejected (too long to hold), which no partition receives."""
    schema = load.schema
    dialect = Dialect(schema.delimiter, schema.quote_char, schema.has_header)
    hashed = key_hasher(load.key_parts)
    partitions = task.partitions
    partition_of = partitioner()
    spill = _Spill([directory / f"partition-{p:05d}.marshal" for p in range(partitions)],
                   load.path)
    pending, held = spill.pending, 0
    too_long: list[tuple[int, str, list[str | None]]] = []
    with open_source(load.path) as source, without_cycle_collection():
        splitter = RecordSplitter(source, dialect, _width(schema), source=load.path)
        # The per-record loop of every in-process load: local names, no call per record
        # beyond the hash and the partition.
        for record_no, values, corrupt, rejected, _, _ in splitter:
            if rejected is not None:
                too_long.append((record_no, rejected, values))
                continue
            key_hash = hashed(values)
            pending[partition_of(key_hash, partitions)].append(
                (key_hash, record_no, values, corrupt))
            held += 1
            if held >= SPILL_RECORDS:
                spill.flush()
                held = 0
    spill.flush()
    return spill.paths, too_long


class _Spill:
    """Per-partition spill files, written in bursts: at most :data:`SPILL_RECORDS` records
    are held, and no file stays open (a run may have thousands of partitions)."""

    def __init__(self, paths: list[Path], source: str) -> None:
        self.paths = paths
        self._source = source
        # Each partition's records not yet written; the caller appends and calls flush()
        # once it holds SPILL_RECORDS.
        self.pending: list[list[SpilledRecord]] = [[] for _ in paths]
        for path in paths:
            path.touch()

    def flush(self) -> None:
        # A file larger than predicted (or a disk others fill) stops before the disk is full.
        if self.paths:
            check_scratch_space(self.paths[0].parent, 0, self._source)
        for path, pending in zip(self.paths, self.pending, strict=True):
            if pending:
                with open(path, "ab") as handle:
                    _dump_all(pending, handle)
                pending.clear()


def _width(schema: CsvSchema) -> int:
    """Fields per record as Spark reads them: a delimiter ending every line adds one."""
    return len(schema.columns) + schema.trailing_delimiter


def _partition_worker(task: PartitionTask, partition: int, spill: str, width: int,
                      run_records: int, stop_flag: str | None = None) -> PartitionResult:
    """One partition in a worker: sort its spill file and write it (top level: picklable)."""
    from dynamo_ingest.engine.partition_run import run_partition_rows

    path = Path(spill)
    sorter = ExternalSort(path.parent, run_records)
    # The sorted records are the pipeline's rows as they are: no Arrow batches in between.
    chunks = _until_stopped(sorter.sorted_chunks(_load_chunks(path)), stop_flag)
    with without_cycle_collection():
        result = run_partition_rows(task, partition, chain.from_iterable(chunks))
    path.unlink(missing_ok=True)
    return result


def _until_stopped(chunks: Iterator[list[SpilledRecord]],
                   stop_flag: str | None) -> Iterator[list[SpilledRecord]]:
    """``chunks`` until ``stop_flag`` exists, looked for every :data:`STOP_CHECK_RECORDS`
    records (the chunks are cut to that length when it is shorter than theirs)."""
    if stop_flag is None:
        yield from chunks
        return
    for chunk in chunks:
        for start in range(0, len(chunk), STOP_CHECK_RECORDS):
            if os.path.exists(stop_flag):
                return
            yield chunk[start:start + STOP_CHECK_RECORDS]


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


__all__ = ["ExternalSort", "LocalEngine", "LocalLoad", "engine_fingerprint",
           "key_hasher", "load_file", "partitioner", "python_spark_partition",
           "spark_partition", "worker_count"]


class LocalEngine:
    """The in-process engine as the run sees it (:class:`dynamo_ingest.engine.base.Engine`):
    its stop request is a file every worker looks for between records."""

    name = "local"

    def __init__(self, run_id: str, predicted_rows: int | None = None) -> None:
        self.stop_flag = str(Path(tempfile.gettempdir()) / f"dynamo-ingest-stop-{run_id}")
        self._workers = worker_count(predicted_rows)

    def parallelism(self) -> int:
        return self._workers

    def arm(self, interrupt: Interrupt) -> None:
        interrupt.arm(Path(self.stop_flag).touch, stop_now_on_signal=True)

    def execute(self, source: ResolvedSource, plan: LoadPlan) -> list[Any]:
        opener = plan.opener()
        load = LocalLoad(plan.text.path, plan.schema, tuple(plan.key_parts), plan.workers,
                         stop_flag=self.stop_flag, text_bytes=plan.text_bytes)
        try:
            return [result_row(result)
                    for result in load_file(load, plan.task, lambda _: opener())]
        finally:
            Path(self.stop_flag).unlink(missing_ok=True)

    def stop(self) -> None:
        # The workers ended at the flag (or with the pool); nothing else runs.
        Path(self.stop_flag).unlink(missing_ok=True)

    def is_permanent(self, err: BaseException) -> bool:
        return False
