"""The event flow on one machine: what AWS would deliver, delivered by hand.

After the caller uploads a CSV under ``incoming/``, :func:`run_local_flow` builds the S3
notification exactly as S3 formats it and calls the trigger handler. A small file the trigger
handed to the loader Lambda (``lambda:Invoke``, received over HTTP by
:class:`~local_aws.lambda_invocations.LambdaInvocations`) is loaded by calling the loader
handler with that payload and a context with a deadline, and again for every invocation it
starts itself (a continuation, a retry). For a big file, it reads back the run the
trigger started (``glue:GetJobRun``: moto keeps runs and their Arguments) and runs the job
with those arguments through the injected ``run_job``; builds the "Glue Job State Change"
event exactly as EventBridge formats it and calls the callback handler; and repeats while the
callback started a retry. moto's own run state is not used (its runs report SUCCEEDED as soon
as they are read): the job's exit code decides.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from botocore.exceptions import ClientError
from dynamo_ingest.control.ledger import Ledger, LedgerRecord, SourceObject
from dynamo_ingest.core.errors import DynamoIngestError

from callback_lambda.handler import handler as callback_handler
from callback_lambda.settings import Settings as CallbackSettings
from loader_lambda.handler import handle as loader_handle
from loader_lambda.handler import handler as loader_handler
from loader_lambda.service import RunLoad
from loader_lambda.settings import Settings as LoaderSettings
from local_aws.lambda_invocations import Invocation, LambdaInvocations
from local_aws.moto_server import LOCAL_REGION, patched_environ
from trigger_lambda.handler import handler as trigger_handler
from trigger_lambda.settings import Settings as TriggerSettings

LOCAL_ACCOUNT = "123456789012"  # moto's default account
RunJob = Callable[[list[str]], int]


class LocalFlowError(DynamoIngestError):
    """The local event flow could not carry a file through (the message says where)."""


# Lambda's longest timeout, which Terraform gives the loader function.
LOADER_TIMEOUT_S = 900
LOADER_FUNCTION = "dynamo-ingest-loader"


@dataclass(frozen=True)
class LocalLambdaContext:
    """The few attributes of Lambda's context object a handler may read; its deadline is
    ``timeout_s`` after it was made, like an invocation's."""

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 512
    timeout_s: float = LOADER_TIMEOUT_S
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the deadline."""
        return max(0, int((self.started + self.timeout_s - time.monotonic()) * 1000))


@dataclass(frozen=True)
class LocalFlowResult:
    """Where the file ended up and what the ledger says about it."""

    record: LedgerRecord
    file_location: str | None
    job_run_ids: tuple[str, ...]
    exit_codes: tuple[int, ...]
    trigger_result: Mapping[str, Any]
    callback_results: tuple[Mapping[str, Any], ...]
    loader_results: tuple[Mapping[str, Any], ...] = ()

    @property
    def engine(self) -> str | None:
        """What loaded the file: local (the loader Lambda) or spark (Glue)."""
        return self.record.engine


def _iso_millis(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def s3_put_event(bucket: str, key: str, etag: str, size: int, *, region: str = LOCAL_REGION,
                 event_time: datetime | None = None, sequencer: str | None = None,
                 version_id: str | None = None) -> dict[str, Any]:
    """An ``ObjectCreated:Put`` notification (event version 2.1) as S3 sends it to Lambda:
    the key URL-encoded with ``+`` for spaces, the ETag unquoted."""
    moment = event_time or datetime.now(UTC)
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size,
                           "eTag": etag.strip('"'),
                           "sequencer": sequencer or f"{int(moment.timestamp() * 1e9):018X}"}
    if version_id:
        obj["versionId"] = version_id
    request_id = uuid.uuid4().hex[:16].upper()
    return {"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": _iso_millis(moment),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDALOCALDYNAMOINGEST"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": request_id,
                             "x-amz-id-2": uuid.uuid4().hex + uuid.uuid4().hex},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "dynamo-ingest-incoming",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3LOCALOWNER"},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }]}


def glue_state_change_event(job_name: str, job_run_id: str, state: str, message: str, *,
                            region: str = LOCAL_REGION, account: str = LOCAL_ACCOUNT,
                            event_time: datetime | None = None) -> dict[str, Any]:
    """A "Glue Job State Change" event as EventBridge delivers it to a Lambda target."""
    moment = event_time or datetime.now(UTC)
    severity = {"SUCCEEDED": "INFO", "STOPPED": "INFO", "TIMEOUT": "WARN"}.get(state, "ERROR")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Glue Job State Change",
        "source": "aws.glue",
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": {"jobName": job_name, "severity": severity, "state": state,
                   "jobRunId": job_run_id, "message": message},
    }


def ensure_local_job(glue: Any, name: str, *, script_location: str | None = None,
                     role: str = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/dynamo-ingest-glue",
                     max_concurrent_runs: int = 1,
                     default_arguments: Mapping[str, str] | None = None) -> None:
    """Create the Glue job in the emulator unless it exists (the local mirror of terraform)."""
    try:
        glue.get_job(JobName=name)
        return
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "EntityNotFoundException":
            raise LocalFlowError(f"glue:GetJob {name!r} failed: {err}") from err
    glue.create_job(
        Name=name, Role=role, GlueVersion="5.0",
        Command={"Name": "glueetl", "PythonVersion": "3",
                 "ScriptLocation": script_location or f"s3://{name}-scripts/dynamo_ingest_job.py"},
        ExecutionProperty={"MaxConcurrentRuns": max_concurrent_runs},
        DefaultArguments=dict(default_arguments or {}))


def apply_job_options(glue: Any, name: str, *, max_concurrent_runs: int,
                      default_arguments: Mapping[str, str]) -> list[str]:
    """Give the existing Glue job exactly these DefaultArguments and MaxConcurrentRuns, as a
    ``terraform apply`` of changed variables would; returns what changed (``[]``: nothing).

    UpdateJob replaces the whole definition (what it omits is reset), so the job's role,
    command and Glue version are sent back as they are."""
    try:
        job = glue.get_job(JobName=name)["Job"]
    except ClientError as err:
        raise LocalFlowError(f"glue:GetJob {name!r} failed: {err}") from err
    old_args = dict(job.get("DefaultArguments") or {})
    old_limit = (job.get("ExecutionProperty") or {}).get("MaxConcurrentRuns")
    changes = [f"{key} {old_args.get(key, '(unset)')} → {default_arguments.get(key, '(unset)')}"
               for key in sorted(set(old_args) | set(default_arguments))
               if old_args.get(key) != default_arguments.get(key)]
    if old_limit != max_concurrent_runs:
        changes.append(f"MaxConcurrentRuns {old_limit} → {max_concurrent_runs}")
    if changes:
        definition = {k: job[k] for k in ("Role", "Command", "GlueVersion") if k in job}
        definition.update(ExecutionProperty={"MaxConcurrentRuns": max_concurrent_runs},
                          DefaultArguments=dict(default_arguments))
        _update_job(glue, name, definition)
    return changes


def _update_job(glue: Any, name: str, definition: Mapping[str, Any]) -> None:
    """glue:UpdateJob; where the emulator has no UpdateJob (moto 5 answers it with HTTP 500),
    CreateJob with the same name, which moto takes as a new definition of the job (dropping
    the old definition's runs, so a flow carrying on runs under changed options would not
    find them)."""
    try:
        glue.update_job(JobName=name, JobUpdate=dict(definition))
        return
    except ClientError as err:
        if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 500:
            raise LocalFlowError(f"glue:UpdateJob {name!r} failed: {err}") from err
    try:
        glue.create_job(Name=name, **definition)
    except ClientError as err:
        raise LocalFlowError(f"glue:UpdateJob {name!r} is not answered here, and CreateJob "
                             f"could not replace the job: {err}") from err


def _context(function_name: str, region: str) -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name=function_name, aws_request_id=str(uuid.uuid4()),
        invoked_function_arn=f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{function_name}")


LoaderContext = Callable[[str], Any]


def deliver_invocations(invocations: LambdaInvocations, *, loader_settings: LoaderSettings,
                        aws_environ: Mapping[str, str], region: str = LOCAL_REGION,
                        context: LoaderContext | None = None, limit: int = 100,
                        run_load: RunLoad | None = None) -> list[Mapping[str, Any]]:
    """Run the loader handler for every invocation queued (and every one it queues in turn),
    oldest first, each with a fresh context (``context(function_name)``; default: Lambda's
    900 s); returns the handlers' results. At most ``limit`` deliveries (a loop is a bug)."""
    results: list[Mapping[str, Any]] = []
    while (invocation := invocations.take()) is not None:
        if len(results) >= limit:
            raise LocalFlowError(f"more than {limit} loader invocations: the loader keeps "
                                 "handing its load on")
        if invocation.function_name != LOADER_FUNCTION:
            raise LocalFlowError(f"an invocation of {invocation.function_name!r}, expected "
                                 f"the loader {LOADER_FUNCTION!r}")
        results.append(invoke_loader(invocation, loader_settings=loader_settings,
                                     aws_environ=aws_environ, region=region, context=context,
                                     run_load=run_load))
    return results


