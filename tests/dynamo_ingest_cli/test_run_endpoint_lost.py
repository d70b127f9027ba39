"""A run whose endpoint stops answering mid-load, and a run whose report or rejects path
cannot be written: one line of error, no traceback, and the run report kept.

The endpoint is moto behind a forwarding proxy that serves a fixed number of requests and
then stops listening, so the load loses its endpoint at a point counted in requests (not in
seconds): every later connection is refused, as when the emulator is killed.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.dynamo_ingest_cli.cli_child import child_environ, deploy, run_piped, write_orders

# Enough for the run to start, record itself in the ledger, join the write budget and write
# some batches; far fewer than the load needs (ROWS / 25 batches alone).
SERVED_REQUESTS = 400
ROWS = 20_000


class _DyingEndpoint:
    """Forwards requests to ``upstream`` until ``limit`` are served, then stops listening."""

    def __init__(self, upstream: str, limit: int) -> None:
        self.upstream = upstream
        self.limit = limit
        self.served = 0
        self._lock = threading.Lock()
        self._dead = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Forward(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                endpoint.forward(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Forward

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            alive = self.served < self.limit
            self.served += alive
            if not alive:
                self._dead.set()
        if not alive:
            # Accepted before the listener closed: dropped, as a dying server does.
            request.close_connection = True
            return
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length")}
        upstream = urllib.request.Request(self.upstream + request.path, data=body,
                                          headers=headers, method=request.command)
        try:
            with urllib.request.urlopen(upstream, timeout=60) as answer:
                status, payload, answer_headers = answer.status, answer.read(), answer.headers
        except urllib.error.HTTPError as err:
            status, payload, answer_headers = err.code, err.read(), err.headers
        request.send_response(status)
        for name, value in answer_headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection",
                                    "date", "server"):
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def run(self) -> Iterator[_DyingEndpoint]:
        serving = threading.Thread(target=self.server.serve_forever, daemon=True)
        serving.start()
        closer = threading.Thread(target=self._close_when_dead, daemon=True)
        closer.start()
        try:
            yield self
        finally:
            self._dead.set()
            closer.join(timeout=60)
            serving.join(timeout=60)

    def _close_when_dead(self) -> None:
        self._dead.wait()
        self.server.shutdown()
        self.server.server_close()  # from now on every connection is refused


@pytest.fixture
def dying_endpoint(aws: str) -> Iterator[_DyingEndpoint]:
    yield from _DyingEndpoint(aws, SERVED_REQUESTS).run()


def test_an_endpoint_that_dies_mid_run_is_one_line_and_a_failed_report(
        dying_endpoint: _DyingEndpoint, tmp_path: Path) -> None:
    deploy()
    source = write_orders(tmp_path / "orders.csv", ROWS)
    report_path = tmp_path / "report.json"

    result = run_piped(["run", "--source_path", str(source), "--target_table", "orders",
                        "--engine", "local", "--report_path", str(report_path),
                        "--max_retry_seconds", "5", "--quiet"],
                       child_environ(AWS_ENDPOINT_URL=dying_endpoint.url), tmp_path)

    assert dying_endpoint.served == SERVED_REQUESTS, "the endpoint died before the load began"
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-5000:]
    unreachable = f"AWS_ENDPOINT_URL={dying_endpoint.url} is not reachable"
    # The endpoint's loss is said once on the error line, and at most once per concern that
    # keeps trying (the budget lease, the writers' share reader, checkpoints) in the log.
    assert 1 <= result.stderr.count(unreachable) <= 8, result.stderr[-5000:]
    assert len(result.stderr.splitlines()) <= 40, result.stderr[-5000:]
    printed = result.report()
    written = json.loads(report_path.read_text(encoding="utf-8"))
    for report in (printed, written):
        assert report["status"] == "FAILED"
        assert "the ledger could not record this report" in report["error"]
        assert unreachable in report["error"]
        # Items were written before the endpoint died, but the engine failed before it
        # returned its counts: the report says its zeros are not known, not that none were.
        assert report["rows_read"] == 0
        assert report["counts_note"].startswith("not known: the engine failed before"), report
    # The summary's error row says it on stderr too.
    assert [line for line in result.stderr.splitlines() if line.startswith("│ error ")]


@pytest.mark.parametrize(("option", "name"), [("--report_path", "report.json"),
                                             ("--rejects_path", "rej.csv")])
def test_an_unwritable_output_path_is_refused_before_loading(aws: str, tmp_path: Path,
                                                             option: str, name: str) -> None:
    deploy()
    source = write_orders(tmp_path / "orders.csv", 60)
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("a file, not a folder\n", encoding="utf-8")

    result = run_piped(["run", "--source_path", str(source), "--target_table", "orders",
                        "--engine", "local", option, str(not_a_folder / name), "--quiet"],
                       child_environ(), tmp_path)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {option} ")
    assert str(not_a_folder / name) in line
    assert "not a directory" in line.lower()
    assert _items("orders") == 0


def test_a_report_that_cannot_be_written_after_the_load_still_prints(
        aws: str, tmp_path: Path) -> None:
    from dynamo_ingest.core.arguments import job_arguments_from_mapping
    from dynamo_ingest.load import run_load

    deploy()
    source = write_orders(tmp_path / "orders.csv", 60)
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("a file, not a folder\n", encoding="utf-8")
    args = job_arguments_from_mapping({
        "source_path": str(source), "target_table": "orders", "engine": "local",
        "report_path": str(not_a_folder / "report.json")})

    # run_load itself (what the Glue job and the loader call): the load is not undone
    # because its report has nowhere to go, and it does not raise.
    report = run_load(args)

    assert report.status == "SUCCEEDED"
    assert report.extra["report_path_error"].startswith("--report_path ")
    assert _items("orders") == 60


def _items(table: str) -> int:
    import boto3

    return int(boto3.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])
