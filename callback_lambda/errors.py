"""The callback Lambda's named errors."""

from __future__ import annotations

from dynamo_ingest.core.errors import DynamoIngestError


class SettingsError(DynamoIngestError):
    """An environment variable the function needs is missing or unusable."""


class MalformedGlueEventError(DynamoIngestError):
    """A "Glue Job State Change" event lacks a field EventBridge always sends."""


class RetryNotStartedError(DynamoIngestError):
    """The retry run of a failed file could not be started (the ledger says why)."""