def invoke_loader(invocation: Invocation, *, loader_settings: LoaderSettings,
                  aws_environ: Mapping[str, str], region: str = LOCAL_REGION,
                  context: LoaderContext | None = None,
                  run_load: RunLoad | None = None) -> Mapping[str, Any]:
    """One loader invocation, as Lambda runs it: the loader handler with the payload, its
    settings as its environment and a fresh context (default: Lambda's 900 s); ``run_load``
    replaces the handler's own way of running the load (a progress bar)."""
    make_context = context or (lambda name: _context(name, region))
    with patched_environ({**aws_environ, **loader_settings.to_env()}):
        made = make_context(invocation.function_name)
        if run_load is None:
            return loader_handler(invocation.payload, made)
        return loader_handle(invocation.payload, made, run_load)


@contextmanager
def lambda_endpoint(aws_environ: Mapping[str, str]) -> Iterator[tuple[LambdaInvocations,
                                                                       dict[str, str]]]:
    """A local Invoke endpoint and ``aws_environ`` with boto3's Lambda endpoint set to it."""
    with LambdaInvocations() as invocations:
        yield invocations, {**aws_environ, "AWS_ENDPOINT_URL_LAMBDA": invocations.url}


def job_argv(job_name: str, job_run_id: str, arguments: Mapping[str, str]) -> list[str]:
    """The argv Glue hands the job script: its reserved ``--JOB_*`` names, then Arguments."""
    argv = ["--JOB_NAME", job_name, "--JOB_RUN_ID", job_run_id]
    for name, value in arguments.items():
        argv += [name, value]
    return argv


