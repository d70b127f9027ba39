"""The job with both engines: what the Glue script, ``dynamo-ingest run`` and the local
orchestration call. The run itself is :func:`dynamo_ingest.load.run_load`; this adds the
Spark engine, on Glue's session or a local one (started only when the run chooses Spark).
"""

from __future__ import annotations

from dynamo_ingest.control.interrupt import Interrupt
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.report import RunReport
from dynamo_ingest.load import ProgressCallback, run_load
from dynamo_ingest.spark.engine import spark_engines
from dynamo_ingest.spark.runtime import Runtime


def run(args: JobArguments, runtime: Runtime | None = None, *,
        progress: ProgressCallback | None = None, job_run_id: str | None = None,
        interrupt: Interrupt | None = None) -> RunReport:
    """:func:`~dynamo_ingest.load.run_load` with the in-process and the Spark engine."""
    return run_load(args, spark_engines(runtime), progress=progress, job_run_id=job_run_id,
                    interrupt=interrupt)


__all__ = ["run"]
