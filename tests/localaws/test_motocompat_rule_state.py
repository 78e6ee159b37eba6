"""Patch c2: a DISABLED EventBridge rule delivers nothing (EventBridge API reference,
DisableRule: "A disabled rule won't match any events"). Measured before the patch: a file
that landed while the pipeline's rule was disabled was still delivered by the local AWS."""

from __future__ import annotations

import json
from typing import Any

import boto3

BUCKET = "rule-state-bucket"
PATTERN = json.dumps({"source": ["aws.s3", "app"], "detail-type": ["Object Created", "t"]})


def client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")


def _disabled_rule_to_queue() -> str:
    """A bucket sending to EventBridge and a DISABLED rule whose target is a queue (moto
    supports SQS targets unpatched); returns the queue URL."""
    s3, sqs, events = client("s3"), client("sqs"), client("events")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}})
    url = sqs.create_queue(QueueName="target")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="rule", EventPattern=PATTERN, State="DISABLED")
    events.put_targets(Rule="rule", Targets=[{"Id": "q", "Arn": arn}])
    return str(url)


def _send_both_ways() -> None:
    client("s3").put_object(Bucket=BUCKET, Key="incoming/a.csv", Body=b"x")
    client("events").put_events(Entries=[{"Source": "app", "DetailType": "t", "Detail": "{}"}])


def _sources(url: str) -> list[str]:
    messages = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return sorted(json.loads(m["Body"])["source"] for m in messages.get("Messages", []))


def test_defect_c2_moto_delivers_through_a_disabled_rule(plain_moto: None) -> None:
    url = _disabled_rule_to_queue()
    assert client("events").describe_rule(Name="rule")["State"] == "DISABLED"
    _send_both_ways()
    assert _sources(url) == ["app", "aws.s3"]


def test_patch_c2_a_disabled_rule_delivers_nothing_until_enabled(patched: None) -> None:
    url = _disabled_rule_to_queue()
    _send_both_ways()
    client("events").enable_rule(Name="rule")
    _send_both_ways()
    # moto delivers synchronously: what the queue holds is only what came after EnableRule.
    assert _sources(url) == ["app", "aws.s3"]
    client("events").disable_rule(Name="rule")
    _send_both_ways()
    assert _sources(url) == []
