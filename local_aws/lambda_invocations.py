"""Lambda's Invoke API on one machine: asynchronous invocations are accepted over real HTTP
(``AWS_ENDPOINT_URL_LAMBDA``) and kept, for the local orchestration to deliver to our handlers
in this process, as Lambda would run them.

moto's Lambda runs functions in Docker from a deployment zip; our handlers run here instead,
so only the request is needed: which function, and the payload.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from local_aws.served import Served

INVOKE_PATH = "/2015-03-31/functions/"


@dataclass(frozen=True)
class Invocation:
    """One ``lambda:Invoke`` as the caller sent it."""

    function_name: str  # the name, also when the caller passed an ARN
    invocation_type: str
    payload: dict[str, Any]


def function_name(name_or_arn: str) -> str:
    """``arn:aws:lambda:r:a:function:NAME[:qualifier]`` or ``NAME`` → ``NAME``."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn.split(":")[6]
    return name_or_arn


class LambdaInvocations(Served):
    """An HTTP endpoint on ``127.0.0.1`` that answers Invoke like Lambda (202 for ``Event``)
    and queues every invocation; ``url`` is set once started."""

    thread_name = "lambda-invocations"

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[Invocation] = deque()
        self._lock = threading.Lock()
        self.received: list[Invocation] = []

    def take(self) -> Invocation | None:
        """The oldest invocation not yet delivered, or None."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def pending(self, function_name: str | None = None) -> int:
        """How many invocations (of ``function_name``, or of any function) wait to be
        delivered."""
        with self._lock:
            return sum(1 for i in self._queue
                       if function_name is None or i.function_name == function_name)

    def redeliver(self, invocation: Invocation) -> None:
        """Queue a delivered invocation again, as Lambda retries a failed asynchronous one
        (not a new request: ``received`` keeps what callers sent)."""
        with self._lock:
            self._queue.append(invocation)

    def accept(self, invocation: Invocation) -> None:
        """Queue an invocation (the HTTP handler's threads)."""
        with self._lock:
            self._queue.append(invocation)
            self.received.append(invocation)

    def _new_server(self) -> ThreadingHTTPServer:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.inbox = self
        return server


class _Server(ThreadingHTTPServer):
    inbox: LambdaInvocations


class _Handler(BaseHTTPRequestHandler):
    """Invoke (``POST /2015-03-31/functions/NAME/invocations``) as Lambda answers it."""

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if not path.startswith(INVOKE_PATH) or not path.endswith("/invocations"):
            self._reply(404, {"Type": "User", "message": f"no such API: {path}"})
            return
        if kind != "Event":
            # Our functions are only ever invoked asynchronously.
            self._reply(400, {"Type": "User", "message": "only InvocationType Event is "
                              f"delivered locally, found {kind}"})
            return
        name = unquote(path[len(INVOKE_PATH):-len("/invocations")])
        self.server.inbox.accept(Invocation(function_name(name), kind,
                                            json.loads(body or b"{}")))
        self._reply(202, None)

    def _reply(self, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("X-Amzn-ErrorType", "InvalidRequestContentException")
        self.end_headers()
        self.wfile.write(data)
