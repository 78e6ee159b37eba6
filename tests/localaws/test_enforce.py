"""Policies enforced as AWS does, on the pipeline `up` builds (in-process `up` against a
LocalAws with enforcement on): what `up` writes works, a broken variant is refused with its
reason, and a fixed policy lets the next delivery through.

Deliveries are synchronous inside the call that causes them (PutObject, Publish), so a
capture queue subscribed to the ingest topic (with a queue policy, as AWS requires) proves
whether a delivery happened as soon as that call returns.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from polling import wait_for

from pipelinectl import config as config_module
from pipelinectl import engine
from pipelinectl.clients import ClientFactory
from pipelinectl.localaws.server import LocalAws
from pipelinectl.resources.base import Context
from pipelinectl.resources.role import POLICY_NAME, Role

ACCOUNT = "123456789012"
pytestmark = pytest.mark.xdist_group("enforce-local")


class Pipeline:
    """The pipeline `up` built on a local AWS that enforces policies, plus capture helpers."""

    def __init__(self, aws: LocalAws) -> None:
        self.aws = aws
        config = config_module.load({"endpoint_url": aws.endpoint_url})
        self.ctx: Context = engine.make_context(config, ClientFactory(config))
        engine.apply(self.ctx)
        self.names = self.ctx.names
        self.ingest = self.ctx.arn("sns", self.names.ingest_topic)
        self.capture_url = self._capture_queue()

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name="us-east-1", endpoint_url=self.aws.endpoint_url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def _capture_queue(self) -> str:
        sqs = self.client("sqs")
        arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:capture-ingest"
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": self.ingest}}}]}
        url = str(sqs.create_queue(QueueName="capture-ingest",
                                   Attributes={"Policy": json.dumps(policy)})["QueueUrl"])
        self.client("sns").subscribe(TopicArn=self.ingest, Protocol="sqs", Endpoint=arn)
        return url

    def captured(self) -> int:
        sqs = self.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.capture_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=self.capture_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def metric(self, namespace: str, name: str, dimension: tuple[str, str]) -> float:
        from moto.cloudwatch.models import cloudwatch_backends

        data = cloudwatch_backends[ACCOUNT]["us-east-1"].metric_data
        return sum(float(d.value) for d in data if d.namespace == namespace and d.name == name
                   and any((x.name, x.value) == dimension for x in d.dimensions))

    def drop(self, key: str, body: bytes = b"transaction_id,amount,timestamp\n") -> None:
        self.client("s3").put_object(Bucket=self.names.bucket, Key=key, Body=body)


@pytest.fixture(scope="module")
def pipeline(build_cache: Path) -> Iterator[Pipeline]:
    saved = dict(os.environ)
    os.environ.update({"PIPELINECTL_CACHE_DIR": str(build_cache), "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "PIPELINECTL_NAME", "PIPELINECTL_CONFIG"):
        os.environ.pop(key, None)
    try:
        with LocalAws(port=0, metrics_interval=0.5, alarm_interval=0.5) as aws:
            yield Pipeline(aws)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_policies_up_writes_deliver_a_file_and_a_message(pipeline: Pipeline) -> None:
    pipeline.drop(f"incoming/ok/{uuid.uuid4().hex}.csv")
    assert pipeline.captured() == 1  # S3 -> EventBridge -> SNS (key) -> SQS, all allowed
    pipeline.client("sns").publish(TopicArn=pipeline.ingest, Message="{}")
    assert pipeline.captured() == 1


def _key_policy(pipeline: Pipeline) -> tuple[Any, str, dict[str, Any]]:
    kms = pipeline.client("kms")
    key_id = kms.describe_key(KeyId=pipeline.names.kms_alias)["KeyMetadata"]["KeyId"]
    return kms, key_id, json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")[
        "Policy"])


def test_source_account_on_the_eventbridge_key_statement_drops_files(
        pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    """DESIGN.md §2 / SNS Developer Guide: EventBridge sends no aws:Source* keys to KMS for
    an encrypted topic, so a key statement that requires one refuses every delivery."""
    kms, key_id, policy = _key_policy(pipeline)
    fixed = json.dumps(policy)
    for statement in policy["Statement"]:
        if statement["Sid"] == "EventBridgePublishesToTopics":
            statement["Condition"] = {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))
    rule = pipeline.names.rule
    before = pipeline.metric("AWS/Events", "FailedInvocations", ("RuleName", rule))
    with caplog.at_level(logging.WARNING, logger="pipelinectl.localaws"):
        pipeline.drop(f"incoming/refused/{uuid.uuid4().hex}.csv")
    assert pipeline.captured() == 0  # the topic never got it
    assert pipeline.metric("AWS/Events", "FailedInvocations", ("RuleName", rule)) - before == 1
    sqs = pipeline.client("sqs")
    dlq = sqs.get_queue_url(QueueName=pipeline.names.dlq)["QueueUrl"]
    letters = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10,
                                  MessageAttributeNames=["All"]).get("Messages", [])
    codes = [m["MessageAttributes"]["ERROR_CODE"]["StringValue"] for m in letters
             if "ERROR_CODE" in m.get("MessageAttributes", {})]
    assert codes == ["NO_PERMISSIONS"]  # the rule's target DLQ keeps the event
    refusal = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("kms:GenerateDataKey" in m and "aws:SourceAccount" in m and "key absent" in m
               for m in refusal), refusal
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=fixed)
    pipeline.drop(f"incoming/fixed/{uuid.uuid4().hex}.csv")
    assert pipeline.captured() == 1


def test_a_queue_policy_naming_another_topic_refuses_sns(pipeline: Pipeline) -> None:
    sqs = pipeline.client("sqs")
    url = sqs.get_queue_url(QueueName=pipeline.names.queue)["QueueUrl"]
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"][
        "Policy"]
    wrong = policy.replace(pipeline.ingest, pipeline.ingest + "-other")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": wrong})
    topic = ("TopicName", pipeline.names.ingest_topic)
    before = pipeline.metric("AWS/SNS", "NumberOfNotificationsFailed", topic)
    try:
        pipeline.client("sns").publish(TopicArn=pipeline.ingest, Message="{}")
        assert pipeline.metric("AWS/SNS", "NumberOfNotificationsFailed", topic) - before == 1
        assert pipeline.captured() == 1  # the capture queue's own policy still admits it
    finally:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    pipeline.client("sns").publish(TopicArn=pipeline.ingest, Message="{}")
    assert pipeline.metric("AWS/SNS", "NumberOfNotificationsFailed", topic) - before == 1


def test_an_alarm_action_to_a_topic_under_the_aws_managed_key_is_refused(
        pipeline: Pipeline) -> None:
    """SNS Developer Guide: CloudWatch alarm actions cannot use a topic encrypted with the AWS
    managed alias/aws/sns key; the failure is in the alarm's history."""
    from moto.cloudwatch.models import cloudwatch_backends

    sns, cloudwatch = pipeline.client("sns"), pipeline.client("cloudwatch")
    topic = sns.create_topic(Name="managed-key-alerts",
                             Attributes={"KmsMasterKeyId": "alias/aws/sns"})["TopicArn"]
    alarm_arn = f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:managed-key-alarm"
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish", "Resource": topic,
            "Condition": {"ArnEquals": {"aws:SourceArn": alarm_arn}}}]}))
    cloudwatch.put_metric_alarm(
        AlarmName="managed-key-alarm", Namespace="Test", MetricName="Broken", Statistic="Sum",
        Period=10, EvaluationPeriods=1, Threshold=0, ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="breaching", AlarmActions=[topic])
    alarm = cloudwatch_backends[ACCOUNT]["us-east-1"].alarms["managed-key-alarm"]
    history = wait_for(lambda: [h for h in alarm.history if h[0] == "Action"], 15,
                       "the failed action in the alarm's history")
    assert history[0][1].startswith(f"Failed to execute action {topic}. Received error: "
                                    f'"Resource: {alarm_arn} is not authorized to perform: '
                                    "kms:GenerateDataKey")


