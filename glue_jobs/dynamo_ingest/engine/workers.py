"""Worker processes for the in-process engine, talking over pipes only.

``ProcessPoolExecutor`` and ``multiprocessing.Queue`` need POSIX semaphores, which AWS Lambda
does not have (no ``/dev/shm``: ``OSError: [Errno 38] Function not implemented``). A pipe per
worker does the same job here: the parent sends a worker its next job, the worker sends back
the result (or the exception it raised), and the parent waits on all pipes at once. Workers
are spawned, not forked: the caller may hold threads (a progress poller, an embedded moto)
whose locks a fork would copy held.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

# What a worker receives to end (no more jobs).
_DONE = None


class WorkerDiedError(RuntimeError):
    """A worker process ended without sending its job's result (killed, or out of memory)."""


def _serve(connection: Connection, function: Callable[..., Any],
           initializer: Callable[[], None] | None) -> None:
    """A worker's loop: run each job it is sent, send back ``(ok, result or error)``."""
    if initializer is not None:
        initializer()
    while True:
        job = connection.recv()
        if job is _DONE:
            connection.close()
            return
        try:
            outcome = (True, function(*job))
        except BaseException as err:  # the parent re-raises it, as an executor's future would
            outcome = (False, err)
        try:
            connection.send(outcome)
        except Exception as err:  # an exception that cannot be pickled: send what it said
            connection.send((False, RuntimeError(f"{outcome[1]!r} ({err})")))


def run_in_processes(function: Callable[..., Any], jobs: Sequence[tuple[Any, ...]],
                     workers: int, initializer: Callable[[], None] | None = None) -> list[Any]:
    """``[function(*job) for job in jobs]`` on ``workers`` spawned processes, in job order.

    The first job that raises stops the rest: running workers are terminated and its
    exception is raised here (so is a stop request arriving while the parent waits)."""
    context = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(jobs)
    pending = iter(range(len(jobs)))
    running: dict[Connection, tuple[Any, int]] = {}
    processes = []
    try:
        for _ in range(min(workers, len(jobs))):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, function, initializer),
                                      daemon=True)
            process.start()
            child.close()
            processes.append(process)
            _send_next(parent, process, pending, jobs, running)
        while running:
            for connection in wait(list(running)):
                assert isinstance(connection, Connection)
                process, index = running.pop(connection)
                results[index] = _received(connection, process, index)
                _send_next(connection, process, pending, jobs, running)
        return results
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _send_next(connection: Connection, process: Any, pending: Any,
               jobs: Sequence[tuple[Any, ...]],
               running: dict[Connection, tuple[Any, int]]) -> None:
    index = next(pending, None)
    if index is None:
        connection.send(_DONE)
        return
    connection.send(jobs[index])
    running[connection] = (process, index)


def _received(connection: Connection, process: Any, index: int) -> Any:
    try:
        ok, value = connection.recv()
    except EOFError as err:
        raise WorkerDiedError(f"worker {process.pid} ended (exit code {process.exitcode}) "
                              f"before returning job {index}") from err
    if not ok:
        raise value
    return value


__all__ = ["WorkerDiedError", "run_in_processes"]
