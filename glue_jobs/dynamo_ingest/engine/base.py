"""What the run hands an engine, and what an engine gives back.

An engine is whatever turns a :class:`LoadPlan` into one stats row per partition: the Spark
engine (:mod:`dynamo_ingest.spark.engine`) and the in-process one
(:class:`dynamo_ingest.engine.local.LocalEngine`). The run (:mod:`dynamo_ingest.load`) knows
them only through :class:`Engine`, so a deployable without Spark (the loader Lambda) imports
no Spark at all; a new engine is one more class with these five methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dynamo_ingest.control.interrupt import Interrupt
from dynamo_ingest.control.storage import ResolvedSource
from dynamo_ingest.core.catalog import CsvSchema
from dynamo_ingest.core.mapping import KeyHashPart
from dynamo_ingest.core.report import RowCounts
from dynamo_ingest.engine.compression import Codec
from dynamo_ingest.engine.layout import read_source_head
from dynamo_ingest.engine.pipeline import PartitionResult, PartitionTask
from dynamo_ingest.engine.source import SourceLimits, SourceOpener

# One row per partition back to the run: the partition, its RowCounts, and its outcome.
STATS_FIELDS = (
    ("partition", "int32"),
    *((name, "float64" if name == "wcu_consumed" else "int64")
      for name in RowCounts.__dataclass_fields__),
    ("exhausted", "bool_"), ("error", "string"), ("rejects_written", "int64"),
)


def result_row(result: PartitionResult) -> dict[str, Any]:
    """A partition's result as its stats row (the shape Spark's ``collect`` returns too)."""
    counts = result.counts
    return {"partition": result.partition,
            **{name: getattr(counts, name) for name in RowCounts.__dataclass_fields__},
            "exhausted": result.exhausted, "error": result.error,
            "rejects_written": result.rejects_written}


@dataclass(frozen=True)
class SourceText:
    """How the source's text is read: where Python reads it, its compression, encoding and
    bounds (see :mod:`dynamo_ingest.engine.source`)."""

    path: str  # a local file (the file itself or the staged copy) or the s3:// object
    s3: Any | None  # the client that reads an s3:// path
    name: str  # the file as messages call it: the user's path or URI
    codec: Codec | None
    encoding: str
    limits: SourceLimits

    def head(self) -> bytes:
        """The first bytes of the text (decompressed, UTF-16 as UTF-8)."""
        return read_source_head(self.path, self.s3, name=self.name, encoding=self.encoding,
                                limits=self.limits)


@dataclass(frozen=True)
class LoadPlan:
    """What an engine does: the task every partition runs, the file's layout and text, and
    where results go."""

    task: PartitionTask
    schema: CsvSchema
    key_parts: list[KeyHashPart]
    rejects_path: str
    predicted_rows: int
    total_rate: float
    workers: int  # partitions that run at once
    text: SourceText
    text_bytes: int  # the source's text size (measured or extrapolated)

    def opener(self) -> SourceOpener:
        """Opens the source's text, in whichever process reads it."""
        text = self.text
        return SourceOpener(text.path, text.name, text.encoding, text.limits,
                            self.task.aws if text.s3 is not None else None)


class Engine(Protocol):
    """Loads a planned file: one stats row (:data:`STATS_FIELDS`) per partition."""

    name: str

    def parallelism(self) -> int:
        """Partitions it runs at once (the plan splits the write budget by it)."""

    def arm(self, interrupt: Interrupt) -> None:
        """Make a stop request (SIGINT/SIGTERM, a Lambda's deadline) stop the load."""

    def execute(self, source: ResolvedSource, plan: LoadPlan) -> list[Any]:
        """Load the file; every partition's stats row."""

    def stop(self) -> None:
        """After a stop request: end what the engine started, so nothing writes on."""

    def is_permanent(self, err: BaseException) -> bool:
        """True when ``err`` would fail every run alike (not worth a retry)."""


@dataclass(frozen=True)
class Engines:
    """The engines a deployable can run. The in-process engine is always there; Spark only
    where the deployable ships it (``spark``: makes the engine, starting Spark if needed)."""

    spark: Callable[[], Engine] | None = None
    # Glue started Spark before the job could choose: `auto` takes it (its start-up is paid).
    spark_running: bool = False
    # Glue's Spark reads s3:// itself; otherwise an s3:// source is staged to a local copy.
    spark_reads_s3: bool = False


__all__ = ["STATS_FIELDS", "Engine", "Engines", "LoadPlan", "SourceText", "result_row"]
