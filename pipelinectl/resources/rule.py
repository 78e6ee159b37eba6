"""EventBridge rule: S3 "Object Created" in our bucket under incoming/, to the ingest topic.

A delivery EventBridge cannot make must not vanish (EventBridge user guide, "Event retry
policy and using dead-letter queues"): without a dead-letter queue, an event whose retries
are exhausted, or whose error is not retried at all (missing permissions, a deleted target),
is dropped. So the target dead-letters into the pipeline's DLQ (a standard queue in the
rule's Region, as EventBridge requires; its policy admits only this rule, see queues.py),
where `dlq list` shows EventBridge's RULE_ARN / TARGET_ARN / ERROR_CODE / ERROR_MESSAGE
attributes and `dlq redrive` hands the event to the processor, which unwraps it.

Retry policy: EventBridge's documented maxima, which are also its defaults (24 hours, 185
attempts), set explicitly so that `plan` shows any change. Only retriable errors (throttling,
5xx) are retried; a late file is worth more than a dead-lettered one, and permanent errors
reach the DLQ (and the FailedInvocations alarm) at once either way.
"""

from __future__ import annotations

import json
from typing import Any

from pipelinectl.resources.base import Health, Observed, Resource, tag_dict, tag_list

TARGET_ID = "ingest-topic"
INCOMING_PREFIX = "incoming/"
#: EventBridge's RetryPolicy ranges: MaximumEventAgeInSeconds 60-86,400, attempts 0-185.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 86_400, "MaximumRetryAttempts": 185}


class Rule(Resource):
    step = "rule"
    kind = "EventBridge rule"

    @property
    def name(self) -> str:
        return self.ctx.names.rule

    @property
    def arn(self) -> str:
        return self.ctx.arn("events", f"rule/{self.name}")

    def pattern(self) -> dict[str, object]:
        return {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [self.ctx.names.bucket]},
                       "object": {"key": [{"prefix": INCOMING_PREFIX}]}},
        }

    def target(self) -> dict[str, Any]:
        """Our one target, as PutTargets takes it and ListTargetsByRule returns it."""
        return {"Id": TARGET_ID, "Arn": self.ctx.arn("sns", self.ctx.names.ingest_topic),
                "DeadLetterConfig": {"Arn": self.ctx.arn("sqs", self.ctx.names.dlq)},
                "RetryPolicy": dict(RETRY_POLICY)}

    def desired(self) -> Observed:
        target = self.target()
        return {"pattern": self.pattern(), "state": "ENABLED",
                "targets": {TARGET_ID: target["Arn"]},
                "dead_letter_queue": target["DeadLetterConfig"]["Arn"],
                "retry_policy": target["RetryPolicy"],
                "tags": self.ctx.tags}

    def read(self) -> Observed | None:
        events = self.ctx.client("events")
        try:
            rule = events.describe_rule(Name=self.name)
        except events.exceptions.ResourceNotFoundException:
            return None
        targets = events.list_targets_by_rule(Rule=self.name).get("Targets", [])
        ours: dict[str, Any] = next((t for t in targets if t["Id"] == TARGET_ID), {})
        tags = events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags", [])
        return {"pattern": json.loads(rule.get("EventPattern") or "null"),
                "state": rule.get("State"),
                "targets": {t["Id"]: t["Arn"] for t in targets},
                "dead_letter_queue": (ours.get("DeadLetterConfig") or {}).get("Arn"),
                "retry_policy": _retry_policy(ours.get("RetryPolicy")),
                "tags": tag_dict(tags)}

    def create(self) -> None:
        self.update(set(self.desired()), {})

    def update(self, fields: set[str], observed: Observed) -> None:
        events = self.ctx.client("events")
        if {"pattern", "state"} & fields:
            events.put_rule(Name=self.name, EventPattern=json.dumps(self.pattern()),
                            State="ENABLED", Tags=tag_list(self.ctx.tags),
                            Description=f"pipelinectl: new files in s3://"
                                        f"{self.ctx.names.bucket}/{INCOMING_PREFIX}")
        if {"targets", "dead_letter_queue", "retry_policy"} & fields:
            stray = sorted(set(observed.get("targets") or {}) - {TARGET_ID})
            if stray:
                events.remove_targets(Rule=self.name, Ids=stray)
            events.put_targets(Rule=self.name, Targets=[self.target()])
        if "tags" in fields and observed:
            events.tag_resource(ResourceARN=self.arn, Tags=tag_list(self.ctx.tags))

    def delete(self, observed: Observed) -> None:
        events = self.ctx.client("events")
        if observed["targets"]:
            events.remove_targets(Rule=self.name, Ids=sorted(observed["targets"]))
        events.delete_rule(Name=self.name)

    def health(self, observed: Observed) -> Health:
        """State, targets and where undeliverable events go: no DLQ means they are dropped."""
        targets = len(observed["targets"])
        dlq = observed.get("dead_letter_queue")
        wiring = f"DLQ {dlq.rsplit(':', 1)[-1]}" if dlq else "no DLQ: failed deliveries dropped"
        ok = observed["state"] == "ENABLED" and targets == 1 and dlq == self.desired()[
            "dead_letter_queue"]
        return f"{observed['state']}, {targets} target(s), {wiring}", "ok" if ok else "warn", {
            "state": observed["state"], "targets": list(observed["targets"].values()),
            "dead_letter_queue": dlq, "retry_policy": observed.get("retry_policy")}


def _retry_policy(policy: dict[str, Any] | None) -> dict[str, int] | None:
    """Normalised for comparison (AWS returns integers; keep only the two documented keys)."""
    if not policy:
        return None
    return {k: int(policy[k]) for k in RETRY_POLICY if k in policy}
