"""Many files through the local event flow, delivered the way AWS would deliver them.

:class:`StreamFlow` uploads files to ``incoming/`` one right after another and then plays
AWS's part until every file is settled: S3 notifications at least once, some twice, out of
order (:class:`local_aws.s3_events.EventFeed`) to the trigger; Glue's ``MaxConcurrentRuns``
(:class:`local_aws.glue_runs.ConcurrentGlue`); the Glue runs the dispatcher started, executed
through the injected ``run_job``, and their "Glue Job State Change" to the callback; the
loader Lambda's invocations (small files, ``routing.start_load``), received over HTTP by
:class:`local_aws.lambda_invocations.LambdaInvocations` and run through the loader's own
handler, its continuations near the deadline included; the wake-ups the callback and the
loader send the dispatcher (``lambda:Invoke`` of the trigger function); and the scheduled
sweep. Which of the due deliveries comes next is drawn from a seeded generator, so a seed
repeats a run exactly.

The trigger's and the callback's service functions are called with the clients injected (the
Glue client is the concurrency-enforcing one), the way their handlers call them; the loader
runs as its handler, which makes its own clients from the environment.

Its state is AWS's: the ledger, the bucket and the job's runs, so a flow killed midway and
started again with the same files carries on where the first stopped (uploads already there
are not repeated; their pending events are still owed, as S3 would still owe them; a load
going in the loader Lambda is delivered to it again, as Lambda retries an invocation whose
run died, and resumes from its checkpoints).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from dynamo_ingest.control.dispatch import Wake, dispatcher_wake
from dynamo_ingest.control.ledger import (
    TERMINAL_STATUSES,
    Ledger,
    LedgerRecord,
    LedgerStatus,
    SourceObject,
)
from dynamo_ingest.control.load_request import LAMBDA_RUN_PREFIX, LoadRequest
from dynamo_ingest.control.queue import TableQueue, event_time_text
from dynamo_ingest.core.errors import DynamoIngestError

from callback_lambda.events import GlueJobStateChange
from callback_lambda.service import Clients, handle_state_change
from callback_lambda.settings import Settings as CallbackSettings
from loader_lambda.settings import Settings as LoaderSettings
from local_aws.glue_runs import ConcurrentGlue, GoingRun
from local_aws.lambda_invocations import Invocation, LambdaInvocations
from local_aws.moto_server import LOCAL_REGION
from local_aws.orchestration import (
    LoaderContext,
    glue_state_change_event,
    invoke_loader,
    job_argv,
    s3_put_event,
)
from local_aws.s3_events import EVENT_TIME_METADATA, SEQUENCER_METADATA, DeliveryPlan, EventFeed
from trigger_lambda.dispatching import dispatch_request, dispatch_table
from trigger_lambda.service import handle_event, sweep
from trigger_lambda.settings import Settings as TriggerSettings

LOG = logging.getLogger(__name__)
RunJob = Callable[[list[str]], int]
LAMBDA_ASYNC_RETRIES = 2  # Terraform's async_max_retry_attempts
# The dispatcher is a mode of the trigger function (Terraform's <prefix>-trigger).
DISPATCHER_FUNCTION = "dynamo-ingest-trigger"


class StreamFlowError(DynamoIngestError):
    """The local flow cannot settle its files (the message says which and where they are)."""


@dataclass(frozen=True)
class Upload:
    """One file as uploaded: its object and the notification S3 owes for it."""

    path: Path
    source: SourceObject
    event: Mapping[str, Any]


@dataclass
class FlowCounters:
    """What the flow delivered, for the caller's summary and the tests."""

    events_delivered: int = 0
    events_duplicated: int = 0
    events_dead_lettered: int = 0
    runs_executed: int = 0  # Glue runs
    loader_invocations: int = 0  # loader Lambda invocations run (continuations included)
    invocations_dead_lettered: int = 0
    dispatches: int = 0
    sweeps: int = 0
    concurrency_refusals: int = 0
    max_runs_going: int = 0  # Glue runs going at once
    max_loader_requests_waiting: int = 0  # loader invocations accepted, not yet run, at once


