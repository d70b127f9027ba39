"""Worker processes for the in-process engine, talking over pipes only.

``ProcessPoolExecutor`` and ``multiprocessing.Queue`` need POSIX semaphores, which AWS Lambda
does not have (no ``/dev/shm``: ``OSError: [Errno 38] Function not implemented``). A pipe per
worker does the same job here: the parent sends a worker its next job, the worker sends back
the result (or the exception it raised), and the parent waits on all pipes at once. Workers
are spawned, not forked: the caller may hold threads (a progress poller, an embedded moto)
whose locks a fork would copy held.

A worker dies with the process that started it, however that one dies (SIGKILL, out of
memory): on Linux each worker asks the kernel for SIGKILL when its parent ends
(``PR_SET_PDEATHSIG``), then checks that its parent is still the one that spawned it (it may
have died between the spawn and the request). An orphan would otherwise go on writing items,
checkpoints and rejects parts while the next run of the file resumes over them. The kernel
sends the signal when the *thread* that spawned the worker ends: :func:`run_in_processes`
spawns them and does not return (nor raise) before every one of them has ended, so that
thread outlives them.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from typing import Any

# What a worker receives to end (no more jobs).
_DONE = None
# prctl(2)'s option: the signal this process gets when its parent (thread) ends.
_PR_SET_PDEATHSIG = 1


class WorkerDiedError(RuntimeError):
    """A worker process ended without sending its job's result (killed, or out of memory)."""


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (its parent) ends, or now if it already has.

    Linux only (``PR_SET_PDEATHSIG``); elsewhere a worker outlives a killed parent until its
    pipe breaks (the next job it would receive or result it would send)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:
        # The parent died before the request: this process is already an orphan.
        os._exit(1)


def _serve(connection: Connection, function: Callable[..., Any],
           initializer: Callable[[], None] | None, parent_pid: int) -> None:
    """A worker's loop: run each job it is sent, send back ``(ok, result or error)``."""
    die_with_parent(parent_pid)
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


@contextmanager
def _main_module_left_out() -> Iterator[None]:
    """Spawn a worker without running the parent's main module in it.

    A spawned child runs the parent's ``__main__`` again (as ``__mp_main__``, by its
    ``__spec__`` or ``__file__``) so that functions defined there can be unpickled. Ours are
    the engine's, never the main module's, which is the CLI (0.25 CPU-s of imports in each
    worker: the CLI and everything it imports), the Glue entry script (Spark's) or the Lambda
    runtime's bootstrap: each worker would pay for it, and the last is not ours to run twice.
    Hidden while the child's start-up data is taken (at ``Process.start``), then restored."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {name: main.__dict__[name] for name in ("__spec__", "__file__")
             if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def run_in_processes(function: Callable[..., Any], jobs: Sequence[tuple[Any, ...]],
                     workers: int, initializer: Callable[[], None] | None = None) -> list[Any]:
    """``[function(*job) for job in jobs]`` on ``workers`` spawned processes, in job order.

    ``function`` and ``initializer`` must be importable from a module other than ``__main__``
    (the workers do not run the main module). The first job that raises stops the rest:
    running workers are terminated and its exception is raised here (so is a stop request
    arriving while the parent waits)."""
    for given in (function, initializer):
        if given is not None and getattr(given, "__module__", None) == "__main__":
            raise ValueError(f"{given!r} is defined in __main__, which the workers do not "
                             "import: define it in a module")
    context = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(jobs)
    pending = iter(range(len(jobs)))
    running: dict[Connection, tuple[Any, int]] = {}
    processes = []
    try:
        for _ in range(min(workers, len(jobs))):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, daemon=True,
                                      args=(child, function, initializer, os.getpid()))
            with _main_module_left_out():
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


__all__ = ["WorkerDiedError", "die_with_parent", "run_in_processes"]
