"""Errors a person can act on: one line that names what was expected, what was found and the
setting to change (the endpoint variable, the region and where it came from), never a
traceback."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from dynamo_ingest.control.ledger import Ledger, SourceObject
from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE

from tests.dynamo_ingest_cli.cli_child import (
    BUCKET,
    child_environ,
    deploy,
    run_piped,
    write_orders,
)


@pytest.mark.spark
def test_an_unreachable_dynamodb_endpoint_is_one_line_naming_the_variable(
        aws: str, tmp_path: Path) -> None:
    source = write_orders(tmp_path / "orders.csv", 10)
    unreachable = "http://127.0.0.1:9"  # the discard port: nothing listens there

    result = run_piped(["run", "--source_path", str(source), "--target_table", "orders",
                        "--quiet"], child_environ(AWS_ENDPOINT_URL_DYNAMODB=unreachable),
                       tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    expected = f"AWS_ENDPOINT_URL_DYNAMODB={unreachable} is not reachable"
    assert expected in result.stderr
    report = result.report()
    assert report["status"] == "FAILED"
    assert report["error"].startswith(expected)
    assert "Spark" not in report["error"]


def test_a_wrong_region_names_the_region_and_its_variable(aws: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dynamo_ingest.control.ledger import LedgerTableError
    from dynamo_ingest.core.aws import AwsConfig
    from dynamo_ingest.core.errors import TargetTableError
    from dynamo_ingest.core.keys import describe_key_schema

    deploy()  # in us-east-1
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    config = AwsConfig.from_environ()

    with pytest.raises(TargetTableError, match=r"in region eu-west-1 \(set by AWS_REGION\)"):
        describe_key_schema(config.client("dynamodb"), "orders")
    with pytest.raises(LedgerTableError, match=r"in region eu-west-1 \(set by AWS_REGION\)"):
        Ledger(config.client("dynamodb"), DEFAULT_LEDGER_TABLE).get(
            SourceObject(BUCKET, "incoming/x.csv", "etag"))


def test_crawl_of_a_missing_file_is_one_line(aws: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "orders.csv"

    result = run_piped(["crawl", "--source_path", str(missing)], child_environ(), tmp_path)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot read {missing}: [Errno 2] No such file or directory: '{missing}'"]


def test_missing_credentials_are_one_error_saying_what_to_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dynamo_ingest.core.aws import AwsConfig, CredentialsNotFoundError

    from local_aws.moto_server import ENDPOINT_VARIABLES

    # Empty every place botocore's chain looks (it signs before it connects: no request leaves).
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", *ENDPOINT_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    # boto3's default session keeps the credentials an earlier test resolved: start a new one
    # (else the call would be signed and sent to the real AWS endpoint).
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

    with pytest.raises(CredentialsNotFoundError, match=(
            r"credentials for dynamodb in region eu-west-1 \(set by AWS_REGION\), found none")):
        AwsConfig.from_environ().client("dynamodb").list_tables()


@pytest.mark.spark
def test_a_spark_engine_failure_is_one_line_on_stderr(aws: str, tmp_path: Path) -> None:
    # A value over Spark's 4 MiB bound fails the Spark engine's run (not retried); what the
    # person sees is the run's report and its one error line, not the JVM's log of the
    # failed task.
    deploy()
    source = tmp_path / "orders.csv"
    source.write_bytes(b"orderId,note\n1,a\n2," + b"x" * (5 * 1024 * 1024) + b"\n3,c\n")

    spark_log = tmp_path / "logs" / "spark.log"

    result = run_piped(["run", "--source_path", str(source), "--target_table", "orders",
                        "--engine", "spark", "--quiet"],
                       child_environ(DYNAMO_INGEST_SPARK_LOG=str(spark_log)), tmp_path)

    assert result.returncode == 1
    report = result.report()
    assert report["status"] == "FAILED"
    assert report["error"].startswith(f"{source}: record 2 holds a value over 4 MiB")
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("│ error ")], result.stderr[-3000:]
    # Nothing of the JVM's: no log4j line (Spark's default layout starts with the time), no
    # Java or Python stack trace, no start-up notice.
    jvm_lines = [line for line in lines if re.match(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d ", line)
                 or line.startswith(("\tat ", "Caused by", "Traceback", "Setting default log",
                                     "To adjust logging"))
                 or "Exception" in line]
    assert jvm_lines == [], result.stderr[-3000:]
    # The detail is in Spark's log file instead.
    log_text = spark_log.read_text(encoding="utf-8", errors="replace")
    assert "ERROR" in log_text
    assert "TextParsingException" in log_text


ERROR_PAGE = (b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
              b"<h1>Internal Server Error</h1>\n<p>The server encountered an internal error."
              b"</p>\n")


class _ErrorPage(BaseHTTPRequestHandler):
    """Answers every request as a web server's own error page does: 500, text/html."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(500)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(ERROR_PAGE)))
        self.end_headers()
        self.wfile.write(ERROR_PAGE)

    def log_message(self, *_: object) -> None:
        pass


def test_an_html_error_page_from_the_endpoint_is_one_line_naming_it() -> None:
    from dynamo_ingest.core.aws import AwsConfig
    from dynamo_ingest.core.errors import TargetTableError
    from dynamo_ingest.core.keys import describe_key_schema

    server = ThreadingHTTPServer(("127.0.0.1", 0), _ErrorPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        config = AwsConfig.from_environ({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
                                         "AWS_SECRET_ACCESS_KEY": "testing"})
        # one retry, not botocore's default four: the answer is the same each time
        client = config.client("dynamodb", retries={"max_attempts": 2, "mode": "standard"})
        with pytest.raises(TargetTableError) as raised:
            describe_key_schema(client, "orders3")
    finally:
        server.shutdown()
        server.server_close()
    message = str(raised.value)
    assert f"HTTP 500 Internal Server Error from {url} (set by AWS_ENDPOINT_URL)" in message
    assert message.startswith("cannot describe table 'orders3': ")
    assert "<" not in message, message
    assert "\n" not in message, message


def test_status_without_a_region_says_what_to_set(tmp_path: Path) -> None:
    """After `flow` or `demo` on their embedded moto, a user's `status` has neither a region
    nor an endpoint: one line saying what to set, not botocore's NoRegionError."""
    from local_aws.moto_server import ENDPOINT_VARIABLES
    from tests.dynamo_ingest_cli.cli_child import child_environ, run_piped

    unset: dict[str, str | None] = dict.fromkeys(
        ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", *ENDPOINT_VARIABLES), None)
    env = child_environ(**unset, AWS_CONFIG_FILE=str(tmp_path / "none"),
                        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                        AWS_EC2_METADATA_DISABLED="true")

    result = run_piped(["status"], env, tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: no AWS region is set: set AWS_DEFAULT_REGION"), line
    assert "AWS_ENDPOINT_URL" in line
