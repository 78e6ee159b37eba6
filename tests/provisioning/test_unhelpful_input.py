"""Bad input a careless user gives gets one sentence with the fix and the right exit code
(issue 8, "Unhelpful"): endpoint URLs, config files, long names, a bogus key, the wrong
--name, and operate flags SNS or CloudWatch Logs would refuse with their own words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipelinectl.cli import main
from pipelinectl.errors import UsageError
from pipelinectl.operate import logs


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def one_sentence(result: Any, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return str(lines[0])


@pytest.mark.parametrize("url, problem", [
    ("notaurl", "scheme must be http or https"),
    ("ftp://example.com", "not 'ftp'"),
    ("http://127.0.0.1:99999", "port must be 1-65535"),
    ("http://:4566", "no host"),
])
def test_a_bad_endpoint_url_is_a_usage_error_naming_a_valid_one(url: str, problem: str) -> None:
    line = one_sentence(run("--endpoint-url", url, "plan"), 2)
    assert problem in line and "http://127.0.0.1:4566" in line


def test_a_bad_aws_endpoint_url_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:4566")
    assert "AWS_ENDPOINT_URL" in one_sentence(run("plan"), 2)


def test_a_config_path_that_is_a_directory_is_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINECTL_CONFIG", str(tmp_path))
    assert "is a directory" in one_sentence(run("plan"), 2)
    monkeypatch.delenv("PIPELINECTL_CONFIG")
    (tmp_path / "pipeline.toml").mkdir()
    monkeypatch.chdir(tmp_path)
    assert "pipeline.toml is a directory" in one_sentence(run("plan"), 2)


def test_an_unreadable_config_file_is_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text("batch_size = 5\n")

    def denied(self: Path, *args: Any, **kwargs: Any) -> str:
        # chmod 0 does not stop root, who runs CI here: the error a read would raise
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    line = one_sentence(run("--config", str(config), "plan"), 2)
    assert "cannot be read (Permission denied)" in line


def test_a_byte_order_mark_in_the_config_file_is_accepted(aws: None, tmp_path: Path) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_bytes(b"\xef\xbb\xbfbatch_size = 5\n")
    result = run("--config", str(config), "--output", "json", "plan")
    assert result.exit_code == 0, result.output


def test_a_name_too_long_for_the_bucket_says_how_long_it_may_be() -> None:
    line = one_sentence(run("--region", "us-east-1", "--name", "a" * 40, "plan"), 2)
    assert "at most 32 characters" in line and "[names] bucket" in line


def test_a_name_over_the_limit_gives_the_limit() -> None:
    assert "1-63" in one_sentence(run("--name", "a" * 80, "plan"), 2)


@pytest.mark.parametrize("key", ["bogus", "alias", "key/123", "arn:aws:kms:us-east-1:1:key/x"])
def test_a_topic_key_that_is_no_kms_key_form_is_refused_before_any_call(
        tmp_path: Path, key: str) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(f'topic_kms_key = "{key}"\n')
    assert "is not a KMS key" in one_sentence(run("--config", str(config), "plan"), 2)


@pytest.mark.parametrize("key", [
    "alias/team-key", "1234abcd-12ab-34cd-56ef-1234567890ab",
    "mrk-1234abcd12ab34cd56ef1234567890ab",
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:us-east-1:123456789012:alias/team-key", "pipeline", "none"])
def test_every_kms_key_form_is_accepted(key: str) -> None:
    from pipelinectl.config import _check_topic_key

    _check_topic_key(key)


def test_teardown_of_a_name_that_has_nothing_lists_the_pipelines_that_exist(
        cli: Any) -> None:
    assert cli("--name", "ops", "up").exit_code == 0
    result = cli("--name", "opz", "teardown", "--yes")
    assert result.exit_code == 0
    assert "Nothing to tear down" in result.output
    assert "Pipelines found here: ops (pass --name" in result.output


def test_status_before_up_says_to_run_up(cli: Any) -> None:
    result = cli("status")
    assert result.exit_code == 0
    assert "run `pipelinectl up` to create it" in result.output


@pytest.mark.parametrize("text", ["99999999d", "0001-01-01", "1969-07-20T20:17:00Z"])
def test_logs_since_before_1970_means_from_the_start(text: str) -> None:
    assert logs.parse_since(text, now=1_800_000_000) == 0


def test_logs_since_in_the_future_is_refused() -> None:
    with pytest.raises(UsageError, match="in the future"):
        logs.parse_since("9999-12-31", now=1_800_000_000)


def test_send_test_with_an_empty_type_is_a_usage_error() -> None:
    result = run("send-test", "--type", "")
    assert result.exit_code == 2
    assert "must not be empty" in result.output and "Traceback" not in result.output
