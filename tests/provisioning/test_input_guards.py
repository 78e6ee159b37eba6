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
