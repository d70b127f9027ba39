"""The endpoints every measured command talks to: a moto server and, in front of it for
DynamoDB, the AWS-like double (null sink or capacity-limited), both child processes."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from local_aws.moto_server import (
    ENDPOINT_VARIABLES,
    MotoServer,
    local_environment,
    stop_process,
)

_START_TIMEOUT_S = 30.0


class EndpointError(Exception):
    """The local endpoints could not be started or driven."""


class LocalEndpoints:
    """moto + the DynamoDB double; ``environment()`` points boto3 and the job at them."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._moto = MotoServer()
        self._double: subprocess.Popen[bytes] | None = None
        self.double_url = ""

    @property
    def moto_url(self) -> str:
        """The moto server's endpoint (S3, Glue, and DynamoDB control calls)."""
        return self._moto.url

    def start(self) -> LocalEndpoints:
        """Start moto, then the double in front of it; wait until both answer."""
        self._moto.start()
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._double = subprocess.Popen(
            [sys.executable, "-m", "local_aws.dynamodb_double", "--upstream", self._moto.url,
             "--null-sink"], stdout=subprocess.PIPE,
            stderr=open(self._log_dir / "double.log", "ab"))  # noqa: SIM115 - closed with the child
        assert self._double.stdout is not None
        ready, _, _ = select.select([self._double.stdout], [], [], _START_TIMEOUT_S)
        line = self._double.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("http"):
            self.stop()
            raise EndpointError(f"the DynamoDB double did not print its URL within "
                                f"{_START_TIMEOUT_S:.0f} s (see {self._log_dir / 'double.log'})")
        self.double_url = line
        return self

    def stop(self) -> None:
        """Stop both children (idempotent)."""
        double, self._double = self._double, None
        if double is not None:
            stop_process(double)
        self._moto.stop()

    def __enter__(self) -> LocalEndpoints:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """This process's environment with every AWS endpoint variable pointing here."""
        env = {k: v for k, v in os.environ.items() if k not in ENDPOINT_VARIABLES}
        env.update(local_environment(self._moto.url))
        env["AWS_ENDPOINT_URL_DYNAMODB"] = self.double_url
        return env

    def _admin(self, method: str, action: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.double_url}/__double/{action}", data=data,
                                         method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def set_plan(self, **plan: Any) -> None:
        """Install a FaultPlan on the double (fresh capacity buckets) and zero its counters."""
        self._admin("POST", "plan", plan)
        self._admin("POST", "reset-stats", {})

    def stats(self) -> dict[str, Any]:
        """The double's counters since the last plan."""
        return dict(self._admin("GET", "stats"))

