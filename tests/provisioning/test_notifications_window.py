"""S3 takes about five minutes to start sending EventBridge events after they are enabled
(S3 User Guide, "Enabling Amazon EventBridge"; issue 7 item 4). In-process moto stands for
AWS here (no endpoint, so AWS's documented delay applies); the local AWS states its own."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from pipelinectl import engine
from pipelinectl.cli import main
from pipelinectl.clients import LOCAL_INFO_PATH, Call
from pipelinectl.config import EVENTBRIDGE_TAG_KEY
from pipelinectl.localaws import LocalAws

BUCKET = "ecommerce-landing-123456789012-us-east-1"


def _tags() -> dict[str, str]:
    tag_set = boto3.client("s3").get_bucket_tagging(Bucket=BUCKET)["TagSet"]
    return {t["Key"]: t["Value"] for t in tag_set}


def _eventbridge_on() -> bool:
    config = boto3.client("s3").get_bucket_notification_configuration(Bucket=BUCKET)
    return "EventBridgeConfiguration" in config


def test_up_warns_and_status_is_not_healthy_until_the_window_ends(
        cli: Any, skip_notification_delay: Callable[[], None]) -> None:
    up = cli("bucket")
    assert up.exit_code == 0
    warning = up.output[up.output.index("Warning:"):]
    assert f"EventBridge notifications of bucket {BUCKET} were enabled at" in warning
    assert "S3 takes about 5 minutes to start sending events" in warning
    assert "pipelinectl replay --since" in " ".join(warning.split())
    assert EVENTBRIDGE_TAG_KEY in _tags()

    status = json.loads(cli("--output", "json", "status").stdout)
    row = next(r for r in status["resources"] if r["kind"] == "S3 bucket")
    assert row["health"] == "warn" and "may never be processed" in row["state"]
    assert row["details"]["eventbridge_effective_at"].endswith("Z")
    assert "Warning:" in cli("bucket").output  # a re-run inside the window still says so

    skip_notification_delay()
    status = json.loads(cli("--output", "json", "status").stdout)
    row = next(r for r in status["resources"] if r["kind"] == "S3 bucket")
    assert (row["health"], row["state"]) == ("ok", "ready")
    assert "Warning:" not in cli("bucket").output


def test_the_time_is_stamped_before_notifications_are_enabled(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx, ["bucket"])
    order = [(c.operation, EVENTBRIDGE_TAG_KEY in json.dumps(c.params)) for c in p.calls
             if c.operation in {"PutBucketTagging", "PutBucketNotificationConfiguration"}]
    assert order[-1][0] == "PutBucketNotificationConfiguration"
    assert ("PutBucketTagging", True) in order[:-1]


def _interrupt(p: Any, when: str) -> None:
    """The enabling call never reaches S3 ("before"), or S3 applies it and the client never
    hears back ("after")."""
    def fail(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "RequestTimeout", "Message": "interrupted"}},
                          "PutBucketNotificationConfiguration")

    p.client("s3").meta.events.register(
        f"{'before' if when == 'before' else 'after'}-call.s3.PutBucketNotificationConfiguration",
        fail)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_around_enabling_still_ends_enabled_stamped_and_warned(pipeline: Any,
                                                                       when: str) -> None:
    from pipelinectl.resources import bucket_events

    p = pipeline()
    _interrupt(p, when)
    with pytest.raises(engine.StepFailed):
        engine.apply(p.ctx, ["bucket"])
    assert _eventbridge_on() is (when == "after")
    assert EVENTBRIDGE_TAG_KEY in _tags()  # stamped before the call, in both modes

    rerun = p.fresh()
    engine.apply(rerun, ["bucket"])
    assert _eventbridge_on()
    assert bucket_events.window(rerun) is not None  # what `up` warns from


def test_test_and_send_test_via_s3_drop_nothing_inside_the_window(
        cli: Any, api_calls: list[Call]) -> None:
    assert cli("bucket").exit_code == 0
    api_calls.clear()
    for command in (["send-test", "--via", "s3"], ["test"]):
        result = cli(*command)
        assert result.exit_code == 1
        assert "may never be processed" in result.output
        assert "pipelinectl replay --since" in result.output
    assert not [c for c in api_calls if c.mutating]  # no file dropped, nothing published


@pytest.fixture
def slow_local() -> Iterator[str]:
    """A local AWS emulating AWS's consistency with AWS's durations: S3's five minutes."""
    with LocalAws(port=0, consistency="aws") as local:
        yield local.endpoint_url


def test_the_local_aws_states_its_delay_and_the_cli_uses_it(slow_local: str) -> None:
    import urllib.request

    with urllib.request.urlopen(slow_local + LOCAL_INFO_PATH, timeout=5) as response:
        assert json.loads(response.read())["s3_eventbridge_delay_seconds"] == 300
    up = CliRunner().invoke(main, ["--endpoint-url", slow_local, "bucket"])
    assert up.exit_code == 0, up.output
    assert "S3 takes about 5 minutes to start sending events" in up.output


def test_the_local_aws_delivers_at_once_so_nothing_is_warned() -> None:
    with LocalAws(port=0) as local:
        up = CliRunner().invoke(main, ["--endpoint-url", local.endpoint_url, "bucket"])
        assert up.exit_code == 0, up.output
        assert "Warning:" not in up.output
