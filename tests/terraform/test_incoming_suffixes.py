"""The suffixes that start a load are one setting: the trigger checks
:func:`dynamo_ingest.core.formats.incoming_suffixes`, and Terraform's S3 notification has one
filter per suffix from ``terraform/incoming_suffixes.json``, which must hold the same list."""

from __future__ import annotations

import json

from dynamo_ingest.core.formats import incoming_suffixes, is_incoming_name

from tests.terraform.hcl import REPO_ROOT, TerraformConfig, attr, blocks

SUFFIXES_FILE = REPO_ROOT / "terraform" / "incoming_suffixes.json"


def notification_suffixes() -> list[str]:
    """The S3 filter suffixes Terraform deploys (its local.incoming_suffixes)."""
    return list(json.loads(SUFFIXES_FILE.read_text(encoding="utf-8"))["filter_suffixes"])


def test_terraforms_filters_are_the_triggers_suffixes_in_both_cases() -> None:
    # S3 filters are case-sensitive, the trigger is not: lower and upper case of each.
    expected = [form for suffix in incoming_suffixes() for form in (suffix, suffix.upper())]
    assert notification_suffixes() == expected, (
        f"terraform/incoming_suffixes.json is out of date: its filter_suffixes should be "
        f"{json.dumps(expected)}")


def test_the_notification_has_one_filter_per_suffix_from_the_file(
        terraform: TerraformConfig) -> None:
    assert "incoming_suffixes.json" in str(terraform.local("incoming_suffixes"))
    body = terraform.resource("aws_s3_bucket_notification", "incoming")
    (dynamic,) = [d["lambda_function"] for d in body["dynamic"] if "lambda_function" in d]
    assert "local.incoming_suffixes" in str(dynamic["for_each"])
    (configured,) = blocks(body, "lambda_function")
    assert attr(configured, "filter_suffix") == "${lambda_function.value}"


def test_no_filter_suffix_overlaps_another() -> None:
    # S3 refuses two filters of one event type and prefix whose suffixes overlap (one ends
    # with the other): ".csv" and ".csv.gz" do not, ".gz" and ".csv.gz" would.
    suffixes = notification_suffixes()
    overlapping = [(a, b) for a in suffixes for b in suffixes if a != b and a.endswith(b)]
    assert overlapping == []


def test_the_trigger_accepts_every_suffix_in_any_case() -> None:
    for name in ("incoming/x.csv", "incoming/x.csv.gz", "incoming/X.Csv.Bz2",
                 "incoming/x.TSV.ZST", "incoming/x.tsv"):
        assert is_incoming_name(name), name
    for name in ("incoming/x.gz", "incoming/x.csv.zip", "incoming/x.json", "incoming/x.csv.gz.1"):
        assert not is_incoming_name(name), name