@dataclass
class StreamFlow:
    """AWS's part of the event flow for a batch of files, on one machine."""

    s3: Any
    glue: ConcurrentGlue
    sns: Any
    ledger: Ledger
    bucket: str
    trigger_settings: TriggerSettings
    callback_settings: CallbackSettings
    run_job: RunJob
    # Lambda's Invoke API (started by the caller): the loader's loads and the dispatcher's
    # wake-ups arrive there.
    invocations: LambdaInvocations
    loader_settings: LoaderSettings | None = None  # required when the trigger routes to it
    loader_context: LoaderContext | None = None  # default: Lambda's 900 s per invocation
    dispatcher_function: str = DISPATCHER_FUNCTION
    delivery: DeliveryPlan = field(default_factory=DeliveryPlan)
    sweep_every: int = 7  # steps between scheduled sweeps
    counters: FlowCounters = field(default_factory=FlowCounters)
    _feed: EventFeed = field(init=False)
    _lambda: Any = field(init=False)
    _wake: Wake | None = field(init=False)
    _retries: dict[str, int] = field(default_factory=dict)  # by object key and ETag
    _invocation_retries: dict[str, int] = field(default_factory=dict)  # by function, payload
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        if self.trigger_settings.loader_function and self.loader_settings is None:
            raise StreamFlowError(f"the trigger hands small files to the loader function "
                                  f"{self.trigger_settings.loader_function!r}: expected its "
                                  "loader settings, found none")
        self._feed = EventFeed(self.delivery)
        self._rng = random.Random(self.delivery.seed + 1)
        self._lambda = boto3.client("lambda", endpoint_url=self.invocations.url,
                                    region_name=boto3.Session().region_name or LOCAL_REGION)
        self._wake = dispatcher_wake(self._lambda, self.dispatcher_function)

    # --- uploads --------------------------------------------------------------------

    def upload(self, paths: Sequence[Path], prefix: str | None = None) -> list[Upload]:
        """Upload ``paths`` in the order given (their upload order) under the incoming
        prefix, one right after another; a file the bucket or the ledger already holds (a
        flow started again) is not uploaded twice, but its event is still owed."""
        prefix = self.trigger_settings.incoming_prefix if prefix is None else prefix
        uploads: list[Upload] = []
        last: datetime | None = None
        for path in paths:
            key = prefix + path.name
            upload = self._existing(path, key) or self._put(path, key, last)
            uploads.append(upload)
            if upload.event:
                last = datetime.fromisoformat(
                    str(upload.event["Records"][0]["eventTime"]).replace("Z", "+00:00"))
                if self.ledger.get(upload.source) is None:
                    self._feed.add(upload.event)
        self.counters.events_duplicated = self._feed.duplicates
        return uploads

    def _put(self, path: Path, key: str, last: datetime | None) -> Upload:
        # S3 stamps events in milliseconds: files uploaded within one get distinct, ordered
        # times, as the upload order is what the queue must keep.
        moment = datetime.now(UTC)
        if last is not None and moment <= last:
            moment = last + timedelta(milliseconds=1)
        sequencer = f"{time.time_ns():X}"
        body = path.read_bytes()
        answer = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata={
            EVENT_TIME_METADATA: event_time_text(moment), SEQUENCER_METADATA: sequencer})
        source = SourceObject(self.bucket, key, str(answer["ETag"]))
        return Upload(path, source, s3_put_event(self.bucket, key, source.etag, len(body),
                                                 region=LOCAL_REGION, event_time=moment,
                                                 sequencer=sequencer))

    def _existing(self, path: Path, key: str) -> Upload | None:
        """The upload of an earlier flow of this very file (same content), if its object or
        its record is there."""
        etag = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            record = self.ledger.get(SourceObject(self.bucket, key, etag))
            return None if record is None else Upload(path, record.source, {})
        metadata = head.get("Metadata") or {}
        if EVENT_TIME_METADATA not in metadata or str(head["ETag"]).strip('"') != etag:
            return None
        moment = datetime.fromisoformat(metadata[EVENT_TIME_METADATA].replace("Z", "+00:00"))
        source = SourceObject(self.bucket, key, str(head["ETag"]))
        return Upload(path, source, s3_put_event(
            self.bucket, key, source.etag, int(head["ContentLength"]), region=LOCAL_REGION,
            event_time=moment, sequencer=metadata.get(SEQUENCER_METADATA)))

    # --- delivery -------------------------------------------------------------------

    def adopt_going_runs(self) -> int:
        """Take over the loads an earlier (killed) flow had started and not finished: in AWS
        a Glue run would still be running, and Lambda would deliver a loader invocation whose
        run died again; here they run again and resume from their checkpoints."""
        queue = TableQueue(self.ledger, self.trigger_settings.target_table)
        adopted = 0
        for file in queue.snapshot().files:
            record = file.record
            if record is None or record.status != LedgerStatus.STARTED or not record.job_run_id:
                continue
            if record.job_run_id.startswith(LAMBDA_RUN_PREFIX):
                request = LoadRequest(record.job_run_id, record.arguments)
                self.invocations.accept(Invocation(self.trigger_settings.loader_function,
                                                   "Event", json.loads(request.to_payload())))
            else:
                self.glue.adopt(self.trigger_settings.glue_job_name, record.job_run_id,
                                record.arguments)
            adopted += 1
        return adopted

    def settle(self, uploads: Sequence[Upload], max_steps: int = 10_000) -> list[LedgerRecord]:
        """Deliver until every upload is settled (finished and moved out of incoming/);
        returns their final records in upload order."""
        for step in range(max_steps):
            if self._settled(uploads):
                while self.invocations.pending():  # AWS delivers them whatever the flow waits for
                    self._deliver_invocation()
                return [self._final(u) for u in uploads]
            if not self._step(step):
                self._sweep()
                if not self._step(step) and not self._settled(uploads):
                    raise StreamFlowError(self._stuck(uploads))
        raise StreamFlowError(f"not settled after {max_steps} deliveries: {self._stuck(uploads)}")

    def _step(self, step: int) -> bool:
        """Deliver one due thing, chosen at random among those due; False when none is."""
        due: list[Callable[[], None]] = []
        if self._feed:
            due.append(self._deliver_event)
        if self.glue.going():
            due.append(self._execute_run)
        if self.invocations.pending():
            due.append(self._deliver_invocation)
        if not due:
            return False
        if step % self.sweep_every == self.sweep_every - 1:
            self._sweep()
        # Counted before the step too: a run executed in this step (one adopted after a
        # restart, say) has ended by the time the step returns.
        self.counters.max_runs_going = max(self.counters.max_runs_going,
                                           len(self.glue.going()))
        self._rng.choice(due)()
        self.counters.max_runs_going = max(self.counters.max_runs_going,
                                           len(self.glue.going()))
        self.counters.max_loader_requests_waiting = max(
            self.counters.max_loader_requests_waiting,
            self.invocations.pending(self.trigger_settings.loader_function))
        self.counters.concurrency_refusals = self.glue.refusals
        return True

    def _deliver_event(self) -> None:
        event = self._feed.next()
        self.counters.events_delivered += 1
        result = handle_event(event, self.trigger_settings, ledger=self.ledger, glue=self.glue,
                              sns=self.sns, s3=self.s3, lambda_=self._lambda)
        if result.not_started:
            # Lambda retries a failed invocation twice (async_max_retry_attempts), then the
            # event goes to the failed-events queue, where a person finds it.
            obj = event["Records"][0]["s3"]["object"]
            name = f"{obj['key']}#{obj['eTag']}"
            retries = self._retries.get(name, 0)
            if retries < LAMBDA_ASYNC_RETRIES:
                self._retries[name] = retries + 1
                self._feed.add(event)
            else:
                self.counters.events_dead_lettered += 1

    def _deliver_invocation(self) -> None:
        """Run the oldest ``lambda:Invoke`` as Lambda would: a load request in the loader's
        handler, a ``{"dispatch": TABLE}`` in the dispatcher; an invocation that raises is
        retried like Lambda's asynchronous ones, then dead-lettered."""
        invocation = self.invocations.take()
        if invocation is None:
            return
        table = dispatch_request(invocation.payload)
        if invocation.function_name == self.dispatcher_function and table is not None:
            self._dispatch()
            return
        if (invocation.function_name != self.trigger_settings.loader_function
                or self.loader_settings is None):
            raise StreamFlowError(
                f"an invocation of {invocation.function_name!r} with {invocation.payload}: "
                f"expected the loader {self.trigger_settings.loader_function!r} or a dispatch "
                f"request to {self.dispatcher_function!r}")
        self.counters.loader_invocations += 1
        try:
            invoke_loader(invocation, loader_settings=self.loader_settings,
                          aws_environ={"AWS_ENDPOINT_URL_LAMBDA": self.invocations.url},
                          context=self.loader_context)
        except DynamoIngestError as err:
            self._retry_invocation(invocation, err)

    def _retry_invocation(self, invocation: Invocation, err: DynamoIngestError) -> None:
        name = f"{invocation.function_name}#{json.dumps(invocation.payload, sort_keys=True)}"
        retries = self._invocation_retries.get(name, 0)
        if retries < LAMBDA_ASYNC_RETRIES:
            self._invocation_retries[name] = retries + 1
            self.invocations.redeliver(invocation)
            LOG.warning("%s failed (%s): Lambda retries it", invocation.function_name, err)
        else:
            self.counters.invocations_dead_lettered += 1
            LOG.error("%s failed %d times (%s): to the failed-events queue",
                      invocation.function_name, retries + 1, err)

    def _dispatch(self) -> None:
        self.counters.dispatches += 1
        dispatch_table(self.trigger_settings, ledger=self.ledger, glue=self.glue, sns=self.sns,
                       s3=self.s3, bucket=self.bucket, lambda_=self._lambda)

    def _sweep(self) -> None:
        self.counters.sweeps += 1
        sweep(self.trigger_settings, ledger=self.ledger, glue=self.glue, sns=self.sns,
              s3=self.s3, bucket=self.bucket, lambda_=self._lambda)

    def _execute_run(self) -> None:
        run = self._rng.choice(self.glue.going())
        code = self.run_job(self._argv(run))
        self.counters.runs_executed += 1
        self.glue.ended(run.run_id)
        self._finish(run, code)

    def _argv(self, run: GoingRun) -> list[str]:
        defaults = self.glue.get_job(JobName=run.job_name)["Job"].get("DefaultArguments") or {}
        # Like Glue: the job's DefaultArguments, overridden by the run's Arguments.
        return job_argv(run.job_name, run.run_id, {**defaults, **run.arguments})

    def _finish(self, run: GoingRun, code: int) -> None:
        """Deliver the run's state change to the callback, as EventBridge would."""
        record = self.ledger.find(str(run.arguments.get("--source_path", "")))
        if code == 0:
            state, message = "SUCCEEDED", "Job run succeeded"
        else:
            state = "FAILED"
            message = (record.error if record and record.report_job_run_id == run.run_id
                       and record.error else f"the job exited with code {code}")
        change = GlueJobStateChange.from_event(
            glue_state_change_event(run.job_name, run.run_id, state, message))
        clients = Clients(glue=self.glue, s3=self.s3, sns=self.sns, dispatch=self._wake)
        handle_state_change(change, self.callback_settings, ledger=self.ledger,
                            clients=clients)

    # --- settling -------------------------------------------------------------------

    def _final(self, upload: Upload) -> LedgerRecord:
        record = self.ledger.get(upload.source)
        if record is None:
            raise StreamFlowError(f"{upload.source.uri} has no ledger record")
        return record

    def _settled(self, uploads: Sequence[Upload]) -> bool:
        for upload in uploads:
            record = self.ledger.get(upload.source)
            if (record is None or record.status not in TERMINAL_STATUSES
                    or record.file_location == upload.source.uri):
                return False
        return True

    def _stuck(self, uploads: Sequence[Upload]) -> str:
        states = []
        for upload in uploads:
            record = self.ledger.get(upload.source)
            if record is None or record.status not in TERMINAL_STATUSES:
                states.append(f"{upload.source.uri}: "
                              f"{'no record' if record is None else record.status}"
                              f"{'' if record is None or not record.error else ' ' + record.error}")
        return "; ".join(states) or "every file finished but one is still in incoming/"
