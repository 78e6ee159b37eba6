"""Configuration precedence and AWS limits that moto does not enforce."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pipelinectl import config
from pipelinectl.errors import UsageError


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    cfg = write(tmp_path / "p.toml", 'name = "fromfile"\nbatch_size = 7\nalert_threshold = 50\n'
                                     '[names]\nqueue = "ECommerceTransactionsQueue"\n'
                                     '[tags]\nteam = "data"\n')
    loaded = config.load({"config": cfg}, {})
    assert (loaded.name, loaded.batch_size, loaded.alert_threshold) == ("fromfile", 7,
                                                                         Decimal(50))
    env = {"PIPELINECTL_NAME": "fromenv", "PIPELINECTL_BATCH_SIZE": "8"}
    loaded = config.load({"config": cfg}, env)
    assert (loaded.name, loaded.batch_size) == ("fromenv", 8)
    loaded = config.load({"config": cfg, "name": "fromflag"}, env)
    assert loaded.name == "fromflag"
    names = loaded.names("123456789012", "eu-west-1")
    assert names.queue == "ECommerceTransactionsQueue"
    assert names.bucket == "fromflag-landing-123456789012-eu-west-1"
    assert loaded.resource_tags() == {"team": "data", "pipelinectl:pipeline": "fromflag"}


def test_aws_region_counts_as_environment(tmp_path: Path) -> None:
    cfg = write(tmp_path / "p.toml", 'region = "eu-west-1"\n')
    assert config.load({"config": cfg}, {}).region == "eu-west-1"
    assert config.load({"config": cfg}, {"AWS_REGION": "us-west-2"}).region == "us-west-2"
    assert config.load({"config": cfg, "region": "ap-south-1"},
                       {"AWS_REGION": "us-west-2"}).region == "ap-south-1"


def test_default_file_is_pipeline_toml_in_the_working_directory(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "pipeline.toml", "function_timeout = 10\n")
    loaded = config.load({}, {})
    assert loaded.function_timeout == 10 and loaded.queue_visibility_timeout == 60


@pytest.mark.parametrize(("text", "message"), [
    ("colour = 1\n", "unknown key 'colour'"),
    ("batch_size = 'ten'\n", "batch_size must be a whole number"),
    ("bucket_versioning = 3\n", "bucket_versioning must be true or false"),
    ("[names]\nsqs = 'x'\n", "unknown key 'sqs' in [names]"),
    ("[tags]\nteam = 3\n", "[tags] team must be a string"),
    ("name = \n", "is not valid TOML"),
])
def test_bad_files_get_one_clear_sentence(tmp_path: Path, text: str, message: str) -> None:
    cfg = write(tmp_path / "p.toml", text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.load({"config": cfg}, {})


def test_missing_explicit_file_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="does not exist"):
        config.load({"config": "/nonexistent/pipeline.toml"}, {})


@pytest.mark.parametrize(("flags", "message"), [
    ({"name": "Shop"}, "pipeline name 'Shop'"),
    ({"name": "shop_1"}, "pipeline name 'shop_1'"),
    ({"name": "a" * 33}, "use at most 32 characters"),
    ({"name": "a" * 28, "region": "ap-southeast-2"}, "use at most 27 characters"),
    ({"batch_size": 0}, "1 to 10000 records"),
    ({"batch_size": 10001, "batching_window_seconds": 1}, "1 to 10000 records"),
    ({"batch_size": 20}, "batching_window_seconds of at least 1"),
    ({"batching_window_seconds": 301}, "MaximumBatchingWindowInSeconds"),
    ({"function_timeout": 901}, "Lambda timeout"),
    ({"function_memory": 64}, "Lambda memory"),
    ({"function_timeout": 60, "visibility_timeout": 300}, "less than 6 x function_timeout"),
    ({"visibility_timeout": 43201}, "SQS visibility timeout"),
    ({"max_receive_count": 0}, "maxReceiveCount"),
    ({"log_retention_days": 10}, "not a CloudWatch Logs retention"),
    ({"alert_threshold": "-5"}, "alert_threshold must be positive"),
    ({"alert_threshold": "lots"}, "alert_threshold must be a number"),
    ({"alert_email": "not-an-address"}, "is not an e-mail address"),
    ({"maximum_concurrency": 1}, "MaximumConcurrency"),
    ({"maximum_concurrency": 1001}, "ScalingConfig.MaximumConcurrency"),
    ({"reserved_concurrency": -1}, "reserved concurrency is 0 or more"),
    ({"reserved_concurrency": 3, "maximum_concurrency": 4}, "Lambda would throttle"),
])
def test_aws_limits_are_checked_before_anything_is_created(flags: dict[str, object],
                                                           message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as error:
        config.load(flags, {})
    assert error.value.exit_code == 2


def test_the_longest_name_that_fits_the_bucket_rule_is_accepted() -> None:
    longest = "a" * (63 - len("-landing-123456789012-us-east-1"))
    assert config.load({"name": longest, "region": "us-east-1"}, {}).name == longest


@pytest.mark.parametrize(("key", "value", "rule"), [
    ("function", "x" * 65, "Lambda function names are 1-64"),
    ("queue", "bad name", "SQS queue names"),
    ("rule", "r" * 65, "EventBridge rule names"),
    ("role", "r" * 65, "IAM role names"),
    ("table", "ab", "DynamoDB table names"),
    ("kms_alias", "alias/aws/mine", "not under alias/aws/"),
    ("ingest_topic", "a.b", "SNS topic names"),
])
def test_overridden_names_follow_their_resource_rule(tmp_path: Path, key: str, value: str,
                                                     rule: str) -> None:
    cfg = write(tmp_path / "p.toml", f'[names]\n{key} = "{value}"\n')
    with pytest.raises(UsageError, match=rule):
        config.load({"config": cfg}, {})


def test_alias_aws_sns_is_refused_with_the_reason() -> None:
    with pytest.raises(UsageError, match="cannot publish to topics it encrypts"):
        config.load({"topic_kms_key": "alias/aws/sns"}, {})


def test_names_are_checked_again_with_the_region_from_the_profile(
        aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelinectl.engine import make_context

    profile = tmp_path / "config"
    profile.write_text("[default]\nregion = ap-southeast-2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    loaded = config.load({"name": "a" * 28}, {})  # fits us-east-1, not ap-southeast-2
    with pytest.raises(UsageError, match=r"in ap-southeast-2 .* S3 allows 63"):
        make_context(loaded)


@pytest.mark.parametrize(("flags", "env", "text", "message"), [
    ({}, {}, 'batch_size = "12"\n', "not the string '12' \\(drop the quotes\\)"),
    ({}, {}, "visibility_timeout = 0\n", "visibility_timeout = 0 is less than 6 x"),
    ({}, {"PIPELINECTL_BATCHSIZE": "5"}, "", "Unknown environment variable "
                                             "PIPELINECTL_BATCHSIZE"),
    ({}, {}, '[tags]\nteam = "data & ops #1"\n', "Tag team='data & ops #1' is not allowed"),
    ({"name": "xn--shop"}, {}, "", "not starting with xn--"),
])
def test_values_aws_or_we_would_misread_are_refused(tmp_path: Path, flags: dict[str, str],
                                                    env: dict[str, str], text: str,
                                                    message: str) -> None:
    cfg = write(tmp_path / "p.toml", text)
    with pytest.raises(UsageError, match=message):
        config.load({"config": cfg, **flags}, env)


def test_env_values_are_text_and_still_coerced(tmp_path: Path) -> None:
    loaded = config.load({}, {"PIPELINECTL_BATCH_SIZE": "12",
                              "PIPELINECTL_BATCHING_WINDOW_SECONDS": "1",
                              "PIPELINECTL_BUCKET_VERSIONING": "true"})
    assert (loaded.batch_size, loaded.bucket_versioning) == (12, True)


def test_conflicting_duplicates_is_checked_and_reaches_the_function(tmp_path: Path) -> None:
    from pipelinectl.clients import ClientFactory
    from pipelinectl.resources.base import Context
    from pipelinectl.resources.function import Function

    cfg = write(tmp_path / "p.toml", 'conflicting_duplicates = "last_wins"\n')
    loaded = config.load({"config": cfg}, {})
    ctx = Context(config=loaded, factory=ClientFactory(loaded), account="123456789012",
                  region="us-east-1")
    ctx.learned.dlq_url = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"
    ctx.learned.queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
    assert Function(ctx).environment()["CONFLICTING_DUPLICATES"] == "last_wins"
    assert config.load({}, {}).conflicting_duplicates == "reject"
    with pytest.raises(UsageError, match='conflicting_duplicates must be "reject" or '
                                         '"last_wins", not \'overwrite\''):
        config.load({}, {"PIPELINECTL_CONFLICTING_DUPLICATES": "overwrite"})


def test_every_setting_has_its_default_in_config_alone(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no pipeline.toml
    assert set(config.SETTINGS) == set(config.SETTING_TYPES)  # none lost on the way
    assert config.load({}, {}) == config.Config()
