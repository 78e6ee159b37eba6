"""Bad input is refused before the first API call (issue 8): names that collide, tags AWS
would refuse half-way through `up`, regions that are not region names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelinectl.clients import Call


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("names", [
    '[names]\nqueue = "orders"\ndlq = "orders"\n',
    '[names]\ndlq = "ecommerce-transactions"\n',  # the default queue name
    '[names]\ningest_topic = "events"\nalerts_topic = "events"\n',
])
def test_two_resources_of_one_kind_with_one_name_are_refused_before_any_call(
        cli: Any, api_calls: list[Call], tmp_path: Path, names: str) -> None:
    for command in ("up", "plan"):
        result = cli("--config", _config(tmp_path, names), command)
        assert result.exit_code == 2, result.output
        assert "cannot share a name" in result.output
        assert result.output.count("\n") == 1  # one sentence
    assert api_calls == []


def test_sixty_tags_are_refused_before_any_call(cli: Any, api_calls: list[Call],
                                                tmp_path: Path) -> None:
    tags = "[tags]\n" + "".join(f't{i} = "v"\n' for i in range(60))
    result = cli("--config", _config(tmp_path, tags), "up")
    assert result.exit_code == 2
    assert "[tags] has 60 tags, but AWS allows 50 per resource" in result.output
    assert api_calls == []


def test_forty_eight_tags_fit_beside_ours_on_every_resource(cli: Any,
                                                            tmp_path: Path) -> None:
    import boto3

    tags = "[tags]\n" + "".join(f't{i:02} = "v"\n' for i in range(48))
    assert cli("--config", _config(tmp_path, tags), "bucket").exit_code == 0
    bucket = "ecommerce-landing-123456789012-us-east-1"
    assert len(boto3.client("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]) <= 50


@pytest.mark.parametrize(("tag", "message"), [
    ('owner = "ops@example.com"', "only letters, digits, spaces and _ . : / = + -"),
    ('"AWS:team" = "x"', "may not start with aws:"),
    ('"pipelinectl:pipeline" = "other"', "keys starting with pipelinectl: are"),
    (f'k = "{"v" * 257}"', "values at most 256"),
])
def test_tags_a_service_would_refuse_are_refused_before_any_call(
        cli: Any, api_calls: list[Call], tmp_path: Path, tag: str, message: str) -> None:
    result = cli("--config", _config(tmp_path, f"[tags]\n{tag}\n"), "up")
    assert result.exit_code == 2
    assert message in result.output
    assert api_calls == []


def test_our_tag_on_any_page_of_the_table_tags_is_found(cli: Any, tmp_path: Path) -> None:
    """DynamoDB's ListTagsOfResource pages its answer; with user tags that sort before
    ours, our ownership tag is not on the first page, and the table must still be ours."""
    tags = "[tags]\n" + "".join(f'a{i:02} = "v"\n' for i in range(12))
    cfg = _config(tmp_path, tags)
    assert cli("--config", cfg, "table").exit_code == 0
    again = cli("--config", cfg, "--output", "json", "table")
    assert again.exit_code == 0, again.output
    teardown = cli("--config", cfg, "teardown", "--yes")
    assert teardown.exit_code == 0, teardown.output


@pytest.fixture(scope="module")
def endpoint() -> Any:
    from pipelinectl.localaws import LocalAws

    with LocalAws(port=0) as local:
        yield local.endpoint_url


def test_a_region_no_aws_partition_has_is_refused_even_with_a_custom_endpoint(
        endpoint: str, api_calls: list[Call]) -> None:
    from click.testing import CliRunner

    from pipelinectl.cli import main

    for command in (["up"], ["teardown", "--yes"]):
        result = CliRunner().invoke(main, ["--region", "mars-north-9", "--endpoint-url",
                                           endpoint, *command])
        assert result.exit_code == 2, result.output
        assert "'mars-north-9' is not an AWS region name" in result.output
        assert "<html" not in result.output.lower()
    assert api_calls == []


def test_a_well_formed_unknown_region_is_refused_on_a_custom_endpoint_too(
        endpoint: str, api_calls: list[Call]) -> None:
    """An emulator fails on a region it does not know only after IAM and S3 created things
    (moto: HTML 500 pages), so a custom endpoint gets the same list of regions as AWS."""
    from click.testing import CliRunner

    from pipelinectl.cli import main

    result = CliRunner().invoke(main, ["--region", "eu-north-9", "--endpoint-url", endpoint,
                                       "up"])
    assert result.exit_code == 2, result.output
    assert "Unknown AWS region 'eu-north-9'" in result.output
    assert api_calls == []


def test_an_upper_case_region_is_blamed_on_the_region_not_the_bucket(
        cli: Any, api_calls: list[Call]) -> None:
    result = cli("--region", "US-EAST-1", "plan")
    assert result.exit_code == 2
    assert result.output.startswith("Error: 'US-EAST-1' is not an AWS region name")
    assert "bucket" not in result.output
    assert api_calls == []


def test_an_html_error_page_becomes_one_sentence() -> None:
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    from pipelinectl.errors import translate

    page = ("<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
            "<h1>Internal Server Error</h1>\n<p>The server encountered an internal error.</p>")
    # What botocore raises for moto's HTML 500 page: a JSON-protocol service puts the page in
    # the message with the status as the code; a query-protocol service cannot parse it.
    client_error = ClientError({"Error": {"Code": "500", "Message": page},
                                "ResponseMetadata": {"HTTPStatusCode": 500}}, "ListTables")
    parser_error = ResponseParserError(
        "Unable to parse response (syntax error: line 1, column 0), invalid XML received. "
        f"Further retries may succeed:\n{page.encode()!r}")
    for error, start in ((client_error, "ListTables failed: http://x answered HTTP 500"),
                         (parser_error, "A call failed: http://x answered with a page")):
        message = str(translate(error, endpoint="http://x"))
        assert message.startswith(start), message
        assert "(500 Internal Server Error)" in message
        assert "<" not in message and "\n" not in message
