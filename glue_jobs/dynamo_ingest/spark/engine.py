"""The Spark engine: read the file with Spark, partition by key hash, and run
:func:`dynamo_ingest.engine.partition_run.run_partition` in every task
(:class:`dynamo_ingest.engine.base.Engine`). Nothing is collected to the driver except one
small row per partition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dynamo_ingest.control.interrupt import Interrupt
from dynamo_ingest.control.storage import ResolvedSource
from dynamo_ingest.engine.base import STATS_FIELDS, Engines, LoadPlan, result_row
from dynamo_ingest.engine.pipeline import PartitionTask
from dynamo_ingest.spark.read import (
    is_unreadable_path,
    partitioned_for_writing,
    read_records,
    reading,
    spark_reads_itself,
    split_in_one_task,
)
from dynamo_ingest.spark.runtime import Runtime

LOG = logging.getLogger(__name__)
SPARK_TYPES = {"int32": "int", "int64": "long", "float64": "double", "bool_": "boolean",
               "string": "string"}
STATS_DDL = ", ".join(f"{name} {SPARK_TYPES[kind]}" for name, kind in STATS_FIELDS)


class SparkEngine:
    """Spark's load: Glue's session, or a local one it starts (and stops on a stop request,
    so that the Python workers of cancelled tasks stop writing before the run reports)."""

    name = "spark"

    def __init__(self, runtime: Runtime | None = None) -> None:
        if runtime is None:
            from dynamo_ingest.spark.runtime import local_runtime

            self._runtime, self._own = local_runtime(), True
        else:
            self._runtime, self._own = runtime, False

    def parallelism(self) -> int:
        return int(self._runtime.spark.sparkContext.defaultParallelism)

    def arm(self, interrupt: Interrupt) -> None:
        interrupt.arm(self._runtime.spark.sparkContext.cancelAllJobs)

    def execute(self, source: ResolvedSource, plan: LoadPlan) -> list[Any]:
        spark = self._runtime.spark
        text = plan.text
        if spark_reads_itself(source.spark_path, text.codec):
            records = read_records(spark, source.spark_path, plan.schema, source.uri,
                                   text.encoding)
        else:
            records = split_in_one_task(spark, plan.opener(), plan.schema)
        ordered = partitioned_for_writing(records, plan.key_parts, plan.task.partitions)
        with reading(source.uri, plan.schema.has_header):
            return list(ordered.mapInArrow(_task_function(plan.task), STATS_DDL).collect())

    def stop(self) -> None:
        if not self._own:
            return
        try:
            self._runtime.spark.stop()
        except Exception as err:  # e.g. the JVM got the signal too and is already gone
            LOG.debug("stopping Spark after the interrupt failed: %s", err)

    def is_permanent(self, err: BaseException) -> bool:
        # A path Hadoop cannot read fails every run alike.
        return is_unreadable_path(err)


def spark_engines(runtime: Runtime | None = None) -> Engines:
    """Both engines, Spark's on ``runtime`` (None: a local session, started when chosen)."""
    return Engines(spark=lambda: SparkEngine(runtime), spark_running=runtime is not None,
                   spark_reads_s3=runtime is not None and runtime.is_glue)


def _task_function(task: PartitionTask) -> Callable[[Iterable[Any]], Iterable[Any]]:
    """The function every Spark task runs over its partition's Arrow batches."""

    def run_partition(batches: Iterable[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext

        from dynamo_ingest.engine.partition_run import run_partition as run_one

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        result = run_one(task, partition, batches)
        yield pa.RecordBatch.from_pylist([result_row(result)], schema=_stats_schema())

    return run_partition


def _stats_schema() -> Any:
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in STATS_FIELDS])


__all__ = ["STATS_DDL", "SparkEngine", "spark_engines"]
