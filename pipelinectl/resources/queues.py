"""SQS queue and its dead-letter queue.

The queue's visibility timeout is at least 6x the function timeout (AWS's advice for Lambda
event sources) and its policy lets SNS send only from our ingest topic (confused-deputy
condition). The DLQ has no resource policy: only the processor's role may send to it.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from pipelinectl.resources.base import Health, Observed, Resource, parse_policy, policy_json

DLQ_RETENTION_SECONDS = 14 * 24 * 3600


class _Queue(Resource):
    step = "queue"

    @property
    def arn(self) -> str:
        return self.ctx.arn("sqs", self.name)

    def _attributes(self) -> dict[str, str]:
        """The SQS attributes we set, as SQS wants them (strings)."""
        raise NotImplementedError

    def desired(self) -> Observed:
        """Only the attributes we set: SQS's defaults for the rest are not ours to judge."""
        wanted = self._attributes()
        observed = _observed_attributes(wanted)
        return {**{_field(a): observed[_field(a)] for a in wanted}, "tags": self.ctx.tags}

    def url(self) -> str | None:
        sqs = self.ctx.client("sqs")
        try:
            return str(sqs.get_queue_url(QueueName=self.name)["QueueUrl"])
        except sqs.exceptions.QueueDoesNotExist:
            return None

    def read(self) -> Observed | None:
        url = self.url()
        if url is None:
            return None
        sqs = self.ctx.client("sqs")
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        observed = _observed_attributes(attrs)
        observed["tags"] = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        observed["url"] = url
        observed["depth"] = {k: int(attrs.get(k, 0)) for k in (
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed")}
        return observed

    def create(self) -> None:
        self.ctx.client("sqs").create_queue(QueueName=self.name, Attributes=self._attributes(),
                                            tags=self.ctx.tags)

    def update(self, fields: set[str], observed: Observed) -> None:
        sqs = self.ctx.client("sqs")
        wanted = self._attributes()
        changed = {attr: wanted[attr] for attr in wanted if _field(attr) in fields}
        if changed:
            sqs.set_queue_attributes(QueueUrl=observed["url"], Attributes=changed)
        if "tags" in fields:
            sqs.tag_queue(QueueUrl=observed["url"], Tags=self.ctx.tags)

    def delete(self, observed: Observed) -> None:
        sqs = self.ctx.client("sqs")
        with contextlib.suppress(sqs.exceptions.QueueDoesNotExist):
            sqs.delete_queue(QueueUrl=observed["url"])

    def health(self, observed: Observed) -> Health:
        depth = observed["depth"]
        visible = depth["ApproximateNumberOfMessages"]
        in_flight = depth["ApproximateNumberOfMessagesNotVisible"]
        return f"{visible} waiting, {in_flight} in flight", "ok", {
            "messages": visible, "in_flight": in_flight,
            "delayed": depth["ApproximateNumberOfMessagesDelayed"]}


class DeadLetterQueue(_Queue):
    kind = "SQS dead-letter queue"

    @property
    def name(self) -> str:
        return self.ctx.names.dlq

    def _attributes(self) -> dict[str, str]:
        return {
            "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS),
            "SqsManagedSseEnabled": "true",
        }

    def health(self, observed: Observed) -> Health:
        state, _, details = super().health(observed)
        waiting = details["messages"] + details["in_flight"]
        return state, ("warn" if waiting else "ok"), details


class Queue(_Queue):
    kind = "SQS queue"

    @property
    def name(self) -> str:
        return self.ctx.names.queue

    def _attributes(self) -> dict[str, str]:
        config = self.ctx.config
        topic_arn = self.ctx.arn("sns", self.ctx.names.ingest_topic)
        policy = {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "IngestTopicSendsOnly",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": self.arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }],
        }
        return {
            "VisibilityTimeout": str(config.queue_visibility_timeout),
            "MessageRetentionPeriod": str(config.message_retention_days * 24 * 3600),
            "SqsManagedSseEnabled": "true",
            "RedrivePolicy": json.dumps({
                "deadLetterTargetArn": self.ctx.arn("sqs", self.ctx.names.dlq),
                "maxReceiveCount": config.max_receive_count,
            }),
            "Policy": policy_json(policy),
        }


_JSON_ATTRIBUTES = {"RedrivePolicy", "Policy"}


def _field(attribute: str) -> str:
    return {"VisibilityTimeout": "visibility_timeout",
            "MessageRetentionPeriod": "message_retention_seconds",
            "SqsManagedSseEnabled": "sse", "RedrivePolicy": "redrive_policy",
            "Policy": "policy"}[attribute]


def _observed_attributes(attrs: dict[str, str]) -> dict[str, Any]:
    """Normalise SQS's string attributes so desired and observed compare equal."""
    observed: dict[str, Any] = {}
    for attribute in ("VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled",
                      "RedrivePolicy", "Policy"):
        value = attrs.get(attribute)
        if attribute in _JSON_ATTRIBUTES:
            parsed = parse_policy(value)
            if parsed and "maxReceiveCount" in parsed:
                parsed["maxReceiveCount"] = int(parsed["maxReceiveCount"])
            observed[_field(attribute)] = parsed
        elif attribute == "SqsManagedSseEnabled":
            observed[_field(attribute)] = str(value).lower() == "true"
        else:
            observed[_field(attribute)] = int(value) if value is not None else None
    return observed
