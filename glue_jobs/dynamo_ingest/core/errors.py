"""The named errors dynamo-ingest raises on purpose; each message says what was expected,
what was found and what to do."""

from __future__ import annotations

from typing import ClassVar


class DynamoIngestError(Exception):
    """Base class of every error this project raises on purpose.

    ``retryable`` is False for failures that another run of the same file with the same
    arguments meets again (the callback sends such a file to ``error/`` without retrying).
    """

    retryable: ClassVar[bool] = True


class ArgumentError(DynamoIngestError):
    """A job argument is missing or holds a value the job cannot use."""

    retryable = False


class SourceError(DynamoIngestError):
    """The source file cannot be found or read."""


class SchemaMismatchError(DynamoIngestError):
    """The file's header does not match the catalog table's columns."""

    retryable = False


class CatalogError(DynamoIngestError):
    """The Glue catalog table is missing or describes something the job cannot read."""


class FileLayoutError(SourceError, CatalogError):
    """The file's own content gives no usable layout (empty, not UTF-8, no header); an S3
    object never changes under its ETag, so every run of it fails alike."""

    retryable = False


class TargetTableError(DynamoIngestError):
    """The target DynamoDB table is missing or its key schema does not fit the arguments."""

    retryable = False


class MissingTableError(TargetTableError):
    """The target table does not exist: a caller that may create it (`flow` on its embedded
    moto server) tells this from a key schema that does not fit."""


class WriteFailedError(DynamoIngestError):
    """Rows could not be written within the retry budget (they are in the rejects file)."""


class LedgerConflictError(DynamoIngestError):
    """A conditional ledger transition lost against another actor."""


class JavaNotFoundError(DynamoIngestError):
    """No Java runtime that Spark 3.5 can use was found."""
