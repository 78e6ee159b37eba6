"""EventBridge rule: S3 "Object Created" in our bucket under incoming/, to the ingest topic."""

from __future__ import annotations

import json

from pipelinectl.resources.base import Health, Observed, Resource, tag_dict, tag_list

TARGET_ID = "ingest-topic"
INCOMING_PREFIX = "incoming/"


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

    def desired(self) -> Observed:
        return {"pattern": self.pattern(), "state": "ENABLED",
                "targets": {TARGET_ID: self.ctx.arn("sns", self.ctx.names.ingest_topic)},
                "tags": self.ctx.tags}

    def read(self) -> Observed | None:
        events = self.ctx.client("events")
        try:
            rule = events.describe_rule(Name=self.name)
        except events.exceptions.ResourceNotFoundException:
            return None
        targets = events.list_targets_by_rule(Rule=self.name).get("Targets", [])
        tags = events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags", [])
        return {"pattern": json.loads(rule.get("EventPattern") or "null"),
                "state": rule.get("State"),
                "targets": {t["Id"]: t["Arn"] for t in targets},
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
        if "targets" in fields:
            stray = sorted(set(observed.get("targets") or {}) - {TARGET_ID})
            if stray:
                events.remove_targets(Rule=self.name, Ids=stray)
            topic = self.ctx.arn("sns", self.ctx.names.ingest_topic)
            events.put_targets(Rule=self.name, Targets=[{"Id": TARGET_ID, "Arn": topic}])
        if "tags" in fields and observed:
            events.tag_resource(ResourceARN=self.arn, Tags=tag_list(self.ctx.tags))

    def delete(self, observed: Observed) -> None:
        events = self.ctx.client("events")
        if observed["targets"]:
            events.remove_targets(Rule=self.name, Ids=sorted(observed["targets"]))
        events.delete_rule(Name=self.name)

    def health(self, observed: Observed) -> Health:
        targets = len(observed["targets"])
        ok = observed["state"] == "ENABLED" and targets == 1
        return f"{observed['state']}, {targets} target(s)", "ok" if ok else "warn", {
            "state": observed["state"], "targets": list(observed["targets"].values())}
