"""A load request → the file loaded in this process (``--engine local``) → the one finish
(ledger, move to ``complete/`` or ``error/``, SNS), exactly as a Glue run ends through the
callback.

A load that nears the function's deadline is stopped cleanly (every partition ends at a
record, its written prefix checkpointed) and handed on to a fresh invocation of this function,
which resumes from the checkpoints; a failed load that may succeed on another attempt is
retried the same way. Each hand-on is claimed in the ledger first (the run → RETRYING, the
next run → STARTED), so a re-delivered request of a run already handed on finds the record
moved on and is ignored.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from dynamo_ingest.control.dispatch import Wake
from dynamo_ingest.control.finish import EventFlow, finish_run
from dynamo_ingest.control.interrupt import Interrupt, RunInterruptedError
from dynamo_ingest.control.ledger import (
    NOT_STARTED_STATUSES,
    TERMINAL_STATUSES,
    Ledger,
    LedgerRecord,
    LedgerStatus,
    LoadInProgressError,
    SourceObject,
)
from dynamo_ingest.control.load_request import LoadRequest
from dynamo_ingest.control.queue import record_table, start_claim
from dynamo_ingest.core.arguments import JobArguments, parse_job_arguments
from dynamo_ingest.core.report import RunReport

from loader_lambda.errors import HandOffError
from loader_lambda.settings import Settings

LOG = logging.getLogger(__name__)
ENGINE = "local"
# How often the deadline is looked at while a load runs.
DEADLINE_POLL_S = 0.2

Outcome = Literal["succeeded", "succeeded_with_rejects", "failed", "continued", "retried",
                  "duplicate"]
RunLoad = Callable[[JobArguments, str, Interrupt], RunReport]


class LambdaContext(Protocol):
    """The part of Lambda's context object the loader reads."""

    function_name: str
    invoked_function_arn: str

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before Lambda stops this invocation."""


@dataclass(frozen=True)
class Clients:
    """The boto3 clients the loader uses besides the job's own (created by the handler)."""

    s3: Any
    sns: Any
    lambda_: Any
    # Wakes the dispatcher when a load ends, as the callback does (None: the sweep does it).
    dispatch: Wake | None = None


@dataclass(frozen=True)
class LoaderResult:
    """What one invocation did with its load request."""

    outcome: Outcome
    file: str
    job_run_id: str
    engine: str = ENGINE
    file_location: str | None = None
    next_job_run_id: str | None = None
    detail: str | None = None
    report: dict[str, Any] | None = None  # the run's report (absent: nothing was run)


class DeadlineWatch:
    """Asks the load to stop (``interrupt``) once less than ``margin_s`` of the invocation's
    time is left, from a thread that looks at the context every :data:`DEADLINE_POLL_S`."""

    def __init__(self, context: LambdaContext, margin_s: float, interrupt: Interrupt) -> None:
        self._context = context
        self._margin_ms = margin_s * 1000
        self._interrupt = interrupt
        self._done = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="deadline-watch", daemon=True)

    def _watch(self) -> None:
        while not self._done.is_set():
            left = self._context.get_remaining_time_in_millis()
            if left <= self._margin_ms:
                self.fired = True
                # Before the engine is up the request raises; it stands, and the run's own
                # check stops the load before it writes.
                with contextlib.suppress(RunInterruptedError):
                    self._interrupt.request(f"{left / 1000:.0f} s left before the Lambda's "
                                            "deadline")
                return
            self._done.wait(DEADLINE_POLL_S)

    def __enter__(self) -> DeadlineWatch:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join(timeout=30)


