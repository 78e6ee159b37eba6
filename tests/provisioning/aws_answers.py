"""AWS's answers where moto answers differently: moto deletes instantly, never refuses a
queue name, never leaves a function Failed or an update InProgress.

Every client the ClientFactory makes gets the hooks registered here. Errors are injected on
`before-send` as the HTTP response AWS sends (status, headers, body), so botocore's own
parser and handlers turn them into the exception our code sees; successful answers AWS would
give instead of moto's are injected the same way, and states moto lacks are overlaid on
`after-call`. Time is a fake clock that the sleeps of waiters and retries advance.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.awsrequest import AWSResponse

from pipelinectl.clients import ClientFactory

Handler = Callable[..., Any]


class _Raw(BytesIO):
    def stream(self, **_: Any) -> Any:
        yield self.read()


def http(status: int, body: dict[str, Any], headers: dict[str, str] | None = None,
         url: str = "https://aws.invalid/") -> AWSResponse:
    return AWSResponse(url, status, {"x-amzn-RequestId": "injected", **(headers or {})},
                       _Raw(json.dumps(body).encode()))


def sqs_error(code: str, message: str) -> AWSResponse:
    """SQS's JSON protocol: the query-era code travels in the x-amzn-query-error header."""
    return http(400, {"__type": f"com.amazonaws.sqs#{code}", "message": message},
                {"x-amzn-query-error": f"AWS.SimpleQueueService.{code};Sender",
                 "Content-Type": "application/x-amz-json-1.0"})


def lambda_error(status: int, code: str, message: str) -> AWSResponse:
    """Lambda's REST-JSON protocol: the code is in x-amzn-ErrorType."""
    return http(status, {"Type": "User", "message": message},
                {"x-amzn-ErrorType": code, "Content-Type": "application/json"})


def dynamodb_error(code: str, message: str) -> AWSResponse:
    return http(400, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                      "message": message},
                {"Content-Type": "application/x-amz-json-1.0"})


def body(request: Any) -> dict[str, Any]:
    raw = request.body or b"{}"
    parsed: dict[str, Any] = json.loads(raw if isinstance(raw, str | bytes) else raw.read())
    return parsed


