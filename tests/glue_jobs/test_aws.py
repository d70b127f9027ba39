"""Clients built from the standard AWS variables: an endpoint that fails is named with the
variable that set it, for every service the project calls (the loader Lambda's Invoke too)."""

from __future__ import annotations

import re

import pytest
from dynamo_ingest.core.aws import SERVICES, AwsConfig, EndpointUnreachableError

from local_aws.moto_server import ENDPOINT_VARIABLES

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture
def no_endpoints(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No endpoint variable set (per service or general), and an emulator's static keys."""
    for name in (*ENDPOINT_VARIABLES, *(f"AWS_ENDPOINT_URL_{s.upper()}" for s in SERVICES)):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return monkeypatch


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_LAMBDA", "AWS_ENDPOINT_URL"])
def test_an_unreachable_lambda_endpoint_names_the_variable_that_set_it(
        no_endpoints: pytest.MonkeyPatch, variable: str) -> None:
    # The trigger hands small files to the loader with lambda:Invoke, and `retry` does too:
    # a Lambda endpoint that accepts no connection is one error naming its variable, as a
    # DynamoDB or S3 one is (not "check the network" about an endpoint nobody typed).
    no_endpoints.setenv(variable, UNREACHABLE)
    lambda_ = AwsConfig.from_environ().client("lambda", retries={"max_attempts": 1})

    with pytest.raises(EndpointUnreachableError,
                       match=f"^{re.escape(f'{variable}={UNREACHABLE} is not reachable')}"):
        lambda_.invoke(FunctionName="dynamo-ingest-loader", InvocationType="Event",
                       Payload=b"{}")


def test_the_lambda_variable_wins_over_the_general_one(no_endpoints: pytest.MonkeyPatch) -> None:
    # As boto3 itself decides: the local flow points Lambda at its Invoke endpoint while
    # every other service stays on the emulator.
    no_endpoints.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    no_endpoints.setenv("AWS_ENDPOINT_URL_LAMBDA", UNREACHABLE)
    config = AwsConfig.from_environ()
    assert config.endpoints == {**dict.fromkeys(SERVICES, "http://127.0.0.1:1"),
                                "lambda": UNREACHABLE}
    assert config.endpoint_origins["lambda"] == "AWS_ENDPOINT_URL_LAMBDA"
    assert config.client("lambda").meta.endpoint_url == UNREACHABLE