def handle_load(request: LoadRequest, settings: Settings, *, ledger: Ledger, clients: Clients,
                context: LambdaContext, run_load: RunLoad) -> LoaderResult:
    """Load the requested file, then finish it, continue it or retry it."""
    source = SourceObject.from_uri(request.source_path,
                                   request.arguments.get("--source_etag", ""))
    stale = _stale(ledger.get(source), request)
    if stale is not None:
        LOG.info("ignoring load request for %s as run %s: %s", source.uri, request.job_run_id,
                 stale)
        return LoaderResult("duplicate", source.uri, request.job_run_id, detail=stale)
    # Like Glue: the job's default arguments, overridden by the request's.
    args = parse_job_arguments(_argv({**settings.job_default_arguments, **request.arguments,
                                      "--engine": ENGINE}))
    interrupt = Interrupt()
    with DeadlineWatch(context, settings.deadline_margin_s, interrupt) as watch:
        report = run_load(args, request.job_run_id, interrupt)
    if report.status == "FAILED" and watch.fired:
        if request.continuation < settings.max_continuations:
            return replace(_hand_on(request, source, settings, ledger, clients, context,
                                    continuation=True, reason=report.error or "deadline"),
                           report=report.to_dict())
        report.error = (f"stopped before the Lambda's deadline in each of "
                        f"{request.continuation + 1} invocations (MAX_CONTINUATIONS "
                        f"{settings.max_continuations}); load it with --engine spark (Glue)")
    elif (report.status == "FAILED" and report.retryable
            and request.attempt < settings.max_attempts):
        return replace(_hand_on(request, source, settings, ledger, clients, context,
                                continuation=False, reason=report.error or "failed"),
                       report=report.to_dict())
    finished = finish_run(ledger, source, request.job_run_id,
                          succeeded=report.status != "FAILED", error=report.error,
                          flow=EventFlow(clients.s3, clients.sns, settings.sns_topic_arn,
                                         settings.folders),
                          details={"function_name": context.function_name,
                                   "continuations": request.continuation})
    _wake_dispatcher(ledger, source, clients)
    return LoaderResult(finished.outcome, source.uri, request.job_run_id,
                        file_location=finished.file_location, detail=report.error,
                        report=report.to_dict())


def _wake_dispatcher(ledger: Ledger, source: SourceObject, clients: Clients) -> None:
    """The load's slot in its table is free: start what waits in the table's queue."""
    if clients.dispatch is None:
        return
    record = ledger.get(source)
    if record is not None:
        clients.dispatch(record_table(record))


def _argv(arguments: dict[str, str]) -> list[str]:
    argv: list[str] = []
    for name, value in arguments.items():
        argv += [name, value]
    return argv


def _stale(record: LedgerRecord | None, request: LoadRequest) -> str | None:
    """Why ``request`` is not (or no longer) a load to run, or None.

    :class:`LoadInProgressError` (raised, so Lambda delivers the request again later) while a
    run of this request may still be loading: its lease decides once it expires."""
    if record is None or record.status in (LedgerStatus.RECEIVED, *NOT_STARTED_STATUSES):
        return None
    if record.status in TERMINAL_STATUSES:
        return f"the file is already {record.status}"
    if record.job_run_id != request.job_run_id:
        if record.status == LedgerStatus.RETRYING:
            return None  # this request is the run the record is being handed to
        return f"the ledger's current run is {record.job_run_id}"
    if record.status == LedgerStatus.RETRYING:
        return "this run was handed on to a fresh invocation"
    lease = record.lease
    if (lease is not None and lease.run_id == request.job_run_id
            and lease.dead_because(time.time()) is None):
        raise LoadInProgressError(
            f"{record.source.uri}: run {request.job_run_id} is loading it in another "
            f"invocation ({lease.describe(time.time())}); this delivery waits for that one's "
            "lease to end")
    return None


def _hand_on(request: LoadRequest, source: SourceObject, settings: Settings, ledger: Ledger,
             clients: Clients, context: LambdaContext, *, continuation: bool,
             reason: str) -> LoaderResult:
    """Claim the next run of the file in the ledger and start it in a fresh invocation."""
    following = request.handed_on(continuation=continuation)
    what = "continues" if continuation else "is retried"
    # Claimed like a dispatcher's start: if this invocation dies before the next one is
    # invoked, the sweep puts the file back in its queue once the claim is provably dead.
    ledger.mark_retrying(source, request.job_run_id,
                         f"{reason}; {what} as run {following.job_run_id}",
                         claim=start_claim(f"hand-on-{following.job_run_id}"),
                         arguments=request.arguments)
    try:
        clients.lambda_.invoke(FunctionName=context.invoked_function_arn,
                               InvocationType="Event", Payload=following.to_payload())
    except (ClientError, BotoCoreError) as err:
        detail = f"lambda:Invoke of {context.function_name} for {source.uri} failed: {err}"
        ledger.mark_not_started(source, detail, concurrency_limited=False)
        EventFlow(clients.s3, clients.sns, settings.sns_topic_arn).notify(
            "dynamo-ingest: a load could not be handed on",
            {"event": "load not handed on", "file": source.uri,
             "job_run_id": request.job_run_id, "reason": detail})
        # Raised so Lambda delivers this request again; the ledger lets that delivery run.
        raise HandOffError(detail) from err
    ledger.mark_started(source, following.job_run_id, request.arguments)
    LOG.warning("%s: %s; %s as run %s (attempt %d, continuation %d)", source.uri, reason, what,
                following.job_run_id, following.attempt, following.continuation)
    return LoaderResult("continued" if continuation else "retried", source.uri,
                        request.job_run_id, next_job_run_id=following.job_run_id, detail=reason)