def follow_run(*, glue: Any, ledger: Ledger, source: SourceObject, job_name: str, run_id: str,
               callback_settings: CallbackSettings, run_job: RunJob,
               aws_environ: Mapping[str, str], region: str = LOCAL_REGION
               ) -> tuple[list[int], list[Mapping[str, Any]]]:
    """Run a started Glue job run locally, deliver its state change to the callback, and
    follow the retries the callback starts; returns the exit codes and callback results."""
    exit_codes: list[int] = []
    callback_results: list[Mapping[str, Any]] = []
    current_run: str | None = run_id
    defaults = glue.get_job(JobName=job_name)["Job"].get("DefaultArguments") or {}
    while current_run is not None:
        if len(exit_codes) > callback_settings.max_attempts:
            raise LocalFlowError(f"{source.uri}: more runs than MAX_ATTEMPTS "
                                 f"({callback_settings.max_attempts}); the callback keeps retrying")
        run = glue.get_job_run(JobName=job_name, RunId=current_run)["JobRun"]
        # Like Glue: the job's DefaultArguments, overridden by the run's Arguments.
        arguments = {**defaults, **(run.get("Arguments") or {})}
        code = run_job(job_argv(job_name, current_run, arguments))
        exit_codes.append(code)
        current = ledger.get(source)
        if code == 0:
            state, message = "SUCCEEDED", "Job run succeeded"
        else:
            state = "FAILED"
            message = (current.error if current and current.report_job_run_id == current_run
                       and current.error else f"the job exited with code {code}")
        with patched_environ({**aws_environ, **callback_settings.to_env()}):
            outcome = callback_handler(glue_state_change_event(job_name, current_run, state,
                                                               message, region=region),
                                       _context("dynamo-ingest-callback", region))
        callback_results.append(outcome)
        current_run = (outcome.get("new_job_run_id") if outcome.get("outcome") == "retried"
                       else None)
    return exit_codes, callback_results