#: What the processor does that each statement of the role allows (resources/role.py), as the
#: action a refusal names when that statement is missing.
STATEMENT_ACTIONS = {
    "ReadIncomingFiles": "s3:GetObject", "TellMissingIncomingFiles": "s3:ListBucket",
    "WriteRejects": "s3:PutObject", "StoreTransactions": "dynamodb:",
    "PublishAlerts": "sns:Publish", "ConsumeQueue": "sqs:ReceiveMessage",
    "DeadLetterInvalidMessages": "sqs:SendMessage", "WriteLogs": "logs:CreateLogStream",
    "UseTopicKey": "kms:GenerateDataKey", "ContinueLargeFiles": "sqs:SendMessage",
}


def _role_policy(pipeline: Pipeline) -> dict[str, Any]:
    from pipelinectl.resources.kms import topic_key_arn

    return Role(pipeline.ctx).inline_policy(topic_key_arn(pipeline.ctx))


def test_every_statement_of_the_role_is_named(pipeline: Pipeline) -> None:
    assert {s["Sid"] for s in _role_policy(pipeline)["Statement"]} == set(STATEMENT_ACTIONS)


def _exercise(pipeline: Pipeline, run: str, large: bool = False) -> None:
    """One of everything the processor does: a file with a valid over-threshold row (store,
    alert through the encrypted topic) and an invalid row (rejects object), an event for a
    missing incoming/ object (404 needs ListBucket), an invalid message (dead-lettered)."""
    pipeline.drop(f"incoming/{run}.csv", b"transaction_id,amount,timestamp\n"
                  b"%b-1,5000,2024-08-09T12:34:56Z\n%b-2,-1,2024-08-09T12:34:56Z\n"
                  % (run.encode(), run.encode()))
    sqs = pipeline.client("sqs")
    url = sqs.get_queue_url(QueueName=pipeline.names.queue)["QueueUrl"]
    missing = {"source": "aws.s3", "detail-type": "Object Created", "detail": {
        "bucket": {"name": pipeline.names.bucket}, "object": {"key": f"incoming/{run}-gone.csv"}}}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(missing))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"transaction_id": f"{run}-3"}))
    if large:  # above the split threshold: its parts go on the pipeline's own queue (rows
        # all invalid, so the parts cost no DynamoDB writes)
        row = b"%b,-1,2024-08-09T12:34:56Z\n" % run.encode()
        rows = pipeline.ctx.config.split_threshold_bytes // len(row) + 100
        pipeline.drop(f"incoming/{run}-large.csv", b"transaction_id,amount,timestamp\n"
                      + row * rows)


