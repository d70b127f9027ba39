"""The lean transport: botocore's signature, exact items over real HTTP (moto), every failure
mapped like botocore's (through the AWS-like double), and its own HTTP/1.1 framing."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from dynamo_ingest.engine.transport import (
    BatchRejectedError,
    BotocoreTransport,
    LeanHttpTransport,
    RetryableError,
    ThrottledError,
    TransportError,
    _SigV4Signer,
    error_from_response,
    transport_from_config,
)
from dynamo_ingest.engine.writer import BatchWriter, RetryPolicy, WriteRequest

from local_aws.dynamodb_double import DynamoDBDouble, FaultPlan
from local_aws.moto_server import free_port

TABLE = "orders"
CREDENTIALS = ("testing", "testing", None)
Item = dict[str, dict[str, Any]]


def make_item(position: int) -> Item:
    return {"pk": {"S": f"k{position:04d}"}, "qty": {"N": str(position * 7 - 3)},
            "note": {"S": "é😀" * (position % 3 + 1)}, "ok": {"BOOL": position % 2 == 0},
            "raw": {"B": bytes([position % 256, 0, 255])}, "gone": {"NULL": True},
            "tags": {"L": [{"S": "a"}, {"N": "1.5"}, {"B": b"\x01"}]},
            "meta": {"M": {"v": {"N": "2"}, "bin": {"BS": [b"\x00", b"\xff"]}}}}


def body(*items: Item) -> dict[str, Any]:
    return {"RequestItems": {TABLE: [{"PutRequest": {"Item": i}} for i in items]},
            "ReturnConsumedCapacity": "TOTAL"}


@pytest.fixture
def table(aws: str) -> str:
    boto3.client("dynamodb").create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    return aws


def stored_items() -> list[Item]:
    client = boto3.client("dynamodb")
    items: list[Any] = [i for page in client.get_paginator("scan").paginate(TableName=TABLE)
                        for i in page["Items"]]
    return sorted(items, key=lambda i: i["pk"]["S"])


@pytest.mark.parametrize(("token", "url"), [
    (None, "https://dynamodb.eu-west-1.amazonaws.com"),
    ("FwoG session  token", "https://dynamodb.eu-west-1.amazonaws.com/"),
    (None, "http://127.0.0.1:8000"),
])
def test_the_signature_is_botocores_sigv4(token: str | None, url: str) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token)
    transport = LeanHttpTransport(url, "eu-west-1", credentials)
    payload = b'{"RequestItems":{"orders":[]}}'
    signer: _SigV4Signer = transport._signer
    ours = signer.headers(payload, timestamp="20240229T235959Z")
    theirs = AWSRequest(method="POST", url=url, data=payload, headers={
        "Host": ours["Host"], "Content-Type": ours["Content-Type"],
        "X-Amz-Target": ours["X-Amz-Target"], "User-Agent": "any"})
    with mock.patch("botocore.auth.get_current_datetime",
                    return_value=datetime.datetime(2024, 2, 29, 23, 59, 59)):
        SigV4Auth(credentials, "dynamodb", "eu-west-1").add_auth(theirs)

    assert ours["Authorization"] == theirs.headers["Authorization"]
    assert ours["X-Amz-Date"] == theirs.headers["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == theirs.headers.get("X-Amz-Security-Token")
    assert ours["Host"] == ("127.0.0.1:8000" if ":8000" in url
                            else "dynamodb.eu-west-1.amazonaws.com")


def test_items_arrive_exactly_over_real_http(table: str) -> None:
    items = [make_item(p) for p in range(60)]
    transport = LeanHttpTransport.from_config(table, "us-east-1", CREDENTIALS)

    answers = [transport.batch_write_item(body(*items[i:i + 20])) for i in range(0, 60, 20)]

    assert all(a["UnprocessedItems"] == {} for a in answers)
    assert [a["ConsumedCapacity"][0]["TableName"] for a in answers] == [TABLE] * 3
    assert stored_items() == items
    with pytest.raises(BatchRejectedError, match="duplicates") as caught:
        transport.batch_write_item(body(items[0], items[0]))
    assert caught.value.item_level


def test_the_writer_recovers_every_unprocessed_item_through_the_double(table: str) -> None:
    items = [make_item(p) for p in range(200)]
    requests = [WriteRequest(p, p + 2, item, (item["pk"]["S"],), 100, 1)
                for p, item in enumerate(items)]
    plan = FaultPlan(unprocessed_share=0.4, throttle_share=0.1, error_5xx_share=0.1,
                     reset_share=0.05, seed=11)
    with DynamoDBDouble(table, plan) as double:
        transport = LeanHttpTransport(double.url, "us-east-1", Credentials(*CREDENTIALS))
        writer = BatchWriter(transport, TABLE, policy=RetryPolicy(
            max_retry_seconds=60, base_delay_s=0.001, max_delay_s=0.01))
        outcome = writer.write_all(requests)
        faults = double.stats

    assert (outcome.failed, outcome.exhausted) == ([], False)
    assert outcome.stats.items_written == 200
    assert min(faults.items_unprocessed, faults.errors_5xx, faults.resets) > 0
    assert outcome.stats.items_bounced >= faults.items_unprocessed
    assert stored_items() == items


def test_threads_share_one_transport(table: str) -> None:
    items = [make_item(p) for p in range(200)]
    with DynamoDBDouble(table, FaultPlan()) as double:
        transport = LeanHttpTransport(double.url, "us-east-1", Credentials(*CREDENTIALS),
                                      max_pool_connections=4)

        def send(start: int) -> list[dict[str, Any]]:
            return [transport.batch_write_item(body(*items[i:i + 10]))
                    for i in range(start, 200, 40)]

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = [a for part in pool.map(send, range(0, 40, 10)) for a in part]

    assert len(answers) == 20
    assert all(a["UnprocessedItems"] == {} for a in answers)
    assert stored_items() == items


@pytest.mark.parametrize(("plan", "expected", "codes"), [
    (FaultPlan(throttle_share=1.0), ThrottledError, {"ProvisionedThroughputExceededException"}),
    (FaultPlan(throttle_share=1.0, throttle_code="ThrottlingException"), ThrottledError,
     {"ThrottlingException"}),
    (FaultPlan(error_5xx_share=1.0, seed=5), RetryableError,
     {"InternalServerError", "ServiceUnavailable"}),
    (FaultPlan(reset_share=1.0), RetryableError,
     {"ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError"}),
])
def test_failures_map_like_botocore(table: str, plan: FaultPlan, expected: type[TransportError],
                                    codes: set[str]) -> None:
    with DynamoDBDouble(table, plan) as double:
        lean = LeanHttpTransport(double.url, "us-east-1", Credentials(*CREDENTIALS))
        boto = BotocoreTransport.from_config(double.url, "us-east-1", CREDENTIALS)
        for transport in (lean, boto):
            with pytest.raises(expected) as caught:
                transport.batch_write_item(body(make_item(1)))
            if transport is lean:
                assert caught.value.code in codes
        double.set_plan(FaultPlan())
        # The connection the failure left behind is not reused.
        assert lean.batch_write_item(body(make_item(2)))["UnprocessedItems"] == {}


def test_unprocessed_items_come_back_as_they_were_sent(table: str) -> None:
    items = [make_item(p) for p in range(5)]
    with DynamoDBDouble(table, FaultPlan(unprocessed_share=1.0)) as double:
        transport = LeanHttpTransport(double.url, "us-east-1", Credentials(*CREDENTIALS))
        answer = transport.batch_write_item(body(*items))

    assert [w["PutRequest"]["Item"] for w in answer["UnprocessedItems"][TABLE]] == items


@pytest.mark.parametrize(("status", "payload", "expected", "code", "message"), [
    (400, b'{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException",'
          b'"message":"bad"}', BatchRejectedError, "ValidationException", "bad"),
    (400, b'{"__type":"com.amazon.coral.service#UnrecognizedClientException",'
          b'"Message":"no key"}', BatchRejectedError, "UnrecognizedClientException", "no key"),
    (400, b'{"__type":"ThrottlingException:http://internal","message":"slow"}',
     ThrottledError, "ThrottlingException", "slow"),
    (502, b"<html>Bad Gateway</html>", RetryableError, "502", "<html>Bad Gateway</html>"),
    (413, b"", BatchRejectedError, "413", ""),
])
def test_error_answers_are_read_like_botocores_json_parser(
        status: int, payload: bytes, expected: type[TransportError], code: str,
        message: str) -> None:
    mapped = error_from_response(status, payload)

    assert (type(mapped), mapped.code, mapped.message) == (expected, code, message)


def test_a_refused_connection_is_retryable() -> None:
    transport = LeanHttpTransport(f"http://127.0.0.1:{free_port()}", "us-east-1",
                                  Credentials(*CREDENTIALS))
    with pytest.raises(RetryableError) as caught:
        transport.batch_write_item(body(make_item(0)))
    assert caught.value.code == "ConnectionRefusedError"


class CannedServer:
    """Answers each request (read by Content-Length) with the next canned HTTP response."""

    def __init__(self, responses: list[bytes], tls: ssl.SSLContext | None = None) -> None:
        self.responses = list(responses)
        self.connections = 0
        self.requests: list[bytes] = []
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        scheme, host = ("https", "localhost") if tls else ("http", "127.0.0.1")
        self.url = f"{scheme}://{host}:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.responses:
            try:
                conn, _ = self._listener.accept()
                if self._tls is not None:
                    conn = self._tls.wrap_socket(conn, server_side=True)
            except OSError:
                continue  # a refused handshake; the next client may succeed
            self.connections += 1
            with conn:
                while self.responses:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not data:
                        break
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    self.requests.append(head)
                    response = self.responses.pop(0)
                    conn.sendall(response)
                    if b"connection: close" in response.lower():
                        break

    def close(self) -> None:
        self.responses.clear()
        self._listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def canned() -> Iterator[list[CannedServer]]:
    servers: list[CannedServer] = []
    yield servers
    for server in servers:
        server.close()


def ok(payload: bytes, *, crc: int | None = None, extra: bytes = b"") -> bytes:
    crc = zlib.crc32(payload) if crc is None else crc
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
            b"x-amz-crc32: " + str(crc).encode() + b"\r\nContent-Length: "
            + str(len(payload)).encode() + b"\r\n" + extra + b"\r\n" + payload)


ANSWER = b'{"UnprocessedItems":{},"ConsumedCapacity":[{"TableName":"orders","CapacityUnits":1.0}]}'


def test_kept_alive_chunked_and_close_delimited_answers(canned: list[CannedServer]) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                          for part in (ANSWER[:10], ANSWER[10:])) + b"0\r\nX-Trailer: 1\r\n\r\n")
    close_delimited = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + ANSWER
    server = CannedServer([ok(ANSWER), ok(ANSWER), chunked, close_delimited, ok(ANSWER)])
    canned.append(server)
    transport = LeanHttpTransport(server.url, "us-east-1", Credentials(*CREDENTIALS))

    answers = [transport.batch_write_item(body(make_item(p))) for p in range(5)]

    assert all(a["ConsumedCapacity"][0]["CapacityUnits"] == 1.0 for a in answers)
    assert server.connections == 2  # one kept alive for four answers, one after the close
    assert all(b"x-amz-target: dynamodb_20120810.batchwriteitem" in h.lower()
               for h in server.requests)


@pytest.mark.parametrize(("response", "code"), [
    (ok(ANSWER, crc=12345), "CRC32CheckFailed"),
    (ok(b"<html>not json</html>"), "UnreadableResponse"),
    (ok(b"[1, 2]"), "UnreadableResponse"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{}",
     "ConnectionResetError"),
])
def test_damaged_answers_are_retryable_never_success(canned: list[CannedServer], response: bytes,
                                                     code: str) -> None:
    server = CannedServer([response])
    canned.append(server)
    transport = LeanHttpTransport(server.url, "us-east-1", Credentials(*CREDENTIALS))

    with pytest.raises(RetryableError) as caught:
        transport.batch_write_item(body(make_item(0)))
    assert caught.value.code == code


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_verifies_the_endpoint_against_the_ca_bundle(
        canned: list[CannedServer], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "endpoint")
    other, _ = self_signed(tmp_path, "other")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = CannedServer([ok(ANSWER), ok(ANSWER)], tls=context)
    canned.append(server)
    trusting = LeanHttpTransport(server.url, "us-east-1", Credentials(*CREDENTIALS),
                                 ca_bundle=str(cert))
    distrusting = LeanHttpTransport(server.url, "us-east-1", Credentials(*CREDENTIALS),
                                    ca_bundle=str(other))

    with pytest.raises(RetryableError) as caught:
        distrusting.batch_write_item(body(make_item(0)))
    answers = [trusting.batch_write_item(body(make_item(p))) for p in range(2)]

    assert caught.value.code == "SSLCertVerificationError"
    assert [a["UnprocessedItems"] for a in answers] == [{}, {}]
    assert server.connections == 1  # the TLS connection is kept alive


def test_an_unencodable_value_rejects_the_batch() -> None:
    transport = LeanHttpTransport("http://127.0.0.1:9", "us-east-1", Credentials(*CREDENTIALS))
    with pytest.raises(BatchRejectedError, match="set"):
        transport.batch_write_item(body({"pk": {"SS": {"a", "b"}}}))


def test_the_job_transport_is_lean_unless_a_proxy_applies(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    endpoint = f"http://127.0.0.1:{free_port()}"
    lean = transport_from_config(endpoint, "us-east-1", CREDENTIALS)
    again = transport_from_config(endpoint, "us-east-1", CREDENTIALS)

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    proxied = transport_from_config("http://dynamodb.example.internal", "us-east-1", CREDENTIALS)

    assert isinstance(lean, LeanHttpTransport)
    assert again is lean  # one per process and settings
    assert isinstance(proxied, BotocoreTransport)
