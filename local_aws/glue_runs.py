"""Glue's ``MaxConcurrentRuns``, enforced the way Glue does, over moto's job runs.

moto applies the limit only while its state manager holds every run in one state; in the
local flow a run is going from ``StartJobRun`` until the flow has executed it and delivered
its end. :class:`ConcurrentGlue` wraps a moto Glue client: ``start_job_run`` refuses with
``ConcurrentRunsExceededException`` (Glue's code and message) while the job already has
``MaxConcurrentRuns`` runs going; every other call goes to moto unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

CONCURRENT_RUNS_EXCEEDED = "ConcurrentRunsExceededException"


@dataclass(frozen=True)
class GoingRun:
    """A run Glue would report RUNNING: started, not yet executed to its end."""

    job_name: str
    run_id: str
    arguments: Mapping[str, str]


def concurrent_runs_exceeded(job_name: str, limit: int) -> ClientError:
    """The error Glue's StartJobRun answers when the job's runs are at its limit."""
    return ClientError(
        {"Error": {"Code": CONCURRENT_RUNS_EXCEEDED,
                   "Message": f"Concurrent runs exceeded for {job_name}: the job allows "
                              f"{limit} run(s) at once"}}, "StartJobRun")


class ConcurrentGlue:
    """A Glue client whose ``start_job_run`` enforces ``MaxConcurrentRuns``."""

    def __init__(self, glue: Any) -> None:
        self._glue = glue
        self._lock = threading.Lock()
        self._going: dict[str, GoingRun] = {}
        self.refusals = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._glue, name)

    def _limit(self, job_name: str) -> int:
        job = self._glue.get_job(JobName=job_name)["Job"]
        return int((job.get("ExecutionProperty") or {}).get("MaxConcurrentRuns") or 1)

    def start_job_run(self, *, JobName: str, Arguments: Mapping[str, str] | None = None,  # noqa: N803
                      **kwargs: Any) -> dict[str, Any]:
        """Glue's StartJobRun, refused at the job's concurrency limit."""
        limit = self._limit(JobName)
        with self._lock:
            if sum(1 for r in self._going.values() if r.job_name == JobName) >= limit:
                self.refusals += 1
                raise concurrent_runs_exceeded(JobName, limit)
            answer: dict[str, Any] = self._glue.start_job_run(
                JobName=JobName, Arguments=dict(Arguments or {}), **kwargs)
            run_id = str(answer["JobRunId"])
            self._going[run_id] = GoingRun(JobName, run_id, dict(Arguments or {}))
        return answer

    def adopt(self, job_name: str, run_id: str, arguments: Mapping[str, str]) -> None:
        """Count a run started before this client existed (a flow started again) as going."""
        with self._lock:
            self._going.setdefault(run_id, GoingRun(job_name, run_id, dict(arguments)))

    def going(self) -> list[GoingRun]:
        """The runs going now, oldest first."""
        with self._lock:
            return list(self._going.values())

    def ended(self, run_id: str) -> None:
        """The run reached its end (SUCCEEDED, FAILED, …): its slot is free."""
        with self._lock:
            self._going.pop(run_id, None)