@pytest.mark.parametrize("sid", sorted(STATEMENT_ACTIONS))
def test_removing_a_statement_of_the_role_refuses_what_it_allowed(
        pipeline: Pipeline, caplog: pytest.LogCaptureFixture, sid: str) -> None:
    """The role `up` creates is exactly enough: each statement is needed by a call the
    processor (or the Lambda service for it) makes, and its absence is refused by name."""
    iam = pipeline.client("iam")
    full = _role_policy(pipeline)
    without = {**full, "Statement": [s for s in full["Statement"] if s["Sid"] != sid]}
    iam.put_role_policy(RoleName=pipeline.names.role, PolicyName=POLICY_NAME,
                        PolicyDocument=json.dumps(without))
    action = STATEMENT_ACTIONS[sid]
    try:
        with caplog.at_level(logging.WARNING, logger="pipelinectl.localaws"):
            _exercise(pipeline, f"no-{sid.lower()}-{uuid.uuid4().hex[:6]}",
                      large=sid == "ContinueLargeFiles")
            found = wait_for(lambda: [r.getMessage() for r in caplog.records
                                      if f"perform: {action}" in r.getMessage()], 30,
                             f"a refusal of {action} without statement {sid}")
    finally:
        iam.put_role_policy(RoleName=pipeline.names.role, PolicyName=POLICY_NAME,
                            PolicyDocument=json.dumps(full))
    assert "because no identity-based policy allows" in found[0]
