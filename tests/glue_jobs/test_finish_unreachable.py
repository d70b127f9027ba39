"""The finish's notification to a topic whose endpoint accepts no connection: one line in the
log, the finish goes on (the file's move stands)."""

from __future__ import annotations

import logging

import pytest
from dynamo_ingest.control.finish import EventFlow
from dynamo_ingest.core.aws import AwsConfig

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def test_a_notification_to_an_unreachable_endpoint_is_one_line_and_not_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    config = AwsConfig.from_environ({"AWS_ENDPOINT_URL_SNS": UNREACHABLE,
                                     "AWS_ACCESS_KEY_ID": "testing",
                                     "AWS_SECRET_ACCESS_KEY": "testing"})
    # one attempt: every attempt is refused the same way
    sns = config.client("sns", retries={"max_attempts": 1, "mode": "standard"})
    flow = EventFlow(s3=None, sns=sns, sns_topic_arn="arn:aws:sns:us-east-1:1:t")

    with caplog.at_level(logging.WARNING):
        flow.notify("dynamo-ingest: load failed", {"event": "load failed"})

    [record] = [r for r in caplog.records if "could not publish" in r.getMessage()]
    assert record.exc_info is None  # no traceback
    assert f"AWS_ENDPOINT_URL_SNS={UNREACHABLE} is not reachable" in record.getMessage()
