"""The trigger Lambda's named errors."""

from __future__ import annotations

from dynamo_ingest.core.errors import DynamoIngestError


class SettingsError(DynamoIngestError):
    """An environment variable the function needs is missing or unusable."""


class MalformedS3EventError(DynamoIngestError):
    """An S3 notification record lacks a field S3 always sends."""


class JobNotStartedError(DynamoIngestError):
    """A Glue job run could not be started for one or more files (they are in the ledger)."""
