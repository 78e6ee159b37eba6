"""Fixtures for the processor tests: moto in-process, with the pipeline's resources and a
recorder of every AWS call the processor makes (to check limits moto does not enforce)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_src.fileruns import RUN_KEY_PREFIX
from lambda_src.handler import Runtime, handle
from pipelinectl.resources.queues import MAX_MESSAGE_BYTES

REGION = "us-east-1"
BUCKET = "ecommerce-landing-123456789012-us-east-1"
TABLE = "ecommerce-transactions"
START = 1_723_200_000.0  # 2024-08-09T10:40:00Z
#: One botocore session for all tests: a fresh one reloads every service model (~0.2 s each).
SESSION = boto3.session.Session()


class Clock:
    """A controllable clock: the alert claim lease depends on time."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Context:
    """The attributes of a Lambda context the processor and Powertools read."""

    clock: Clock
    timeout_s: float = 60.0
    function_name: str = "ecommerce-processor"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:ecommerce-processor"
    aws_request_id: str = "req-1"
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_s - self.clock()) * 1000))


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]


class Recorder:
    """Records calls via botocore's before-call hook on the processor's clients."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.calls.append(Call(service, operation, params))

    def ops(self, operation: str) -> list[Call]:
        return [c for c in self.calls if c.operation == operation]

    def count(self) -> int:
        return len(self.calls)

    @staticmethod
    def max_message_bytes(url: str) -> int:
        return int(SESSION.client("sqs", region_name=REGION).get_queue_attributes(
            QueueUrl=url, AttributeNames=["MaximumMessageSize"])["Attributes"][
            "MaximumMessageSize"])

    def check_limits(self) -> None:
        """AWS limits moto accepts silently."""
        for call in self.ops("BatchWriteItem"):
            for requests in call.params["RequestItems"].values():
                assert len(requests) <= 25, f"BatchWriteItem with {len(requests)} items"
                keys = [r["PutRequest"]["Item"]["transaction_id"]["S"] for r in requests]
                assert len(keys) == len(set(keys)), "duplicate keys in one BatchWriteItem"
        for call in self.ops("TransactWriteItems"):  # API Reference: "up to 100 action
            actions = call.params["TransactItems"]  # requests ... no two ... the same item"
            assert len(actions) <= 100, f"TransactWriteItems with {len(actions)} actions"
            keys = [next(iter(a.values()))["Key"]["transaction_id"]["S"] for a in actions]
            assert len(keys) == len(set(keys)), "one item twice in a TransactWriteItems"
        for call in self.ops("BatchGetItem"):
            for request in call.params["RequestItems"].values():
                assert len(request["Keys"]) <= 100
        for call in self.ops("PublishBatch"):
            assert len(call.params["PublishBatchRequestEntries"]) <= 10
        for call in self.ops("SendMessageBatch"):
            assert len(call.params["Entries"]) <= 10
            sizes = [message_bytes(e) for e in call.params["Entries"]]
            # each message within the queue's MaximumMessageSize (moto counts only the body),
            # the batch within SQS's 1 MiB in all (botocore's SQS model, SendMessageBatch)
            limit = self.max_message_bytes(call.params["QueueUrl"])
            assert all(size <= limit for size in sizes), f"message of {max(sizes)} bytes"
            assert sum(sizes) <= 1_048_576, f"SendMessageBatch of {sum(sizes)} bytes"
            for entry in call.params["Entries"]:
                assert len(entry.get("MessageAttributes", {})) <= 10


def message_bytes(entry: dict[str, Any]) -> int:
    """SQS's count: the body plus each attribute's name, data type and value."""
    size = len(entry["MessageBody"].encode())
    for name, attribute in entry.get("MessageAttributes", {}).items():
        value = attribute.get("BinaryValue")
        if value is None:
            value = attribute["StringValue"].encode()
        size += len(name.encode()) + len(attribute["DataType"].encode()) + len(value)
    return size


class Pipeline:
    """The resources of one pipeline in moto, plus helpers to drive the handler."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ddb = SESSION.client("dynamodb", region_name=REGION)
        self.s3 = SESSION.client("s3", region_name=REGION)
        self.sns = SESSION.client("sns", region_name=REGION)
        self.sqs = SESSION.client("sqs", region_name=REGION)
        self.events = SESSION.client("events", region_name=REGION)
        self.ddb.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "transaction_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "transaction_id", "AttributeType": "S"}],
        )
        self.s3.create_bucket(Bucket=BUCKET)
        sized = {"MaximumMessageSize": str(MAX_MESSAGE_BYTES)}  # as `up` sets both queues
        self.queue_url = self.sqs.create_queue(QueueName="ecommerce-transactions",
                                               Attributes=sized)["QueueUrl"]
        self.queue_arn = self._arn(self.queue_url)
        self.dlq_url = self.sqs.create_queue(QueueName="ecommerce-transactions-dlq",
                                             Attributes=sized)["QueueUrl"]
        self.ingest_arn = self.sns.create_topic(Name="ecommerce-ingest")["TopicArn"]
        self.sns.subscribe(TopicArn=self.ingest_arn, Protocol="sqs", Endpoint=self.queue_arn)
        self.alerts_arn = self.sns.create_topic(Name="ecommerce-alerts")["TopicArn"]
        self.alerts_url = self.sqs.create_queue(QueueName="alerts-capture")["QueueUrl"]
        self.sns.subscribe(TopicArn=self.alerts_arn, Protocol="sqs",
                           Endpoint=self._arn(self.alerts_url))
        for name, value in {
            "TABLE_NAME": TABLE, "ALERTS_TOPIC_ARN": self.alerts_arn, "DLQ_URL": self.dlq_url,
            "ALERT_THRESHOLD": "1000", "REJECTS_PREFIX": "rejected/", "PIPELINE_NAME": "ecommerce",
            "DLQ_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES), "QUEUE_URL": self.queue_url,
        }.items():
            monkeypatch.setenv(name, value)
        self.clock = Clock()
        self.recorder = Recorder()
        self.runtime = self.make_runtime()

    def _arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]

    def make_runtime(self) -> Runtime:
        runtime = Runtime.from_env(clock=self.clock, sleep=lambda _s: None, session=SESSION)
        for client in (runtime.persister.store.client, runtime.persister.alerter.sns,
                       runtime.files.s3, runtime.dead_letters.sqs):
            client.meta.events.register("before-parameter-build.*.*", self.recorder)
        return runtime

    # -- driving ------------------------------------------------------------------------
    def receive(self, url: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        """All visible messages of a queue (moto returns at most 10 per call)."""
        messages: list[dict[str, Any]] = []
        while len(messages) < limit:
            batch = self.sqs.receive_message(
                QueueUrl=url or self.queue_url, MaxNumberOfMessages=10,
                MessageAttributeNames=["All"], AttributeNames=["All"], VisibilityTimeout=300,
            ).get("Messages", [])
            if not batch:
                break
            messages.extend(batch)
        return messages

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The Lambda SQS event the event source mapping would build from these messages."""
        return {"Records": [self._record(m) for m in messages]}

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {}
        for name, value in message.get("MessageAttributes", {}).items():
            converted = {"dataType": value["DataType"], "stringListValues": [],
                         "binaryListValues": []}
            if "StringValue" in value:
                converted["stringValue"] = value["StringValue"]
            if "BinaryValue" in value:
                converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
            attributes[name] = converted
        return {
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"], "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes, "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn, "awsRegion": REGION,
        }

    def invoke(self, event: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        return handle(event, Context(self.clock, timeout_s), self.runtime)

    def drain(self) -> dict[str, Any]:
        """Receive everything on the queue and process it in one invocation."""
        return self.invoke(self.event(self.receive()))

    # -- observing ----------------------------------------------------------------------
    def items(self) -> dict[str, dict[str, Any]]:
        """The stored transactions (not the file runs' records, see runs())."""
        return {k: v for k, v in self._scan().items() if not k.startswith(RUN_KEY_PREFIX)}

    def runs(self) -> dict[str, dict[str, Any]]:
        """File run records by object URI (lambda_src/fileruns.py)."""
        return {k.removeprefix(RUN_KEY_PREFIX): v for k, v in self._scan().items()
                if k.startswith(RUN_KEY_PREFIX + "s3://")}

    def _scan(self) -> dict[str, dict[str, Any]]:
        from lambda_src.storage import from_attributes

        pages = self.ddb.get_paginator("scan").paginate(TableName=TABLE)
        return {i["transaction_id"]["S"]: from_attributes(i)
                for page in pages for i in page["Items"]}

    def alerts(self) -> list[dict[str, Any]]:
        """Alert bodies delivered so far (each receive consumes them)."""
        out = []
        for message in self.receive(self.alerts_url):
            note = json.loads(message["Body"])
            out.append({"body": json.loads(note["Message"]), "subject": note.get("Subject"),
                        "attributes": note.get("MessageAttributes", {})})
            self.sqs.delete_message(QueueUrl=self.alerts_url,
                                    ReceiptHandle=message["ReceiptHandle"])
        return out

    def dead_letters(self) -> list[dict[str, Any]]:
        out = self.receive(self.dlq_url)
        for message in out:
            self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        return out

    def rejects(self, key: str) -> list[dict[str, Any]]:
        body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        return [json.loads(line) for line in body.splitlines()]

    def send(self, body: Any, **attributes: str) -> None:
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body if isinstance(body, str) else json.dumps(body),
            MessageAttributes={k: {"DataType": "String", "StringValue": v}
                               for k, v in attributes.items()},
        )

    def publish(self, body: Any, **attributes: str) -> None:
        self.sns.publish(
            TopicArn=self.ingest_arn, Message=body if isinstance(body, str) else json.dumps(body),
            MessageAttributes={k: {"DataType": "String", "StringValue": v}
                               for k, v in attributes.items()},
        )


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no endpoint override, so moto intercepts every call."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "PipelineTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "processor")


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    with mock_aws():
        pipe = Pipeline(monkeypatch)
        yield pipe
        pipe.recorder.check_limits()
