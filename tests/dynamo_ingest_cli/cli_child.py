"""The real CLI in a child process, as a person meets it: on a pseudo-terminal (progress bar,
tables, colours) or with its output piped.

What broke was the terminal handling of the real entry point, which in-process calls never
exercise, so these helpers start ``python -m dynamo_ingest_cli.main`` with the test's
environment (the ``aws`` fixture's moto server) and always reap it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE

from local_aws.resources import ensure_resources

REPO = Path(__file__).resolve().parents[2]
# Generous: a child starts its own Spark, and the suite must pass with both cores busy.
CHILD_TIMEOUT_S = 900.0
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]")
TERMINAL_COLUMNS = 200  # wide enough that no checked table cell folds


@dataclass(frozen=True)
class CliResult:
    """A finished CLI child: its exit status and what it printed (escape codes removed)."""

    returncode: int
    output: str  # stdout and stderr as one stream on a terminal; stdout when piped
    stderr: str = ""

    def report(self) -> dict[str, Any]:
        """The JSON run report the CLI printed last."""
        start = self.output.rindex('{\n  "status"')
        report, _ = json.JSONDecoder().raw_decode(self.output[start:])
        assert isinstance(report, dict)
        return report


def child_environ(**changes: str | None) -> dict[str, str]:
    """This process's environment (the ``aws`` fixture's endpoint) with ``changes``."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dynamo_ingest_cli.main", *args]


def run_on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> CliResult:
    """Run the CLI with a pseudo-terminal as stdin, stdout and stderr; read until it exits."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, TERMINAL_COLUMNS, 0, 0))
    try:
        process = subprocess.Popen(cli_command(*args), stdin=slave, stdout=slave, stderr=slave,
                                   env=env, cwd=cwd, start_new_session=True)
    finally:
        os.close(slave)
    try:
        output = _read_until_exit(master, process)
        return CliResult(process.wait(timeout=60), output)
    finally:
        _reap(process)
        os.close(master)


def _read_until_exit(master: int, process: subprocess.Popen[bytes]) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            # Exited and nothing left to read (Spark's JVM may keep the terminal open a
            # little longer; what the CLI printed is already in).
            if process.poll() is not None:
                return _as_text(b"".join(chunks))
            continue
        try:
            data = os.read(master, 65536)
        except OSError as err:  # EIO: every writer closed the terminal
            if err.errno != errno.EIO:
                raise
            data = b""
        if not data:
            process.wait(timeout=60)
            return _as_text(b"".join(chunks))
        chunks.append(data)
    raise AssertionError(f"the CLI did not exit within {CHILD_TIMEOUT_S:.0f} s; it printed:\n"
                         + _as_text(b"".join(chunks))[-3000:])


def _as_text(data: bytes) -> str:
    return ANSI.sub("", data.decode("utf-8", "replace")).replace("\r\n", "\n")


def _reap(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def run_piped(args: list[str], env: dict[str, str], cwd: Path) -> CliResult:
    """Run the CLI with stdout and stderr on pipes, as in CI or ``| tee log``."""
    completed = subprocess.run(cli_command(*args), env=env, cwd=cwd, capture_output=True,
                               timeout=CHILD_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
    return CliResult(completed.returncode, completed.stdout.decode(), completed.stderr.decode())


BUCKET = "dynamo-ingest-local"


def write_orders(path: Path, rows: int) -> Path:
    """A clean orders CSV: one one-unit item per row, no duplicates, no bad rows."""
    lines = ["orderId,amount,region", *(f"O{n:06d},{n % 97}.5,eu-{n % 3}" for n in range(rows))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def deploy() -> None:
    ensure_resources(bucket=BUCKET, database="dynamo_ingest", target_table="orders",
                     partition_key=("orderId", "S"), sort_key=None,
                     ledger_table=DEFAULT_LEDGER_TABLE)


def table_row(output: str, name: str) -> str:
    """The value cell of a two-column rich table row named ``name``."""
    match = re.search(rf"│ {re.escape(name)}\s*│ (.*?)\s*│", output)
    assert match, f"no row {name!r} in:\n{output}"
    return match.group(1)
