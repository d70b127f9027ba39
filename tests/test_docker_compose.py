"""``docker-compose.yml`` parsed with PyYAML: the Glue 5 image runs the suite, DynamoDB Local and
moto are wired in through the standard endpoint variables, and nothing drifts from
``pyproject.toml`` (pins, package layout, markers)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from local_aws.moto_server import ENDPOINT_VARIABLES

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = "/home/hadoop/workspace"  # where AWS's Glue 5 image expects the workspace


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as data."""
    text = (REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict), f"expected a mapping in docker-compose.yml, found {data!r}"
    return data


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    """``pyproject.toml``."""
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _requirements(pyproject: dict[str, Any]) -> dict[str, str]:
    """Requirement name (lower case, extras dropped) → the whole spec, runtime and dev."""
    specs = [*pyproject["project"]["dependencies"],
             *pyproject["project"]["optional-dependencies"]["dev"]]
    return {re.split(r"[\[<>=!~ ]", spec, maxsplit=1)[0].lower(): spec for spec in specs}


def _glue_script(compose: dict[str, Any]) -> str:
    command = compose["services"]["glue"]["command"]
    assert isinstance(command, list), f"expected a command list, found {command!r}"
    assert command[0] == "-c", f"expected the image's bash entrypoint to get -c, found {command!r}"
    assert len(command) == 2, f"expected ['-c', script], found {command!r}"
    return str(command[1])


def test_services_and_images(compose: dict[str, Any], pyproject: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"glue", "dynamodb-local", "moto"}
    assert services["glue"]["image"] == "public.ecr.aws/glue/aws-glue-libs:5"
    assert services["dynamodb-local"]["image"].split(":")[0] == "amazon/dynamodb-local"
    moto_pin = _requirements(pyproject)["moto"].split("==")[1]
    assert services["moto"]["image"] == f"motoserver/moto:{moto_pin}", (
        "expected the moto server image to be the moto version the project pins")


def test_dynamodb_local_runs_in_memory_with_one_shared_database(compose: dict[str, Any]) -> None:
    command = compose["services"]["dynamodb-local"]["command"]
    # -inMemory requires -sharedDb (DynamoDB local usage notes).
    assert command == ["-jar", "DynamoDBLocal.jar", "-sharedDb", "-inMemory"]


def _healthcheck_port(service: dict[str, Any]) -> int:
    test = " ".join(service["healthcheck"]["test"])
    match = re.search(r"(?:127\.0\.0\.1|localhost)[:/](\d+)", test)
    assert match, f"expected the healthcheck to probe a port, found {test!r}"
    return int(match.group(1))


def test_endpoints_point_at_the_services_they_name(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["glue"]["environment"]
    endpoints = {name: value for name, value in env.items() if name.startswith("AWS_ENDPOINT_URL")}
    assert set(endpoints) <= set(ENDPOINT_VARIABLES), (
        f"expected only the standard endpoint variables boto3 honours, found {sorted(endpoints)}")
    for name, service in (("AWS_ENDPOINT_URL", "moto"),
                          ("AWS_ENDPOINT_URL_DYNAMODB", "dynamodb-local")):
        url = urlsplit(endpoints[name])
        assert url.scheme == "http", f"{name}: expected http, found {endpoints[name]}"
        assert url.hostname == service, (
            f"{name} should reach the {service} service by name, found {endpoints[name]}")
        assert url.port == _healthcheck_port(services[service]), (
            f"{name} uses port {url.port} but {service} is checked on "
            f"{_healthcheck_port(services[service])}")


def test_fake_credentials_and_region_for_the_emulators(compose: dict[str, Any]) -> None:
    env = compose["services"]["glue"]["environment"]
    # DynamoDB Local accepts access key ids of letters and digits only.
    assert re.fullmatch(r"[A-Za-z0-9]+", env["AWS_ACCESS_KEY_ID"])
    assert env["AWS_SECRET_ACCESS_KEY"]
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"]
    assert env["GLUE_RUNTIME"] == "1", "the glue_runtime tests run only where this is set"
    assert env["DISABLE_SSL"] == "true"


def test_glue_service_waits_for_healthy_emulators(compose: dict[str, Any]) -> None:
    services = compose["services"]
    depends = services["glue"]["depends_on"]
    healthy = {"condition": "service_healthy"}
    assert depends == dict.fromkeys(("dynamodb-local", "moto"), healthy)
    for name in depends:
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL")
        assert check["retries"] >= 10


def test_glue_runs_the_suite_on_the_mounted_repository(
        compose: dict[str, Any], pyproject: dict[str, Any]) -> None:
    glue = compose["services"]["glue"]
    assert glue["working_dir"] == WORKSPACE
    assert f".:{WORKSPACE}" in glue["volumes"]
    script = _glue_script(compose)
    steps = [step.strip() for step in script.split("&&")]
    assert steps[-1].startswith("python3 -m pytest"), f"expected pytest last, found {steps[-1]!r}"
    # "$$" is compose's escape for a literal "$"; a single "${" would be interpolated by compose
    # from the host's environment before the container ever sees it.
    assert not re.search(r"(?<!\$)\$\{", script), "expected $${…} for shell variables"
    # Our packages from the mounted tree: the repository root and the package-dir roots.
    package_dirs = pyproject["tool"]["setuptools"]["package-dir"]
    roots = {WORKSPACE} | {f"{WORKSPACE}/{Path(d).parent}" for d in package_dirs.values()}
    paths = set(glue["environment"]["DYNAMO_INGEST_PATHS"].split(":"))
    assert roots <= paths, f"expected {sorted(roots)} on PYTHONPATH, found {sorted(paths)}"
    assert "$${DYNAMO_INGEST_PATHS}" in script


def test_pip_installs_exactly_the_project_pins(
        compose: dict[str, Any], pyproject: dict[str, Any]) -> None:
    install = _glue_script(compose).split("&&")[0]
    words = shlex.split(install)
    assert words[:4] == ["python3", "-m", "pip", "install"]
    specs = [w for w in words[4:] if not w.startswith("-")]
    assert specs, "expected the test dependencies to be installed"
    wanted = _requirements(pyproject)
    for spec in specs:
        name = re.split(r"[\[<>=!~ ]", spec, maxsplit=1)[0].lower()
        assert name in wanted, f"{spec} is not a dependency of pyproject.toml"
        assert spec == wanted[name], f"expected {wanted[name]!r} (pyproject.toml), found {spec!r}"
    installed = {re.split(r"[\[<>=!~ ]", s, maxsplit=1)[0].lower() for s in specs}
    # The image brings Spark, Arrow, pandas, boto3 and the real awsglue; the suite needs these.
    assert {"moto", "pytest", "pyyaml", "chispa"} <= installed
    assert not installed & {"pyspark", "awsglue-dev"}, (
        "installing pyspark or awsglue-dev would shadow the image's Glue runtime")


def test_glue_runtime_marker_is_registered(pyproject: dict[str, Any]) -> None:
    markers = pyproject["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("glue_runtime:") for m in markers)
