"""Any AWS-compatible endpoint: the same `up` over HTTP, by flag or by AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from step_graph import every_resource_count

from pipelinectl.cli import main
from pipelinectl.localaws import LocalAws


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with LocalAws(port=0) as local:
        yield local.endpoint_url


def test_up_over_http_then_a_second_up_changes_nothing(endpoint: str) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["--endpoint-url", endpoint, "--name", "viahttp", "up"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(main, ["--endpoint-url", endpoint, "--name", "viahttp",
                                 "--output", "json", "up"])
    assert json.loads(again.output)["summary"] == {"unchanged": every_resource_count()}


def test_aws_endpoint_url_is_honoured(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    result = CliRunner().invoke(main, ["--name", "viaenv", "--output", "json", "plan"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["summary"] == {"create": every_resource_count()}
