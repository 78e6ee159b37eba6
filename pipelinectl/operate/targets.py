"""Where the pipeline's resources are, for commands that use them rather than build them.

Names and ARNs come from the same `Config.names()` the provisioning steps use, so operating
commands can never disagree with `up` about what the pipeline is called. A missing resource
becomes one sentence telling the user to run `up`, instead of an AWS error code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelinectl.clients import Client
from pipelinectl.config import Names
from pipelinectl.errors import PipelineError
from pipelinectl.resources.base import Context
from pipelinectl.resources.queues import DeadLetterQueue, Queue

# Injected into the waiting loops so tests can play time forward instead of sleeping.
Clock = Callable[[], float]
Sleep = Callable[[float], None]


class Targets:
    """The pipeline's queue, DLQ, table, bucket and topics, resolved lazily and cached."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._urls: dict[str, str] = {}

    @property
    def names(self) -> Names:
        return self.ctx.names

    def client(self, service: str) -> Client:
        return self.ctx.client(service)

    @property
    def ingest_topic_arn(self) -> str:
        return self.ctx.arn("sns", self.names.ingest_topic)

    @property
    def queue_arn(self) -> str:
        return self.ctx.arn("sqs", self.names.queue)

    @property
    def dlq_arn(self) -> str:
        return self.ctx.arn("sqs", self.names.dlq)

    def queue_url(self) -> str:
        return self._url(Queue(self.ctx))

    def dlq_url(self) -> str:
        return self._url(DeadLetterQueue(self.ctx))

    def _url(self, queue: Queue | DeadLetterQueue) -> str:
        """The queue's URL, looked up once (by the resource's own lookup)."""
        if queue.name not in self._urls:
            url = queue.url()
            if url is None:
                raise self.missing(queue.kind, queue.name)
            self._urls[queue.name] = url
        return self._urls[queue.name]

    def missing(self, kind: str, name: str) -> PipelineError:
        return PipelineError(
            f"The {kind} {name} does not exist in {self.ctx.account}/{self.ctx.region}: "
            f"run `pipelinectl up` first (pipeline {self.ctx.config.name})."
        )

    def queue_depth(self, url: str) -> tuple[int, int]:
        """(visible, in flight) - approximate, as SQS reports them."""
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                          "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return (int(attrs.get("ApproximateNumberOfMessages", 0)),
                int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)))

    def get_item(self, transaction_id: str) -> dict[str, Any] | None:
        """The stored transaction as plain values, read consistently (we poll for it)."""
        from boto3.dynamodb.types import TypeDeserializer

        dynamodb = self.client("dynamodb")
        try:
            response = dynamodb.get_item(TableName=self.names.table, ConsistentRead=True,
                                         Key={"transaction_id": {"S": transaction_id}})
        except dynamodb.exceptions.ResourceNotFoundException as exc:
            raise self.missing("DynamoDB table", self.names.table) from exc
        item = response.get("Item")
        if item is None:
            return None
        deserializer = TypeDeserializer()
        return {key: deserializer.deserialize(value) for key, value in item.items()}

    def get_items(self, transaction_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Several stored transactions in one consistent BatchGetItem (at most 100 keys)."""
        from boto3.dynamodb.types import TypeDeserializer

        table = self.names.table
        keys = [{"transaction_id": {"S": t}} for t in dict.fromkeys(transaction_ids)][:100]
        dynamodb = self.client("dynamodb")
        try:
            response = dynamodb.batch_get_item(
                RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
        except dynamodb.exceptions.ResourceNotFoundException as exc:
            raise self.missing("DynamoDB table", table) from exc
        deserializer = TypeDeserializer()
        items = [{k: deserializer.deserialize(v) for k, v in item.items()}
                 for item in response.get("Responses", {}).get(table, [])]
        return {str(item["transaction_id"]): item for item in items}

    def mapping_states(self) -> list[str]:
        """States of the queue -> function event source mappings ('Enabled', 'Disabled'...)."""
        lam = self.client("lambda")
        mappings = lam.list_event_source_mappings(
            EventSourceArn=self.queue_arn).get("EventSourceMappings", [])
        return [str(m.get("State", "Unknown")) for m in mappings]
