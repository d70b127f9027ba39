"""How the writer reaches DynamoDB: a one-method transport and the three ways a call can fail.

A transport sends one BatchWriteItem body and returns the parsed response, or raises
:class:`ThrottledError`, :class:`RetryableError` or :class:`BatchRejectedError`. It never
retries: retries, backoff and pacing belong to the writer, which sees every attempt.

:class:`LeanHttpTransport` is the job's transport: it writes the request JSON with the C
encoder, signs it (SigV4, byte-identical to botocore's ``SigV4Auth``) and sends it on
kept-alive connections, skipping botocore's per-item serializer, event hooks and http.client's
header parsing: about 8× less CPU per call (``benchmarks/README.md``).
:class:`BotocoreTransport` does the same through a botocore client (parameter validation and
retries off); :func:`transport_from_config` picks it when an HTTP proxy is configured.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import select
import socket
import ssl
import time
import zlib
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
)
from botocore.exceptions import (
    ConnectionError as BotocoreConnectionError,
)

from dynamo_ingest.core.errors import DynamoIngestError

if TYPE_CHECKING:
    import boto3
    from botocore.credentials import Credentials
    from mypy_boto3_dynamodb import DynamoDBClient

# botocore's standard retry mode lists these as throttling; DynamoDB's BatchWriteItem uses the
# first three.
THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "Throttling", "TooManyRequestsException",
})
# Transient answers besides HTTP 5xx (botocore's transient codes, plus DynamoDB's
# multi-Region strong-consistency conflict that the service model marks retryable).
TRANSIENT_CODES = frozenset({
    "InternalServerError", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException",
    "PriorRequestNotComplete", "ReplicatedWriteConflictException",
})
# Rejections caused by one item of the batch, so sending the items one by one isolates it.
# Anything else (AccessDenied, ResourceNotFound, bad credentials) fails every item alike.
ITEM_LEVEL_CODES = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})


class TransportError(DynamoIngestError):
    """A BatchWriteItem call failed; ``code`` is DynamoDB's error code, ``message`` its text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


class ThrottledError(TransportError):
    """DynamoDB refused the whole batch for throughput (ProvisionedThroughputExceeded, …)."""


class RetryableError(TransportError):
    """A transient failure (HTTP 5xx, connection reset/refused, timeout): resend the batch."""


class BatchRejectedError(TransportError):
    """DynamoDB rejected the request (HTTP 4xx, e.g. ValidationException): resending won't help."""

    @property
    def item_level(self) -> bool:
        """True when one item can cause this, so sending the items singly isolates it."""
        return self.code in ITEM_LEVEL_CODES