def _deliver_upload(source: SourceObject, size: int, trigger_settings: TriggerSettings,
                    loader_settings: LoaderSettings | None, aws_environ: dict[str, str],
                    region: str, loader_context: LoaderContext | None
                    ) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]]:
    """The S3 event to the trigger, then whatever it handed to the loader Lambda to the
    loader handler; returns the trigger's result and the loader invocations' results."""
    with lambda_endpoint(aws_environ) as (invocations, env):
        with patched_environ({**env, **trigger_settings.to_env()}):
            trigger_result = trigger_handler(
                s3_put_event(source.bucket, source.key, source.etag, size, region=region),
                _context("dynamo-ingest-trigger", region))
        if not invocations.received:
            return trigger_result, []
        if loader_settings is None:
            raise LocalFlowError(f"the trigger handed {source.uri} to the loader Lambda, but "
                                 "no loader settings were given")
        return trigger_result, deliver_invocations(invocations, loader_settings=loader_settings,
                                                   aws_environ=env, region=region,
                                                   context=loader_context)


def run_local_flow(*, s3: Any, glue: Any, dynamodb: Any, bucket: str, key: str,
                   trigger_settings: TriggerSettings, callback_settings: CallbackSettings,
                   run_job: RunJob, aws_environ: Mapping[str, str] | None = None,
                   region: str = LOCAL_REGION,
                   loader_settings: LoaderSettings | None = None,
                   loader_context: LoaderContext | None = None) -> LocalFlowResult:
    """Carry the uploaded ``s3://bucket/key`` through trigger → loader Lambda, or trigger →
    job → callback (→ retries)."""
    # The handlers read their settings (and, through boto3, aws_environ's endpoint) from the
    # environment, which is patched only for the duration of each call.
    if trigger_settings.glue_job_name != callback_settings.glue_job_name or \
            trigger_settings.ledger_table != callback_settings.ledger_table:
        raise LocalFlowError("the trigger and the callback must share the Glue job and the "
                             f"ledger table, found {trigger_settings} and {callback_settings}")
    head = s3.head_object(Bucket=bucket, Key=key)
    source = SourceObject(bucket, key, str(head["ETag"]))
    ledger = Ledger(dynamodb, trigger_settings.ledger_table)
    base_env = dict(aws_environ or {})
    trigger_result, loader_results = _deliver_upload(
        source, int(head["ContentLength"]), trigger_settings, loader_settings, base_env,
        region, loader_context)
    exit_codes: list[int] = []
    callback_results: list[Mapping[str, Any]] = []
    if not loader_results:
        record = ledger.get(source)
        if record is None or record.job_run_id is None:
            raise LocalFlowError(f"the trigger started no run for {source.uri}: "
                                 f"{trigger_result}")
        exit_codes, callback_results = follow_run(
            glue=glue, ledger=ledger, source=source, job_name=trigger_settings.glue_job_name,
            run_id=record.job_run_id, callback_settings=callback_settings, run_job=run_job,
            aws_environ=base_env, region=region)
    final = ledger.get(source)
    if final is None:
        raise LocalFlowError(f"{source.uri} vanished from ledger table {ledger.table_name!r}")
    return LocalFlowResult(record=final, file_location=final.file_location,
                           job_run_ids=final.job_run_ids, exit_codes=tuple(exit_codes),
                           trigger_result=trigger_result, callback_results=tuple(callback_results),
                           loader_results=tuple(loader_results))
