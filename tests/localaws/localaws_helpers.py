"""Helpers for the local AWS engine tests: plain boto3 against a running LocalAws."""

from __future__ import annotations

import io
import json
import textwrap
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

import boto3

from pipelinectl.localaws.runner import FunctionSpec
from pipelinectl.resources.role import TRUST_POLICY

REGION = "us-east-1"
SQS_EXECUTION_POLICY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Resource": "*",
    "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
               "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]}]}


def handler_zip(source: str, module: str = "handler") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{module}.py", textwrap.dedent(source))
    return buf.getvalue()


@dataclass
class Local:
    """A running local AWS (its endpoint) plus helpers to create resources with plain boto3."""

    endpoint_url: str

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def client(self, service: str, region_name: str = REGION) -> Any:
        return boto3.client(
            service,
            region_name=region_name,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def name(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def queue(self, name: str, **attributes: str) -> tuple[str, str]:
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return url, arn

    def function(self, name: str, source: str, **config: Any) -> str:
        iam = self.client("iam")
        role_name = f"{name}-role"
        role = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
        )["Role"]["Arn"]
        # What AWS's managed AWSLambdaSQSQueueExecutionRole grants: the local AWS polls the
        # queue and writes the logs with the function's role, as Lambda does.
        iam.put_role_policy(RoleName=role_name, PolicyName="lambda-sqs-execution",
                            PolicyDocument=json.dumps(SQS_EXECUTION_POLICY))
        fn = self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler=config.pop("Handler", "handler.handler"),
            Code={"ZipFile": handler_zip(source)},
            **config,
        )
        return str(fn["FunctionArn"])

    def mapping(self, queue_arn: str, function: str, **config: Any) -> str:
        esm = self.client("lambda").create_event_source_mapping(
            EventSourceArn=queue_arn, FunctionName=function, **config
        )
        return str(esm["UUID"])

    def receive_all(self, url: str, wait: int = 1) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        msgs = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        for m in msgs:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return list(msgs)

    def depth(self, url: str) -> int:
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )

    def log_messages(self, function: str) -> list[str]:
        logs = self.client("logs")
        group = f"/aws/lambda/{function}"
        try:
            streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
        except logs.exceptions.ResourceNotFoundException:
            return []
        return [
            e["message"]
            for s in streams
            for e in logs.get_log_events(logGroupName=group, logStreamName=s["logStreamName"])[
                "events"
            ]
        ]


def function_spec(**overrides: Any) -> FunctionSpec:
    """A runner FunctionSpec for unit tests, with what a test cares about overridden."""
    fields: dict[str, Any] = {
        "name": "fn", "arn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
        "region": "us-east-1", "account": "123456789012", "handler": "h.handler",
        "runtime": "python3.12", "timeout": 3, "memory": 128, "env": (), "code_sha": "sha",
        "code": b""}
    return FunctionSpec(**{**fields, **overrides})
