"""SQS queue and its dead-letter queue.

The queue's visibility timeout is at least 6x the function timeout (AWS's advice for Lambda
event sources) and its policy lets SNS send only from our ingest topic (confused-deputy
condition). The DLQ's policy lets EventBridge send only for our rule (the rule's target
dead-letters there); the processor's role sends to it through its own IAM policy.

Both set ``MaximumMessageSize`` explicitly to SQS's maximum, 1 MiB: SQS raised it from
256 KiB (botocore's SQS model: "Valid values: An integer from 1,024 bytes (1 KiB) to
1,048,576 bytes (1 MiB)"; AWS Compute Blog, "More room to build: serverless services now
support payloads up to 1 MB", January 2026), but a queue created before keeps the 256 KiB it
was given. The processor sizes its DLQ copies by the same constant (``DLQ_MAX_MESSAGE_BYTES``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from pipelinectl.resources.base import (
    Health,
    Observed,
    Resource,
    parse_policy,
    policy_json,
    retry_while,
    wait_until,
)

DLQ_RETENTION_SECONDS = 14 * 24 * 3600
# SQS API reference, DeleteQueue: "When you delete a queue, the deletion process takes up to
# 60 seconds. Requests you send involving that queue during the 60 seconds might succeed
# [...] you must wait at least 60 seconds before creating a queue with the same name"
# (CreateQueue answers QueueDeletedRecently; botocore surfaces it as Error.Code
# "AWS.SimpleQueueService.QueueDeletedRecently" from the x-amzn-query-error header and maps
# it to sqs.exceptions.QueueDeletedRecently). So `up` retries the name for a little more
# than those 60 seconds, and teardown waits (as long) until the name stops answering.
NAME_REUSE_DELAYS = (5.0,) * 14

#: SQS's largest MaximumMessageSize (body plus message attributes), set on both queues.
MAX_MESSAGE_BYTES = 1_048_576



def only_sender(sid: str, service: str, queue_arn: str, source_arn: str) -> dict[str, Any]:
    """A queue policy that lets one AWS resource (a topic, a rule) send and nothing else: the
    service principal, sqs:SendMessage, ``ArnEquals aws:SourceArn`` (SQS Developer Guide,
    "Basic examples of Amazon SQS policies"; SNS Developer Guide, "Fanout to Amazon SQS
    queues"). SNS and EventBridge deliver to a queue only when its policy allows them."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": sid, "Effect": "Allow", "Principal": {"Service": service},
        "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}}}]}

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

    def _learn(self, url: str) -> None:
        """What another resource needs of this queue once found or made (see Learned)."""

    def read(self) -> Observed | None:
        url = self.url()
        if url is None:
            return None
        self._learn(url)
        sqs = self.ctx.client("sqs")
        try:
            attrs = sqs.get_queue_attributes(QueueUrl=url,
                                             AttributeNames=["All"])["Attributes"]
            tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        except sqs.exceptions.QueueDoesNotExist:  # deleted: its URL answers a little longer
            return {"deleting": True}
        observed = _observed_attributes(attrs)
        observed["tags"] = tags
        observed["url"] = url
        observed["depth"] = {k: int(attrs.get(k, 0)) for k in (
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed")}
        return observed

    def create(self) -> None:
        sqs = self.ctx.client("sqs")
        created = retry_while(
            lambda exc: isinstance(exc, sqs.exceptions.QueueDeletedRecently),
            lambda: sqs.create_queue(QueueName=self.name, Attributes=self._attributes(),
                                     tags=self.ctx.tags),
            lambda exc: (f"SQS still refuses the queue name {self.name} after "
                         f"{sum(NAME_REUSE_DELAYS):.0f}s because a queue of that name was "
                         "deleted moments ago; wait a minute and re-run the command."),
            delays=NAME_REUSE_DELAYS,
            on_retry=lambda exc: self.waiting(
                "a queue of this name was deleted less than 60s ago and SQS refuses the "
                "name until then; retrying"))
        self._learn(str(created["QueueUrl"]))

    def wait_deleted(self, observed: Observed) -> None:
        """Its URL still answers but the queue is going: CreateQueue might hand back the
        dying queue's URL, so wait until the name stops answering."""
        self._wait_name_free()

    def _wait_name_free(self) -> None:
        if self.url() is None:
            return
        self.waiting("SQS takes up to 60s to delete a queue; waiting until its name is free")
        wait_until(lambda: self.url() is None, NAME_REUSE_DELAYS)

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
        # While the name still answers, an `up` right after would see the dying queue as
        # present and leave it be; wait until it stops answering (it is going regardless).
        self._wait_name_free()

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

    def _learn(self, url: str) -> None:
        self.ctx.learned.dlq_url = url  # the processor's DLQ_URL (Function.environment)

    def _attributes(self) -> dict[str, str]:
        rule_arn = self.ctx.arn("events", f"rule/{self.ctx.names.rule}")
        # EventBridge user guide, "Using dead-letter queues to process undelivered events":
        # with PutTargets the queue policy must be attached by hand; this is its documented
        # form (events.amazonaws.com, sqs:SendMessage, ArnEquals aws:SourceArn = the rule).
        # The DLQ must be a standard queue in the rule's Region (ours is); SSE-SQS needs no
        # key policy (only a customer-managed KMS key would).
        policy = only_sender("OurRuleDeadLettersOnly", "events.amazonaws.com", self.arn,
                             rule_arn)
        return {
            "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS),
            "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
            "SqsManagedSseEnabled": "true",
            "Policy": policy_json(policy),
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

    def _learn(self, url: str) -> None:
        self.ctx.learned.queue_url = url  # the processor's QUEUE_URL (Function.environment)

    def _attributes(self) -> dict[str, str]:
        config = self.ctx.config
        topic_arn = self.ctx.arn("sns", self.ctx.names.ingest_topic)
        policy = only_sender("IngestTopicSendsOnly", "sns.amazonaws.com", self.arn, topic_arn)
        return {
            "VisibilityTimeout": str(config.queue_visibility_timeout),
            "MessageRetentionPeriod": str(config.message_retention_days * 24 * 3600),
            "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
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
            "MaximumMessageSize": "maximum_message_size",
            "SqsManagedSseEnabled": "sse", "RedrivePolicy": "redrive_policy",
            "Policy": "policy"}[attribute]


def _observed_attributes(attrs: dict[str, str]) -> dict[str, Any]:
    """Normalise SQS's string attributes so desired and observed compare equal."""
    observed: dict[str, Any] = {}
    for attribute in ("VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize",
                      "SqsManagedSseEnabled", "RedrivePolicy", "Policy"):
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
