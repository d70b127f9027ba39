"""AWS Glue entry script: parse Glue's arguments, build the runtime, call ``run``.

Deployed as the job's ``ScriptLocation``; the ``dynamo_ingest`` library comes with
``--extra-py-files``. Locally ``dynamo-ingest run`` calls the same ``run``.
"""

from __future__ import annotations

import logging
import os
import sys

from dynamo_ingest.core.arguments import parse_job_arguments
from dynamo_ingest.core.errors import DynamoIngestError
from dynamo_ingest.job import run
from dynamo_ingest.spark.runtime import Runtime, glue_runtime, local_runtime


class JobFailedError(DynamoIngestError):
    """The load failed; Glue marks the run FAILED and the callback Lambda takes over."""


def _reserved(argv: list[str], name: str) -> str | None:
    """A Glue-reserved argument such as ``--JOB_RUN_ID`` (our parser ignores them)."""
    for index, value in enumerate(argv):
        if value == f"--{name}" and index + 1 < len(argv):
            return argv[index + 1]
        if value.startswith(f"--{name}="):
            return value.split("=", 1)[1]
    return None


def main(argv: list[str]) -> int:
    """Run the job once; raise :class:`JobFailedError` when the load failed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_job_arguments(argv[1:])
    job_run_id = _reserved(argv, "JOB_RUN_ID")
    runtime: Runtime
    if job_run_id or os.environ.get("GLUE_RUNTIME") == "1":
        runtime = glue_runtime(_reserved(argv, "JOB_NAME"), args.to_glue_arguments())
    else:
        runtime = local_runtime()
    report = run(args, runtime, job_run_id=job_run_id)
    print(report.to_json(), flush=True)
    if report.status == "FAILED":
        raise JobFailedError(report.error or "the load failed")
    runtime.commit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
