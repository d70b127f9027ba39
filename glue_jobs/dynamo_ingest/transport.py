"""How the writer reaches DynamoDB: a one-method transport and the three ways a call can fail.

A transport sends one BatchWriteItem body and returns the parsed response, or raises
:class:`ThrottledError`, :class:`RetryableError` or :class:`BatchRejectedError`. It never
retries: retries, backoff and pacing belong to the writer, which sees every attempt.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, cast

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
)
from botocore.exceptions import (
    ConnectionError as BotocoreConnectionError,
)

from dynamo_ingest.errors import DynamoIngestError

if TYPE_CHECKING:
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
        try:
            return cls(_client(endpoint_url, region, credentials, max_pool_connections))
        except BotoCoreError as err:
            raise TransportError(type(err).__name__, (
                f"cannot build a DynamoDB client for endpoint {endpoint_url or 'AWS default'} "
                f"in region {region!r}: {err}; pass the region and endpoint the driver "
                "resolved (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB)")) from err

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


@lru_cache(maxsize=8)
def _client(endpoint_url: str | None, region: str | None,
            credentials: tuple[str, str, str | None] | None,
            max_pool_connections: int) -> DynamoDBClient:
    import boto3
    from botocore.config import Config

    access_key, secret_key, token = credentials or (None, None, None)
    session = boto3.session.Session(aws_access_key_id=access_key,
                                    aws_secret_access_key=secret_key,
                                    aws_session_token=token, region_name=region)
    config = Config(
        parameter_validation=False,  # the item builder already produced valid shapes
        retries={"mode": "standard", "total_max_attempts": 1},  # the writer retries
        max_pool_connections=max_pool_connections,
        connect_timeout=5, read_timeout=30, tcp_keepalive=True)
    return session.client("dynamodb", endpoint_url=endpoint_url, config=config)
