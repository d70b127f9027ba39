"""The argument registry: every value checked once (finite, in range, named in the error), and
the fingerprint, the trigger's StartJobRun arguments and the report built from it."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from dynamo_ingest.core.arguments import (
    ArgumentSpec,
    AutoOrWholeNumber,
    Choice,
    Flag,
    JobArguments,
    Number,
    WholeNumber,
    WriteRate,
    job_argument_specs,
    job_arguments_from_mapping,
    parse_job_arguments,
)
from dynamo_ingest.core.errors import ArgumentError
from dynamo_ingest.core.report import RunReport

from tests.conftest import load_event
from trigger_lambda.events import S3EventRecord, raw_records
from trigger_lambda.service import job_arguments
from trigger_lambda.settings import Settings

BASE = {"source_path": "orders.csv", "target_table": "orders"}

# Values that a bare "> 0" check let through to fail later (inside Spark, or as Infinity in the
# report), and values outside what DynamoDB, Spark or a TTL can use.
REFUSED = [
    ("write_rate", "nan"), ("write_rate", "NaN"), ("write_rate", "inf"), ("write_rate", "-inf"),
    ("write_rate", "1e-9"), ("write_rate", "0.5"), ("write_rate", "0"), ("write_rate", "-5"),
    ("write_rate", "1e300"), ("write_rate", "fast"), ("write_rate", ""),
    ("write_share", "nan"), ("write_share", "inf"), ("write_share", "0"), ("write_share", "1.5"),
    ("write_share", "-0.1"),
    ("max_retry_seconds", "nan"), ("max_retry_seconds", "inf"), ("max_retry_seconds", "0"),
    ("max_retry_seconds", "-1"), ("max_retry_seconds", "1e9"),
    ("partitions", "0"), ("partitions", "-2"), ("partitions", "1.5"), ("partitions", "nan"),
    ("partitions", "1e3"), ("partitions", "100001"),
    ("checkpoint_every", "0"), ("checkpoint_every", "inf"), ("checkpoint_every", "10000000"),
    ("ttl_seconds", "0"), ("ttl_seconds", "nan"), ("ttl_seconds", "99999999999"),
    ("partition_key_shards", "0"), ("partition_key_shards", "10001"),
    ("restart", "maybe"), ("empty_value", "none"), ("write_mode", "upsert"),
    ("delimiter", ";;"), ("quote_char", ""),
]


@pytest.mark.parametrize(("name", "raw"), REFUSED)
def test_a_value_outside_what_the_argument_accepts_is_refused_naming_both(
        name: str, raw: str) -> None:
    with pytest.raises(ArgumentError) as refused:
        job_arguments_from_mapping({**BASE, name: raw})
    message = str(refused.value)
    assert message.startswith(f"--{name} expects "), message
    assert message.endswith(f"found {raw!r}"), message


def test_the_message_says_what_write_rate_accepts() -> None:
    with pytest.raises(ArgumentError) as refused:
        job_arguments_from_mapping({**BASE, "write_rate": "nan"})
    assert str(refused.value) == (
        "--write_rate expects auto or a write budget in WCU/s (1 is DynamoDB's smallest unit): "
        "a number >= 1 and <= 10,000,000, found 'nan'")


@pytest.mark.parametrize(("name", "raw", "typed"), [
    ("write_rate", "auto", "auto"), ("write_rate", "1", "1"), ("write_rate", "40000", "40000"),
    ("write_rate", "2.5e3", "2.5e3"), ("write_share", "1", 1.0), ("write_share", "0.01", 0.01),
    ("max_retry_seconds", "0.5", 0.5), ("max_retry_seconds", "86400", 86_400.0),
    ("partitions", " 8 ", 8), ("checkpoint_every", "1", 1), ("checkpoint_every", "auto", "auto"),
    ("partition_key_shards", "10000", 10_000),
    ("restart", "true", True), ("restart", "TRUE", True), ("restart", "1", True),
    ("restart", "false", False), ("restart", "", False), ("ttl_seconds", "3600", 3600),
])
def test_values_in_range_are_typed(name: str, raw: str, typed: object) -> None:
    extra = {"ttl_attribute": "expiresAt"} if name == "ttl_seconds" else {}
    assert getattr(job_arguments_from_mapping({**BASE, **extra, name: raw}), name) == typed


def test_every_number_the_job_reads_is_checked_as_a_finite_bounded_number() -> None:
    numeric = {s.name: s.rule for s in job_argument_specs()
               if isinstance(s.rule, WholeNumber | Number | WriteRate | AutoOrWholeNumber)}
    assert set(numeric) == {"partitions", "write_rate", "write_share", "max_retry_seconds",
                            "checkpoint_every", "ttl_seconds", "partition_key_shards",
                            "max_expansion", "max_uncompressed_bytes"}
    for name, rule in numeric.items():
        for raw in ("nan", "inf", "-inf", "1e400"):
            with pytest.raises(ArgumentError, match=f"^--{name} expects "):
                rule.parse(name, raw)


def test_glue_style_argv_parses_through_the_registry() -> None:
    args = parse_job_arguments([
        "--JOB_ID", "j_1", "--source_path", "s3://b/incoming/a.csv", "--target_table", "orders",
        "--restart", "true", "--write_rate", "250", "--partitions", "6", "--JOB_NAME", "load",
        "--job-bookmark-option", "job-bookmark-disable"])
    assert (args.restart, args.write_rate, args.partitions, args.JOB_NAME) == (
        True, "250", 6, "load")
    assert parse_job_arguments(args.to_argv()) == replace(args, JOB_NAME=None)


def test_a_missing_required_argument_is_named() -> None:
    with pytest.raises(ArgumentError, match="--target_table"):
        job_arguments_from_mapping({"source_path": "a.csv"})


def _another_value(spec: ArgumentSpec) -> object:
    """A value other than the default that the field's type holds."""
    rule = spec.rule
    if isinstance(rule, Choice):
        return next(o for o in rule.options if o != spec.default)
    if isinstance(rule, Flag):
        return not spec.default
    if isinstance(rule, WholeNumber):
        return rule.minimum + 1
    if isinstance(rule, Number):
        return rule.maximum
    return "another"


