"""Where a file loads: the loader Lambda (the in-process engine) or the Glue job (Spark).

:func:`start_load` is the one place that decides and starts, for every file the dispatcher
(:mod:`trigger_lambda.dispatching`) takes from a table's queue: after the trigger queues it,
after a load ends, and in the scheduled sweep. A file under ``small_file_bytes`` (uncompressed,
estimated) goes to the loader function, asynchronously (``lambda:InvokeFunction``,
``InvocationType=Event``): Glue's start-up and one-minute minimum would cost more than the
load. Bigger files, and every file when no loader function is configured, start a Glue run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from dynamo_ingest.control.load_request import LoadRequest, new_lambda_run_id
from dynamo_ingest.core.errors import DynamoIngestError

Engine = Literal["local", "spark"]
# What the loader Lambda takes by default (README "The Lambda path"): at the in-process
# engine's measured rate such a file loads in well under Glue's start-up and minimum.
DEFAULT_SMALL_FILE_BYTES = 16 * 1024 * 1024
# An object's size is its compressed size; typical CSV exports compress 5-10×, so a
# compressed object counts as this many times its size until its real size is known.
COMPRESSED_SUFFIXES = (".gz", ".gzip", ".bz2", ".zst", ".zstd")
COMPRESSION_FACTOR = 8


class LoadNotStartedError(DynamoIngestError):
    """Neither the loader function nor the Glue job run could be started for a file."""

    def __init__(self, message: str, *, concurrency_limited: bool = False) -> None:
        super().__init__(message)
        self.concurrency_limited = concurrency_limited


@dataclass(frozen=True)
class Routing:
    """Where files go: the Glue job, the loader function ("" = none) and the threshold."""

    glue_job_name: str
    loader_function: str = ""
    small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES


@dataclass(frozen=True)
class StartedLoad:
    """A load that was started: which engine took it and its run id."""

    engine: Engine
    job_run_id: str


def estimated_bytes(key: str, size: int | None) -> int | None:
    """The file's uncompressed size as far as its name tells (None: unknown)."""
    if size is None:
        return None
    return size * COMPRESSION_FACTOR if key.lower().endswith(COMPRESSED_SUFFIXES) else size


def choose_engine(size_bytes: int | None, routing: Routing) -> Engine:
    """``local`` (the loader function) for a file known to be under the threshold, else
    ``spark`` (Glue)."""
    if not routing.loader_function or size_bytes is None:
        return "spark"
    return "local" if size_bytes < routing.small_file_bytes else "spark"


# Called with the loader's request before it is invoked (see start_load).
BeforeInvoke = Callable[[LoadRequest], object]


def start_load(key: str, size: int | None, arguments: Mapping[str, str], routing: Routing, *,
               glue: Any, lambda_: Any, before_invoke: BeforeInvoke | None = None
               ) -> StartedLoad:
    """Start the load of object ``key`` (``size`` bytes as stored) with the job
    ``arguments``; :class:`LoadNotStartedError` says why it could not start.

    ``before_invoke`` lets a caller whose record is in a final state (a retry by hand)
    record the loader's run first: the loader drops a request for a finished file as stale,
    and the invocation is asynchronous."""
    engine = choose_engine(estimated_bytes(key, size), routing)
    try:
        if engine == "local":
            request = LoadRequest(new_lambda_run_id(), dict(arguments))
            if before_invoke is not None:
                before_invoke(request)
            lambda_.invoke(FunctionName=routing.loader_function, InvocationType="Event",
                           Payload=request.to_payload())
            return StartedLoad(engine, request.job_run_id)
        run_id = glue.start_job_run(JobName=routing.glue_job_name,
                                    Arguments=dict(arguments))["JobRunId"]
        return StartedLoad(engine, str(run_id))
    except (ClientError, BotoCoreError) as err:
        limited = (isinstance(err, ClientError) and
                   err.response.get("Error", {}).get("Code") == "ConcurrentRunsExceededException")
        action = ("lambda:InvokeFunction" if engine == "local" else "glue:StartJobRun")
        raise LoadNotStartedError(f"{action} failed: {error_text(err)}",
                                  concurrency_limited=limited) from err


def error_text(err: BaseException) -> str:
    """``Code: Message`` of an AWS error, or the exception's type and text."""
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return f"{type(err).__name__}: {err}"
