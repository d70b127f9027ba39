"""The loader Lambda's named errors."""

from __future__ import annotations

from dynamo_ingest.core.errors import DynamoIngestError


class SettingsError(DynamoIngestError):
    """An environment variable the function needs is missing or unusable."""


class HandOffError(DynamoIngestError):
    """The next invocation of a load (a continuation or a retry) could not be started."""