class DynamoTransport(Protocol):
    """Sends one BatchWriteItem request."""

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send the full body (``RequestItems``, ``ReturnConsumedCapacity``); return the parsed
        response, whose ``UnprocessedItems`` hold the items as they were sent."""
        ...


def error_from_client_error(err: ClientError) -> TransportError:
    """Classify a botocore ``ClientError`` as throttled, retryable or rejected."""
    error = err.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "")
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return classify_error(code, message, status)


def classify_error(code: str, message: str, status: int) -> TransportError:
    """The :class:`TransportError` for DynamoDB error ``code`` answered with HTTP ``status``."""
    if code in THROTTLING_CODES:
        return ThrottledError(code, message)
    if code in TRANSIENT_CODES or status >= 500:
        return RetryableError(code, message)
    return BatchRejectedError(code, message)


class BotocoreTransport:
    """A transport over a botocore DynamoDB client that neither validates nor retries."""

    __slots__ = ("_client",)

    def __init__(self, client: DynamoDBClient) -> None:
        self._client = client

    @classmethod
    def from_config(cls, endpoint_url: str | None, region: str | None,
                    credentials: tuple[str, str, str | None] | None,
                    max_pool_connections: int = 10) -> BotocoreTransport:
        """Build the client from settings the driver resolved (workers may not see its environment).

        ``credentials`` is ``(access key, secret key, session token)``; ``None`` uses the
        default chain (the Glue job's role). Clients are shared per process and settings:
        building one costs ~0.1 s, a Spark worker runs many tasks, and clients are thread-safe.
        """
        return cls(shared_client(endpoint_url, region, credentials, max_pool_connections))

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one BatchWriteItem; raise the matching :class:`TransportError` on failure."""
        try:
            return cast("dict[str, Any]", self._client.batch_write_item(**request))
        except ClientError as err:
            raise error_from_client_error(err) from err
        except (BotocoreConnectionError, HTTPClientError) as err:
            raise RetryableError(type(err).__name__, str(err)) from err
        except BotoCoreError as err:  # no credentials, bad region: nothing a resend fixes
            raise BatchRejectedError(type(err).__name__, str(err)) from err


class LeanHttpTransport:
    """BatchWriteItem as JSON written here, SigV4-signed here, sent on kept-alive connections.

    botocore spends most of a call in per-item serialization, event hooks, header objects and
    http.client's header parsing; this transport does the same protocol work in a few C calls
    per request (measured in ``benchmarks/``). The signature is SigV4 exactly as botocore's
    ``SigV4Auth`` computes it (a test compares the two); credentials come from botocore, so
    the Glue role's refreshing credentials work as in a client.

    Errors map like :func:`error_from_client_error` (botocore's JSON error parsing), with one
    difference on purpose: a 2xx answer whose body does not parse, or whose ``x-amz-crc32``
    does not match, is a :class:`RetryableError` (botocore would hand back an empty result,
    which reads as "every item written"). HTTP proxies are not supported:
    :func:`transport_from_config` picks :class:`BotocoreTransport` when one is configured.
    """

    __slots__ = ("_encode", "_pool", "_signer")
    _encode: Callable[[dict[str, Any]], bytes]

    def __init__(self, endpoint_url: str, region: str, credentials: Credentials, *,
                 max_pool_connections: int = 10, connect_timeout_s: float = 5.0,
                 read_timeout_s: float = 30.0, ca_bundle: str | None = None) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError("InvalidEndpoint", (
                f"expected an http(s) DynamoDB endpoint URL, found {endpoint_url!r}: check "
                "AWS_ENDPOINT_URL_DYNAMODB"))
        path = _canonical_path(parts.path)
        host = _signed_host(parts.scheme, parts.hostname, parts.port)
        self._signer = _SigV4Signer(credentials, region, host, path)
        self._pool = _ConnectionPool(parts.scheme, parts.hostname,
                                     parts.port or _DEFAULT_PORTS[parts.scheme], path,
                                     max_idle=max_pool_connections,
                                     connect_timeout_s=connect_timeout_s,
                                     read_timeout_s=read_timeout_s, ca_bundle=ca_bundle)
        self._encode = _request_encoder()

    @classmethod
    def from_config(cls, endpoint_url: str | None, region: str | None,
                    credentials: tuple[str, str, str | None] | None,
                    max_pool_connections: int = 10) -> LeanHttpTransport:
        """Like :meth:`BotocoreTransport.from_config`: shared per process and settings; the
        endpoint (when not given), region and credentials resolve through botocore."""
        try:
            return _lean_transport(endpoint_url, region, credentials, max_pool_connections)
        except BotoCoreError as err:
            raise _settings_error(err, "set up DynamoDB requests", endpoint_url, region) from err

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one BatchWriteItem; raise the matching :class:`TransportError` on failure."""
        try:
            body = self._encode(request)
        except (TypeError, ValueError) as err:
            raise BatchRejectedError("SerializationException", (
                f"the request cannot be written as DynamoDB JSON: {err}")) from err
        try:
            head = self._signer.request_head(body)
        except BotoCoreError as err:  # the credentials could not be refreshed
            raise BatchRejectedError(type(err).__name__, str(err)) from err
        try:
            status, headers, data = self._pool.exchange(head + body)
        except (OSError, ValueError) as err:
            raise RetryableError(type(err).__name__, (
                f"{err or 'connection failed'} (endpoint {self._pool.address})")) from err
        return _parsed_response(status, data, headers.get("x-amz-crc32"))


def transport_from_config(endpoint_url: str | None, region: str | None,
                          credentials: tuple[str, str, str | None] | None,
                          max_pool_connections: int = 10) -> DynamoTransport:
    """The job's transport: :class:`LeanHttpTransport`, or :class:`BotocoreTransport` when an
    HTTP proxy is configured for the endpoint (botocore honours ``HTTPS_PROXY``; we do not)."""
    if _proxied(endpoint_url, region):
        return BotocoreTransport.from_config(endpoint_url, region, credentials,
                                             max_pool_connections)
    return LeanHttpTransport.from_config(endpoint_url, region, credentials, max_pool_connections)


def _proxied(endpoint_url: str | None, region: str | None) -> bool:
    import urllib.request

    proxies = urllib.request.getproxies()
    if not proxies:
        return False
    url = endpoint_url or f"https://dynamodb.{region or 'us-east-1'}.amazonaws.com"
    parts = urlsplit(url)
    return parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or "")


_JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
_BATCH_WRITE_TARGET = "DynamoDB_20120810.BatchWriteItem"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SIGNING_SERVICE = "dynamodb"
_MAX_HEADER_BYTES = 256 * 1024


def _signed_host(scheme: str, hostname: str, port: int | None) -> str:
    """The Host header as SigV4 signs it (botocore's rule): default ports left out."""
    host = f"[{hostname}]" if ":" in hostname else hostname
    return host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"


def _canonical_path(path: str) -> str:
    """The URL path as SigV4 canonicalizes it (botocore's ``_normalize_url_path``)."""
    from urllib.parse import quote

    from botocore.utils import normalize_url_path

    return quote(normalize_url_path(path or "/"), safe="/~")


class _SigV4Signer:
    """SigV4 for one endpoint's BatchWriteItem: the request line and headers, signed.

    The signed headers are fixed (content-type, host, x-amz-date, x-amz-security-token when
    there is a session token, x-amz-target), so the canonical request is one format string;
    the derived signing key is kept for the day.
    """

    __slots__ = ("_credentials", "_host", "_key", "_path", "_region")

    def __init__(self, credentials: Credentials, region: str, host: str, path: str) -> None:
        self._credentials = credentials
        self._region = region
        self._host = host
        self._path = path
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (secret, date, signing key)

    def _signing_key(self, secret: str, date: str) -> bytes:
        cached_secret, cached_date, key = self._key
        if cached_secret == secret and cached_date == date:
            return key
        key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
        for part in (self._region, _SIGNING_SERVICE, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._key = (secret, date, key)
        return key

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        """The headers of a signed request carrying ``body`` (``timestamp`` for tests)."""
        frozen = self._credentials.get_frozen_credentials()
        stamp = timestamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        date = stamp[:8]
        token = frozen.token
        canonical_headers = (
            f"content-type:{_JSON_CONTENT_TYPE}\nhost:{self._host}\nx-amz-date:{stamp}\n"
            + (f"x-amz-security-token:{' '.join(token.split())}\n" if token else "")
            + f"x-amz-target:{_BATCH_WRITE_TARGET}\n")
        signed_headers = ("content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
                          if token else "content-type;host;x-amz-date;x-amz-target")
        canonical_request = (f"POST\n{self._path}\n\n{canonical_headers}\n{signed_headers}\n"
                             f"{hashlib.sha256(body).hexdigest()}")
        scope = f"{date}/{self._region}/{_SIGNING_SERVICE}/aws4_request"
        string_to_sign = (f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n"
                          f"{hashlib.sha256(canonical_request.encode()).hexdigest()}")
        key = self._signing_key(frozen.secret_key or "", date)
        signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        headers = {"Host": self._host, "Content-Type": _JSON_CONTENT_TYPE,
                   "X-Amz-Target": _BATCH_WRITE_TARGET, "X-Amz-Date": stamp,
                   "Authorization": (f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
                                     f"SignedHeaders={signed_headers}, Signature={signature}"),
                   "Content-Length": str(len(body)), "User-Agent": "dynamo-ingest"}
        if token:
            headers["X-Amz-Security-Token"] = token
        return headers

    def request_head(self, body: bytes) -> bytes:
        """The HTTP/1.1 request line and headers for ``body``."""
        lines = "".join(f"{name}: {value}\r\n" for name, value in self.headers(body).items())
        return f"POST {self._path} HTTP/1.1\r\n{lines}\r\n".encode()


class _Connection:
    """One kept-alive HTTP/1.1 connection (plain or TLS)."""

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def idle_and_open(self) -> bool:
        """False when the peer closed (or wrote to) the idle connection: do not reuse it."""
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        """Send one request; return (status, lower-case headers, body, reusable)."""
        sock = self._sock
        sock.sendall(request)
        buffer = b""
        end = -1
        while end < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the endpoint closed the connection before answering")
            buffer += chunk
            end = buffer.find(b"\r\n\r\n")
            if end < 0 and len(buffer) > _MAX_HEADER_BYTES:
                raise ValueError(f"response headers longer than {_MAX_HEADER_BYTES} bytes")
        lines = buffer[:end].decode("latin-1").split("\r\n")
        version, _, rest_of_line = lines[0].partition(" ")
        status = int(rest_of_line[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        rest = buffer[end + 4:]
        reusable = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, rest = self._chunked(rest)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            while len(rest) < length:
                chunk = sock.recv(max(65536, length - len(rest)))
                if not chunk:
                    raise ConnectionResetError(
                        f"the endpoint closed the connection after {len(rest)} of {length} "
                        "body bytes")
                rest += chunk
            body, rest = rest[:length], rest[length:]
        else:  # the body ends when the endpoint closes the connection
            parts = [rest]
            while chunk := sock.recv(65536):
                parts.append(chunk)
            body, rest, reusable = b"".join(parts), b"", False
        return status, headers, body, reusable and not rest

    def _chunked(self, data: bytes) -> tuple[bytes, bytes]:
        """A chunked body (RFC 9112 section 7.1) and what follows it."""
        body: list[bytes] = []
        while True:
            line, data = self._line(data)
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                while line:  # trailer fields up to the empty line
                    line, data = self._line(data)
                return b"".join(body), data
            while len(data) < size + 2:
                data += self._more()
            body.append(data[:size])
            data = data[size + 2:]

    def _line(self, data: bytes) -> tuple[bytes, bytes]:
        while (eol := data.find(b"\r\n")) < 0:
            data += self._more()
        return data[:eol], data[eol + 2:]

    def _more(self) -> bytes:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the endpoint closed the connection inside a chunked body")
        return chunk


class _ConnectionPool:
    """Kept-alive connections to one endpoint; a connection serves one request at a time."""

    __slots__ = ("_connect_timeout_s", "_host", "_idle", "_max_idle", "_port",
                 "_read_timeout_s", "_tls", "address")

    def __init__(self, scheme: str, host: str, port: int, path: str, *, max_idle: int,
                 connect_timeout_s: float, read_timeout_s: float,
                 ca_bundle: str | None) -> None:
        self._host = host
        self._port = port
        self._max_idle = max_idle
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._idle: deque[_Connection] = deque()
        self._tls: ssl.SSLContext | None = None
        if scheme == "https":
            from botocore.httpsession import get_cert_path

            # AWS_CA_BUNDLE (through botocore's config) or botocore's own bundle, as a client.
            self._tls = ssl.create_default_context(cafile=ca_bundle or get_cert_path(True))
        self.address = f"{scheme}://{host}:{port}{path}"

    def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send ``request`` on an idle connection (or a new one); return the answer."""
        connection = self._take()
        try:
            status, headers, body, reusable = connection.exchange(request)
        except BaseException:
            connection.close()
            raise
        if reusable and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        else:
            connection.close()
        return status, headers, body

    def _take(self) -> _Connection:
        while True:
            try:
                connection = self._idle.pop()  # the most recent: the least likely closed
            except IndexError:
                return self._connect()
            if connection.idle_and_open():
                return connection
            connection.close()

    def _connect(self) -> _Connection:
        sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            sock.settimeout(self._read_timeout_s)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)


def _request_encoder() -> Callable[[dict[str, Any]], bytes]:
    """The request body's JSON writer: orjson when installed (about 1/9 of the C encoder's CPU
    on the benchmark's items, measured in process), else the standard library's C encoder.
    Items hold no floats (numbers travel as text), so both write the same values."""
    try:
        import orjson
    except ImportError:  # e.g. a Glue job started without it in --additional-python-modules
        # check_circular off: items are trees the builder made, and the check costs ~8%.
        encode = json.JSONEncoder(separators=(",", ":"), default=_wire_value,
                                  allow_nan=False, check_circular=False).encode
        return lambda request: encode(request).encode()
    dumps = orjson.dumps
    return lambda request: dumps(request, default=_wire_value)


def _wire_value(value: object) -> str:
    """JSON for what ``json`` cannot write itself: binaries travel as base64, like botocore."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"expected str, number, bool, None, list, dict or bytes, found "
                    f"{type(value).__name__} {value!r}")


def _parsed_response(status: int, data: bytes, crc32: str | None) -> dict[str, Any]:
    """The parsed answer, or the :class:`TransportError` it stands for."""
    if crc32 is not None and crc32.isdigit() and zlib.crc32(data) != int(crc32):
        raise RetryableError("CRC32CheckFailed", (
            f"the response body ({len(data)} bytes) does not match its x-amz-crc32 {crc32}: "
            "damaged in transit"))
    if status >= 300:
        raise error_from_response(status, data)
    try:
        parsed = json.loads(data)
    except ValueError as err:
        raise RetryableError("UnreadableResponse", (
            f"expected a JSON BatchWriteItem answer, found {data[:80]!r}")) from err
    if not isinstance(parsed, dict):
        raise RetryableError("UnreadableResponse", (
            f"expected a JSON object as BatchWriteItem answer, found {data[:80]!r}"))
    unprocessed = parsed.get("UnprocessedItems")
    if unprocessed:
        parsed["UnprocessedItems"] = {
            table: [_decoded_request(entry) for entry in entries]
            for table, entries in unprocessed.items()}
    return parsed


def error_from_response(status: int, data: bytes) -> TransportError:
    """Classify a DynamoDB error answer, reading code and message as botocore's JSON parser
    does: ``__type`` after its ``#`` (else the HTTP status), ``message`` or ``Message``."""
    try:
        body = json.loads(data) if data else {}
    except ValueError:
        body = {"message": data.decode("utf-8", "replace")}
    if not isinstance(body, dict):
        body = {"message": str(body)}
    message = str(body.get("message", body.get("Message", "")))
    code = str(body.get("__type") or status).split(":", 1)[0].rsplit("#", 1)[-1]
    return classify_error(code, message, status)


def _decoded_request(entry: dict[str, Any]) -> dict[str, Any]:
    """A returned write request with its base64 binaries as bytes again, as they were sent."""
    out: dict[str, Any] = {}
    for kind, request in entry.items():
        field_name = "Item" if kind == "PutRequest" else "Key"
        attributes = request.get(field_name, {})
        decoded = {n: decode_wire_binaries(v) for n, v in attributes.items()}
        out[kind] = {**request, field_name: decoded}
    return out


def decode_wire_binaries(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value as sent on the wire (base64 binaries) with its binaries as bytes."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if kind == "M":
        return {"M": {k: decode_wire_binaries(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [decode_wire_binaries(v) for v in inner]}
    return value


@lru_cache(maxsize=8)
def _lean_transport(endpoint_url: str | None, region: str | None,
                    credentials: tuple[str, str, str | None] | None,
                    max_pool_connections: int) -> LeanHttpTransport:
    import botocore.session

    session = botocore.session.get_session()
    if credentials is not None:
        session.set_credentials(*credentials)
    resolved = session.get_credentials()
    if resolved is None:
        raise TransportError("NoCredentials", (
            "found no AWS credentials for DynamoDB (checked the driver's static keys and "
            "botocore's provider chain): give the job a role or set AWS_ACCESS_KEY_ID"))
    if endpoint_url is None or region is None:
        client = _client(endpoint_url, region, credentials, max_pool_connections)
        endpoint_url = endpoint_url or client.meta.endpoint_url
        region = region or client.meta.region_name
    return LeanHttpTransport(endpoint_url, region, resolved,
                             max_pool_connections=max_pool_connections,
                             ca_bundle=session.get_config_variable("ca_bundle"))


def _session(region: str | None, credentials: tuple[str, str, str | None] | None,
             ) -> boto3.session.Session:
    import boto3

    access_key, secret_key, token = credentials or (None, None, None)
    return boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                 aws_session_token=token, region_name=region)


def shared_client(endpoint_url: str | None, region: str | None,
                  credentials: tuple[str, str, str | None] | None,
                  max_pool_connections: int) -> DynamoDBClient:
    """The process's botocore DynamoDB client for these settings (validation and retries off),
    or a :class:`TransportError` saying which settings to pass."""
    try:
        return _client(endpoint_url, region, credentials, max_pool_connections)
    except BotoCoreError as err:
        raise _settings_error(err, "build a DynamoDB client", endpoint_url, region) from err


def _settings_error(err: BotoCoreError, what: str, endpoint_url: str | None,
                    region: str | None) -> TransportError:
    """botocore could not resolve the settings a task was given: say which ones to pass."""
    return TransportError(type(err).__name__, (
        f"cannot {what} for endpoint {endpoint_url or 'AWS default'} in region {region!r}: "
        f"{err}; pass the region and endpoint the driver resolved (AWS_REGION, "
        "AWS_ENDPOINT_URL_DYNAMODB)"))


@lru_cache(maxsize=8)
def _client(endpoint_url: str | None, region: str | None,
            credentials: tuple[str, str, str | None] | None,
            max_pool_connections: int) -> DynamoDBClient:
    from botocore.config import Config

    config = Config(
        parameter_validation=False,  # the item builder already produced valid shapes
        retries={"mode": "standard", "total_max_attempts": 1},  # the writer retries
        max_pool_connections=max_pool_connections,
        connect_timeout=5, read_timeout=30, tcp_keepalive=True)
    return _session(region, credentials).client("dynamodb", endpoint_url=endpoint_url,
                                                config=config)
