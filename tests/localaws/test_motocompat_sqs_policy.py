"""Patch e: SetQueueAttributes must not wipe a queue policy it does not name."""

from __future__ import annotations

import json

import boto3

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
    "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:us-east-1:123456789012:q"}]})


def _policy_after_unrelated_update() -> str | None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="q", Attributes={"Policy": POLICY})["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "60"})
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "60"
    return attrs.get("Policy")


def test_defect_e_moto_wipes_the_policy(plain_moto: None) -> None:
    assert _policy_after_unrelated_update() is None


def test_patch_e_policy_survives_other_attribute_changes(aws: None) -> None:
    assert json.loads(_policy_after_unrelated_update() or "{}") == json.loads(POLICY)


def test_patch_e_an_explicit_policy_still_replaces_it(aws: None) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="q", Attributes={"Policy": POLICY})["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert not attrs.get("Policy")
