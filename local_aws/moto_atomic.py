"""moto's DynamoDB answering one request at a time, as atomic as DynamoDB's own requests.

moto's server answers requests on parallel threads and its DynamoDB backend takes no lock. A
``TransactWriteItems`` copies each table it writes, checks its conditions, and when one fails
puts the copy back: every write another request made in the meantime is undone, although it
was acknowledged (a dispatcher's winning claim, a finished run). A conditional write's check
and its write are not one step either. DynamoDB applies each request atomically against the
committed state, and the dispatcher's conditional claims rely on that; moto answering its
DynamoDB requests one after another gives the same guarantee.

``python -m local_aws.moto_atomic`` takes ``moto.server``'s options (what
:class:`local_aws.moto_server.MotoServer` starts).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Sequence
from typing import Any

_INSTALLED = "_dynamo_ingest_serial_lock"


def serialize_dynamodb() -> threading.Lock:
    """Make this process's moto answer DynamoDB requests one at a time (once; a second call
    changes nothing). Returns the lock every DynamoDB request holds while moto answers it."""
    from moto.dynamodb.responses import DynamoHandler

    installed: threading.Lock | None = getattr(DynamoHandler, _INSTALLED, None)
    if installed is not None:
        return installed
    lock = threading.Lock()
    answer = DynamoHandler.call_action

    @functools.wraps(answer)
    def call_action(self: DynamoHandler) -> Any:
        with lock:
            return answer(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    setattr(DynamoHandler, _INSTALLED, lock)
    return lock


def main(argv: Sequence[str] | None = None) -> None:
    """moto's server with DynamoDB requests answered one at a time."""
    from moto.server import main as moto_main

    serialize_dynamodb()
    moto_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
