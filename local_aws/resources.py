"""What Terraform creates for a run, created idempotently on whatever endpoint the standard
AWS variables point at (a moto server locally): bucket, catalog database, target and ledger
tables. Backs ``dynamo-ingest init`` and ``demo``. The bucket's ``incoming/``, ``complete/``
and ``error/`` prefixes need no objects: S3 has no folders."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from dynamo_ingest.core.errors import ArgumentError, DynamoIngestError, TargetTableError
from dynamo_ingest.core.keys import KeyAttribute, KeySchema, KeyType, key_schema_from_description

if TYPE_CHECKING:
    from dynamo_ingest.core.aws import AwsConfig
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_s3 import S3Client

Billing = Literal["PAY_PER_REQUEST", "PROVISIONED"]
DEFAULT_REGION = "us-east-1"


class ResourceSetupError(DynamoIngestError):
    """A resource could not be created or is not usable as it stands."""


@dataclass(frozen=True)
class ResourceStatus:
    """One resource: what it is, its name, and whether this call created it."""

    kind: str
    name: str
    created: bool


@dataclass(frozen=True)
class ResourceSummary:
    """What :func:`ensure_resources` found or created, in creation order."""

    region: str
    resources: tuple[ResourceStatus, ...]

    @property
    def created(self) -> tuple[ResourceStatus, ...]:
        """The resources this call created."""
        return tuple(r for r in self.resources if r.created)

    @property
    def existing(self) -> tuple[ResourceStatus, ...]:
        """The resources that were already there."""
        return tuple(r for r in self.resources if not r.created)


@dataclass(frozen=True)
class AwsClients:
    """The three clients ``init`` needs, all for one region."""

    s3: S3Client
    glue: GlueClient
    dynamodb: DynamoDBClient
    region: str

    @classmethod
    def from_config(cls, config: AwsConfig | None = None) -> AwsClients:
        """Clients for the endpoints and region of ``config`` (default: the standard variables).

        With no region anywhere (variables or profile) the region is us-east-1.
        """
        import boto3
        from dynamo_ingest.core.aws import AwsConfig

        config = config or AwsConfig.from_environ()
        if config.region is None:
            config = replace(config, region=boto3.session.Session().region_name or DEFAULT_REGION)
        return cls(s3=config.client("s3"), glue=config.client("glue"),
                   dynamodb=config.client("dynamodb"), region=str(config.region))


def ensure_resources(clients: AwsClients | None = None, *, bucket: str, database: str,
                     target_table: str, partition_key: tuple[str, KeyType],
                     sort_key: tuple[str, KeyType] | None, ledger_table: str,
                     billing: Billing = "PAY_PER_REQUEST", write_capacity: int | None = None,
                     timeout_s: float = 60.0) -> ResourceSummary:
    """Create what is missing among bucket, catalog database, target and ledger tables.

    Safe to run again. An existing target table must have the requested key schema, else
    :class:`TargetTableError` names the difference. Tables are ACTIVE when this returns.
    """
    if billing not in ("PAY_PER_REQUEST", "PROVISIONED"):
        raise ArgumentError(f"billing expects PAY_PER_REQUEST or PROVISIONED, found {billing!r}")
    if billing == "PROVISIONED" and (write_capacity is None or write_capacity < 1):
        raise ArgumentError(f"PROVISIONED billing needs write_capacity >= 1, found "
                            f"{write_capacity!r}: pass a WCU budget or use PAY_PER_REQUEST")
    wanted = KeySchema(KeyAttribute(*partition_key),
                       KeyAttribute(*sort_key) if sort_key else None)
    for attribute in wanted.attributes:
        if attribute.type not in ("S", "N", "B"):
            raise ArgumentError(f"key {attribute.name!r} expects type S, N or B, found "
                                f"{attribute.type!r}")
    clients = clients or AwsClients.from_config()
    resources = (
        ResourceStatus("s3 bucket", bucket, _ensure_bucket(clients.s3, bucket, clients.region)),
        ResourceStatus("glue database", database, _ensure_database(clients.glue, database)),
        ResourceStatus("dynamodb table", target_table,
                       _ensure_target_table(clients.dynamodb, target_table, wanted, billing,
                                            write_capacity, timeout_s)),
        ResourceStatus("ledger table", ledger_table,
                       _ensure_ledger_table(clients.dynamodb, ledger_table, timeout_s)),
    )
    return ResourceSummary(region=clients.region, resources=resources)


def _error_code(err: Exception) -> str:
    response: dict[str, Any] = getattr(err, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _ensure_bucket(s3: S3Client, bucket: str, region: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as err:
        if _error_code(err) not in ("404", "NoSuchBucket", "NotFound"):
            raise ResourceSetupError(
                f"bucket {bucket!r} exists but is not usable ({_error_code(err)}): it may belong "
                f"to another account; choose another --bucket") from err
    try:
        if region == DEFAULT_REGION:
            # us-east-1 rejects an explicit LocationConstraint for itself.
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    except ClientError as err:
        if _error_code(err) == "BucketAlreadyOwnedByYou":
            return False
        raise ResourceSetupError(f"cannot create bucket {bucket!r} in {region}: {err}") from err
    return True


def _ensure_database(glue: GlueClient, database: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        glue.get_database(Name=database)
        return False
    except ClientError as err:
        if _error_code(err) != "EntityNotFoundException":
            raise ResourceSetupError(f"cannot read catalog database {database!r}: {err}") from err
    try:
        glue.create_database(DatabaseInput={"Name": database})
    except ClientError as err:
        if _error_code(err) == "AlreadyExistsException":
            return False  # created concurrently: what we wanted
        raise ResourceSetupError(
            f"cannot create catalog database {database!r}: {err}") from err
    return True


def _describe(dynamodb: DynamoDBClient, table: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return dict(dynamodb.describe_table(TableName=table)["Table"])
    except ClientError as err:
        if _error_code(err) == "ResourceNotFoundException":
            return None
        raise ResourceSetupError(f"cannot describe table {table!r}: {err}") from err


def _describe_key(schema: KeySchema) -> str:
    parts = [f"partition key {schema.partition.name} ({schema.partition.type})"]
    parts.append(f"sort key {schema.sort.name} ({schema.sort.type})" if schema.sort
                 else "no sort key")
    return " and ".join(parts)


def _ensure_target_table(dynamodb: DynamoDBClient, table: str, wanted: KeySchema,
                         billing: Billing, write_capacity: int | None, timeout_s: float) -> bool:
    from botocore.exceptions import ClientError

    existing = _describe(dynamodb, table)
    if existing is not None:
        found = key_schema_from_description(existing)
        if found != wanted:
            raise TargetTableError(
                f"table {table!r} exists with {_describe_key(found)}, but {_describe_key(wanted)} "
                f"was asked for: pass the table's key schema or choose another --target_table")
        wait_for_table(dynamodb, table, timeout_s)
        return False
    request: dict[str, Any] = {
        "TableName": table,
        "KeySchema": [{"AttributeName": wanted.partition.name, "KeyType": "HASH"}]
        + ([{"AttributeName": wanted.sort.name, "KeyType": "RANGE"}] if wanted.sort else []),
        "AttributeDefinitions": [{"AttributeName": a.name, "AttributeType": a.type}
                                 for a in wanted.attributes],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        # The load never reads the table; reads get the same budget so a check scan is usable.
        request["ProvisionedThroughput"] = {"ReadCapacityUnits": write_capacity,
                                            "WriteCapacityUnits": write_capacity}
    try:
        dynamodb.create_table(**request)
    except ClientError as err:
        if _error_code(err) != "ResourceInUseException":
            raise TargetTableError(f"cannot create table {table!r}: {err}") from err
        # Created concurrently: it must still have our key schema.
        return _ensure_target_table(dynamodb, table, wanted, billing, write_capacity, timeout_s)
    wait_for_table(dynamodb, table, timeout_s)
    return True


def _ensure_ledger_table(dynamodb: DynamoDBClient, table: str, timeout_s: float) -> bool:
    # The ledger owns its key schema; we only ask it to exist.
    from dynamo_ingest.control.ledger import Ledger

    existed = _describe(dynamodb, table) is not None
    Ledger(dynamodb, table).ensure_table(timeout_s=timeout_s)  # waits until ACTIVE
    return not existed


def wait_for_table(dynamodb: DynamoDBClient, table: str, timeout_s: float = 60.0) -> None:
    """Poll DescribeTable until ``table`` is ACTIVE; bounded by ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    status = "missing"
    while True:
        description = _describe(dynamodb, table)
        status = "missing" if description is None else str(description.get("TableStatus"))
        if status == "ACTIVE":
            return
        if time.monotonic() + delay > deadline:
            raise ResourceSetupError(
                f"table {table!r} expected ACTIVE within {timeout_s:.0f}s, still {status}: "
                f"check the endpoint (AWS_ENDPOINT_URL_DYNAMODB) and retry")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