class AwsAnswers:
    """Registers hooks on every client made from now on, and keeps a fake clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hooks: list[tuple[str, Handler]] = []
        self.clock = 0.0
        self._lock = threading.Lock()
        original = ClientFactory._make

        def make(factory: ClientFactory, service: str) -> Any:
            client = original(factory, service)
            for event, handler in self.hooks:
                if event.split(".")[1] == client.meta.service_model.service_id.hyphenize():
                    client.meta.events.register_first(event, handler)
            return client

        monkeypatch.setattr(ClientFactory, "_make", make)
        monkeypatch.setattr(time, "sleep", self.sleep)

    def on(self, event: str, handler: Handler) -> None:
        self.hooks.append((event, handler))

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.clock += seconds


class AfterDeletion(AwsAnswers):
    """What AWS keeps answering after a deletion (durations on the fake clock):
    - SQS refuses the name of a deleted queue for 60 s (API reference, DeleteQueue);
    - a deleted table stays DELETING for `table_seconds` (API reference, DeleteTable);
    - a deleted mapping stays Deleting for `mapping_seconds` (DeleteEventSourceMapping)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, queue_seconds: float = 60,
                 table_seconds: float = 20, mapping_seconds: float = 6) -> None:
        super().__init__(monkeypatch)
        self.queue_seconds, self.table_seconds = queue_seconds, table_seconds
        self.mapping_seconds = mapping_seconds
        self.queues: dict[str, float] = {}  # name -> deleted at
        self.tables: dict[str, float] = {}
        self.mappings: dict[str, tuple[float, dict[str, Any]]] = {}  # uuid -> (at, mapping)
        self.refused: list[tuple[str, float]] = []  # what AWS refused, and when
        self.created: dict[str, float] = {}
        self.on("before-parameter-build.sqs.DeleteQueue", self._queue_deleted)
        self.on("before-send.sqs.CreateQueue", self._create_queue)
        self.on("before-parameter-build.dynamodb.DeleteTable", self._table_deleted)
        self.on("before-send.dynamodb.DescribeTable", self._describe_table)
        self.on("before-send.dynamodb.CreateTable", self._create_table)
        self.on("after-call.lambda.DeleteEventSourceMapping", self._mapping_deleted)
        self.on("before-send.lambda.GetEventSourceMapping", self._get_mapping)
        self.on("after-call.lambda.ListEventSourceMappings", self._list_mappings)
        self.on("before-send.lambda.CreateEventSourceMapping", self._create_mapping)

    # -- what is still going ------------------------------------------------------------

    def queue_refused(self, name: str) -> bool:
        return name in self.queues and self.clock < self.queues[name] + self.queue_seconds

    def table_deleting(self, name: str) -> bool:
        return name in self.tables and self.clock < self.tables[name] + self.table_seconds

    def mappings_deleting(self) -> list[dict[str, Any]]:
        return [m for at, m in self.mappings.values()
                if self.clock < at + self.mapping_seconds]

    # -- SQS ----------------------------------------------------------------------------

    def _queue_deleted(self, params: dict[str, Any], **_: Any) -> None:
        self.queues[params["QueueUrl"].rsplit("/", 1)[1]] = self.clock

    def _create_queue(self, request: Any, **_: Any) -> AWSResponse | None:
        name = body(request)["QueueName"]
        if self.queue_refused(name):
            self.refused.append((f"CreateQueue {name}", self.clock))
            return sqs_error("QueueDeletedRecently", "You must wait 60 seconds after "
                             "deleting a queue before you can create another with the same "
                             "name.")
        self.created[name] = self.clock
        return None

    # -- DynamoDB -----------------------------------------------------------------------

    def _table_deleted(self, params: dict[str, Any], **_: Any) -> None:
        self.tables[params["TableName"]] = self.clock

    def _describe_table(self, request: Any, **_: Any) -> AWSResponse | None:
        name = body(request)["TableName"]
        if not self.table_deleting(name):
            return None
        return http(200, {"Table": {
            "TableName": name, "TableStatus": "DELETING",
            "TableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}",
            "KeySchema": [{"AttributeName": "transaction_id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "transaction_id",
                                      "AttributeType": "S"}],
            "ItemCount": 0, "TableSizeBytes": 0, "CreationDateTime": 1700000000}})

    def _create_table(self, request: Any, **_: Any) -> AWSResponse | None:
        name = body(request)["TableName"]
        if self.table_deleting(name):
            self.refused.append((f"CreateTable {name}", self.clock))
            return dynamodb_error("ResourceInUseException", f"Table already exists: {name}")
        self.created[name] = self.clock
        return None

    # -- Lambda event source mappings -----------------------------------------------------

    def _mapping_deleted(self, parsed: dict[str, Any], **_: Any) -> None:
        mapping = {k: parsed[k] for k in ("UUID", "EventSourceArn", "FunctionArn", "BatchSize")
                   if k in parsed}
        self.mappings[parsed["UUID"]] = (self.clock, {**mapping, "State": "Deleting"})

    def _get_mapping(self, request: Any, **_: Any) -> AWSResponse | None:
        uuid = urlsplit(request.url).path.rstrip("/").rsplit("/", 1)[1]
        for mapping in self.mappings_deleting():
            if mapping["UUID"] == uuid:
                return http(200, mapping, {"Content-Type": "application/json"})
        return None

    def _list_mappings(self, parsed: dict[str, Any], **_: Any) -> None:
        if "Error" not in parsed:
            parsed.setdefault("EventSourceMappings", []).extend(self.mappings_deleting())

    def _create_mapping(self, request: Any, **_: Any) -> AWSResponse | None:
        wanted = body(request)
        for mapping in self.mappings_deleting():
            if mapping["EventSourceArn"] == wanted["EventSourceArn"]:
                self.refused.append(("CreateEventSourceMapping", self.clock))
                return lambda_error(
                    409, "ResourceConflictException",
                    f"An event source mapping with SQS arn (\" {wanted['EventSourceArn']} \")"
                    f" and function (\" {wanted['FunctionName']} \") already exists. Please "
                    f"update or delete the existing mapping with UUID {mapping['UUID']}")
        self.created["mapping"] = self.clock
        return None
