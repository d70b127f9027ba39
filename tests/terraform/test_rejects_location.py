"""A rejects file never starts a load: with the folders Terraform configures (and passes to
the job for manual runs), no rejects key matches the S3 notification's filter."""

from __future__ import annotations

from typing import Any

import pytest
from dynamo_ingest.control.locations import BucketFolders, default_rejects_path

from tests.terraform.hcl import TerraformConfig, attr, blocks
from tests.terraform.test_incoming_suffixes import notification_suffixes

KEYS = ["incoming/orders.csv", "incoming/2024/05/orders.csv", "incoming/a.rejects.csv",
        "manual/orders.csv", "orders.csv", "error/orders.csv", "complete/x/orders.csv",
        "x/incoming/orders.csv"]
OTHER_FOLDERS = {"incoming_prefix": "landing/csv/", "complete_prefix": "landing/done/",
                 "error_prefix": "failed/"}


def _notification_filter(terraform: TerraformConfig,
                         variables: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """The filters' prefix and their suffixes (one filter per suffix of incoming_suffixes)."""
    body = terraform.resource("aws_s3_bucket_notification", "incoming")
    configured = blocks(body, "lambda_function")[0]
    return (terraform.resolve(attr(configured, "filter_prefix"), variables),
            tuple(notification_suffixes()))


def _job_folders(terraform: TerraformConfig, variables: dict[str, str]) -> BucketFolders:
    """The folders a manual run's job sees: Terraform's default arguments of the job."""
    defaults: dict[str, Any] = terraform.local("job_default_arguments")
    return BucketFolders(incoming=terraform.resolve(defaults["--incoming_prefix"], variables),
                         error=terraform.resolve(defaults["--error_prefix"], variables))


@pytest.mark.parametrize("variables", [{}, OTHER_FOLDERS], ids=["defaults", "other-folders"])
@pytest.mark.parametrize("key", KEYS)
def test_no_rejects_key_matches_the_s3_notification_filter(
        terraform: TerraformConfig, variables: dict[str, str], key: str) -> None:
    prefix, suffixes = _notification_filter(terraform, variables)
    folders = _job_folders(terraform, variables)
    assert folders.incoming == prefix, "the job must know the folder the trigger watches"
    rejects_key = default_rejects_path("bucket", key, folders).removeprefix("s3://bucket/")
    assert rejects_key.endswith(suffixes), "expected the rejects file to be a .csv file"
    assert not rejects_key.startswith(prefix), (
        f"the rejects file {rejects_key} of {key} would start a load of its own")
