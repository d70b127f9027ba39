"""AWS client settings read once on the driver and shipped to Spark tasks.

Spark's Python workers do not always see the driver's environment (a session started before
the endpoint variables were set keeps the old ones), so the driver resolves endpoints,
region and — only when an emulator endpoint is set — credentials, and tasks build their
clients from this picklable value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from dynamo_ingest.core.errors import DynamoIngestError

SERVICES = ("dynamodb", "s3", "glue", "sns", "sqs", "lambda")
# Answers that mean "no such thing here": in a region other than the one the resource lives
# in, DynamoDB and Glue say only this, so the message gets the region and where it came from.
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "EntityNotFoundException"})
EMULATOR_DEFAULT_REGION = "us-east-1"
BOTOCORE_REGION_ORIGIN = "botocore's configuration: AWS_PROFILE or ~/.aws/config"


class EndpointUnreachableError(DynamoIngestError):
    """An AWS endpoint accepted no connection (emulator not running, wrong URL, no network)."""


class CredentialsNotFoundError(DynamoIngestError):
    """botocore found no AWS credentials to sign a request with."""

    retryable = False


@dataclass(frozen=True)
class AwsConfig:
    """Region, per-service endpoint overrides and (emulators only) static credentials."""

    region: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    credentials: tuple[str, str, str | None] | None = None
    # Where each setting came from (a variable name), for messages a person can act on.
    endpoint_origins: dict[str, str] = field(default_factory=dict)
    region_origin: str = BOTOCORE_REGION_ORIGIN

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> AwsConfig:
        """Read the standard AWS variables (``AWS_ENDPOINT_URL[_SERVICE]``, region, keys)."""
        env = os.environ if environ is None else environ
        endpoints: dict[str, str] = {}
        origins: dict[str, str] = {}
        for service in SERVICES:
            for variable in (f"AWS_ENDPOINT_URL_{service.upper()}", "AWS_ENDPOINT_URL"):
                if env.get(variable):
                    endpoints[service], origins[service] = env[variable], variable
                    break
        credentials = None
        if endpoints and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            credentials = (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                           env.get("AWS_SESSION_TOKEN"))
        region_variable = next((v for v in ("AWS_REGION", "AWS_DEFAULT_REGION") if env.get(v)),
                               None)
        region = env[region_variable] if region_variable else None
        region_origin = region_variable or BOTOCORE_REGION_ORIGIN
        if region is None and endpoints:
            region, region_origin = EMULATOR_DEFAULT_REGION, "the default for emulator endpoints"
        return cls(region=region, endpoints=endpoints, credentials=credentials,
                   endpoint_origins=origins, region_origin=region_origin)

    @property
    def is_emulated(self) -> bool:
        """True when at least one service points at a non-AWS endpoint."""
        return bool(self.endpoints)

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client for ``service`` with this endpoint, region and credentials."""
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {}
        if self.region:
            kwargs["region_name"] = self.region
        if service in self.endpoints:
            kwargs["endpoint_url"] = self.endpoints[service]
        if self.credentials:
            kwargs["aws_access_key_id"] = self.credentials[0]
            kwargs["aws_secret_access_key"] = self.credentials[1]
            kwargs["aws_session_token"] = self.credentials[2]
        if config:
            kwargs["config"] = Config(**config)
        factory: Any = boto3.client  # one generic call; the typed overloads need a literal
        client = factory(service, **kwargs)
        self._explain_errors(service, client)
        return client

    def where(self, service: str, client: Any) -> str:
        """Region and endpoint of ``client``, each with the setting it came from."""
        region = f"in region {client.meta.region_name} (set by {self.region_origin})"
        if service not in self.endpoints:
            return region
        return (f"{region} at {client.meta.endpoint_url} "
                f"(set by {self.endpoint_origins.get(service, 'AWS_ENDPOINT_URL')})")

    def _explain_errors(self, service: str, client: Any) -> None:
        """Every call of ``client`` fails in our terms where botocore's would mislead: an
        endpoint that refuses connections is one :class:`EndpointUnreachableError` naming
        the variable that set it, missing credentials one :class:`CredentialsNotFoundError`,
        and "not found" names the region and where it came from.
        Done here, where every driver-side client is built, so no call site repeats it."""
        from botocore.exceptions import (
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        def on_call_error(exception: BaseException, **_: Any) -> None:
            if isinstance(exception, EndpointConnectionError | ConnectTimeoutError):
                raise EndpointUnreachableError(
                    self._unreachable(service, client, exception)) from exception
            if isinstance(exception, NoCredentialsError):
                raise CredentialsNotFoundError(
                    f"expected AWS credentials for {service} {self.where(service, client)}, "
                    "found none (checked AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
                    "~/.aws and the instance role): set them, or give the job a role"
                ) from exception

        def on_call(parsed: dict[str, Any], http_response: Any = None, **_: Any) -> None:
            error = parsed.get("Error") if isinstance(parsed, dict) else None
            if isinstance(error, dict) and error.get("Code") in NOT_FOUND_CODES:
                error["Message"] = (f"{error.get('Message', '')}, looked up "
                                    f"{self.where(service, client)}")
            elif isinstance(error, dict) and _is_html_page(http_response, error):
                error["Message"] = self._server_page(service, client, http_response.status_code)

        client.meta.events.register("after-call-error", on_call_error)
        client.meta.events.register("after-call", on_call)

    def _server_page(self, service: str, client: Any, status: int) -> str:
        """An error page (HTML) in one line: its status and whose page it is."""
        try:
            phrase = f" {HTTPStatus(status).phrase}"
        except ValueError:  # a status code outside the standard's list
            phrase = ""
        where = str(client.meta.endpoint_url)
        if service in self.endpoints:
            where += f" (set by {self.endpoint_origins.get(service, 'AWS_ENDPOINT_URL')})"
        return f"HTTP {status}{phrase} from {where}"

    def _unreachable(self, service: str, client: Any, err: BaseException) -> str:
        if service in self.endpoints:
            variable = self.endpoint_origins.get(service, "AWS_ENDPOINT_URL")
            return (f"{variable}={self.endpoints[service]} is not reachable ({err}): start the "
                    f"emulator there or point {variable} at a running one")
        return (f"the AWS {service} endpoint {client.meta.endpoint_url} is not reachable "
                f"{self.where(service, client)} ({err}): check the network, the proxy "
                "settings and the region")


def _is_html_page(http_response: Any, error: Mapping[str, Any]) -> bool:
    """True when an error's body is a web page (a proxy's or a server's own error page),
    which botocore hands on whole as the error's message."""
    if http_response is None or getattr(http_response, "status_code", 0) < 400:
        return False
    kind = str((getattr(http_response, "headers", None) or {}).get("content-type", ""))
    return "html" in kind.lower() or str(error.get("Message", "")).lstrip()[:1] == "<"
