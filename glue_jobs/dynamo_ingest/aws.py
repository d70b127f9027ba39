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
from typing import Any

SERVICES = ("dynamodb", "s3", "glue", "sns", "sqs")


@dataclass(frozen=True)
class AwsConfig:
    """Region, per-service endpoint overrides and (emulators only) static credentials."""

    region: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    credentials: tuple[str, str, str | None] | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> AwsConfig:
        """Read the standard AWS variables (``AWS_ENDPOINT_URL[_SERVICE]``, region, keys)."""
        env = os.environ if environ is None else environ
        generic = env.get("AWS_ENDPOINT_URL")
        endpoints: dict[str, str] = {}
        for service in SERVICES:
            specific = env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or generic
            if specific:
                endpoints[service] = specific
        credentials = None
        if endpoints and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            credentials = (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                           env.get("AWS_SESSION_TOKEN"))
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if region is None and endpoints:
            region = "us-east-1"
        return cls(region=region, endpoints=endpoints, credentials=credentials)

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
        return factory(service, **kwargs)