def test_the_fingerprint_changes_with_the_arguments_the_registry_marks_as_shaping() -> None:
    base = JobArguments(**BASE)
    for spec in job_argument_specs():
        changed = replace(base, **{spec.name: _another_value(spec)})
        differs = changed.load_fingerprint() != base.load_fingerprint()
        assert differs == spec.shapes_load, (
            f"--{spec.name}: shapes_load is {spec.shapes_load} but changing it "
            f"{'changes' if differs else 'keeps'} the load fingerprint")


def test_the_trigger_passes_exactly_the_arguments_the_registry_marks() -> None:
    settings = Settings(glue_job_name="load", ledger_table="ledger", target_table="orders",
                        partition_key="order_id", sns_topic_arn="arn:aws:sns:us-east-1:1:t",
                        sort_key="line", catalog_database="db", catalog_table="orders")
    (raw,) = raw_records(load_event("s3_put.json"))
    passed = job_arguments(S3EventRecord.from_raw(raw), settings)
    marked = {s.option for s in job_argument_specs() if s.passed_by_trigger}
    assert set(passed) == marked
    assert parse_job_arguments([x for kv in passed.items() for x in kv]).sort_key == "line"


def test_the_report_never_writes_nan_or_infinity_as_json() -> None:
    report = RunReport(status="SUCCEEDED", source_path="a.csv", target_table="orders",
                       write_rate_wcu_s=math.inf)
    try:
        text = report.to_json()
    except ValueError:
        return  # refused outright: no invalid JSON reaches a reader

    def refuse(constant: str) -> None:
        raise AssertionError(f"the report holds {constant}, which is not JSON")

    json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(("raw", "char"), [
    ("\\t", "\t"), ("tab", "\t"), ("TAB", "\t"), ("\\x1f", "\x1f"), ("\\u0001", "\x01"),
    ("\\\\", "\\"), ("comma", ","), ("semicolon", ";"), ("pipe", "|"), ("ctrl-a", "\x01"),
    ("\t", "\t"), (";", ";"), ("\\", "\\"),
])
def test_a_delimiter_typed_as_an_escape_or_a_name_is_the_character(raw: str, char: str) -> None:
    args = job_arguments_from_mapping({**BASE, "delimiter": raw, "quote_char": raw})
    assert (args.delimiter, args.quote_char) == (char, char)
    # Glue's parser and the CLI read the same rule: the Glue-style argv gives the same value.
    assert parse_job_arguments(["--source_path", "a.csv", "--target_table", "t",
                                "--delimiter", raw]).delimiter == char


@pytest.mark.parametrize("raw", ["\\q", "\\tt", "\\\\t", "\\x1", "tabs"])
def test_a_wrong_delimiter_is_shown_as_typed(raw: str) -> None:
    with pytest.raises(ArgumentError) as refused:
        job_arguments_from_mapping({**BASE, "delimiter": raw})
    message = str(refused.value)
    # As typed: repr() would show each backslash doubled.
    assert message.endswith(f"found '{raw}'"), message


def test_the_message_for_a_wrong_delimiter_says_what_it_accepts() -> None:
    with pytest.raises(ArgumentError) as refused:
        job_arguments_from_mapping({**BASE, "delimiter": "\\q"})
    assert str(refused.value) == (
        "--delimiter expects one character, a name (tab, comma, semicolon, pipe, space, colon, "
        "ctrl-a) or one escape (\\t, \\xHH, \\uHHHH, \\\\), found '\\q'")
