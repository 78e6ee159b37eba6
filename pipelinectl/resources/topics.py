"""SNS topics (ingest, alerts), encrypted with the topics' KMS key (see `kms`)."""

from __future__ import annotations

from typing import Any

from pipelinectl.resources.alarms import alarm_arns
from pipelinectl.resources.base import (
    Health,
    Observed,
    Resource,
    parse_policy,
    policy_json,
    tag_dict,
    tag_list,
)
from pipelinectl.resources.kms import topic_key_id


class _Topic(Resource):
    step = "topic"
    kind = "SNS topic"

    @property
    def arn(self) -> str:
        return self.ctx.arn("sns", self.name)

    def _publishers(self) -> list[dict[str, Any]]:
        """Service statements beyond the owner's: who else may publish, on what condition."""
        raise NotImplementedError

    def desired(self) -> Observed:
        owner = {
            "Sid": "OwnerAccountManagesTopic",
            "Effect": "Allow",
            "Principal": {"AWS": self.ctx.arn("iam", "root", region=False)},
            "Action": ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes",
                       "sns:SetTopicAttributes", "sns:ListSubscriptionsByTopic",
                       "sns:DeleteTopic"],
            "Resource": self.arn,
        }
        policy = {"Version": "2012-10-17", "Statement": [owner, *self._publishers()]}
        return {"policy": parse_policy(policy_json(policy)),
                "kms_key": topic_key_id(self.ctx), "tags": self.ctx.tags}

    def read(self) -> Observed | None:
        sns = self.ctx.client("sns")
        try:
            attrs = sns.get_topic_attributes(TopicArn=self.arn)["Attributes"]
        except sns.exceptions.NotFoundException:
            return None
        tags = sns.list_tags_for_resource(ResourceArn=self.arn).get("Tags", [])
        return {
            "policy": parse_policy(attrs.get("Policy")),
            "kms_key": attrs.get("KmsMasterKeyId") or None,
            "tags": tag_dict(tags),
        }

    def _attributes(self) -> dict[str, str]:
        wanted = self.desired()
        return {"Policy": policy_json(wanted["policy"]),
                "KmsMasterKeyId": wanted["kms_key"] or ""}

    def create(self) -> None:
        attributes = {k: v for k, v in self._attributes().items() if v}
        self.ctx.client("sns").create_topic(Name=self.name, Attributes=attributes,
                                            Tags=tag_list(self.ctx.tags))

    def update(self, fields: set[str], observed: Observed) -> None:
        sns = self.ctx.client("sns")
        attributes = self._attributes()
        for field, attribute in (("policy", "Policy"), ("kms_key", "KmsMasterKeyId")):
            if field in fields:
                sns.set_topic_attributes(TopicArn=self.arn, AttributeName=attribute,
                                         AttributeValue=attributes[attribute])
        if "tags" in fields:
            sns.tag_resource(ResourceArn=self.arn, Tags=tag_list(self.ctx.tags))

    def delete(self, observed: Observed) -> None:
        self.ctx.client("sns").delete_topic(TopicArn=self.arn)

    def health(self, observed: Observed) -> Health:
        """Subscriptions have rows of their own; the topic's own concern is encryption."""
        key = observed["kms_key"]
        return (f"encrypted ({key})" if key else "not encrypted"), "ok", {"kms_key": key}


class IngestTopic(_Topic):
    @property
    def name(self) -> str:
        return self.ctx.names.ingest_topic

    def _publishers(self) -> list[dict[str, Any]]:
        return [{
            "Sid": "OnlyOurRulePublishes",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": self.arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": self.ctx.arn(
                "events", f"rule/{self.ctx.names.rule}")}},
        }]


class AlertsTopic(_Topic):
    @property
    def name(self) -> str:
        return self.ctx.names.alerts_topic

    def _publishers(self) -> list[dict[str, Any]]:
        """Our alarms by their exact ARNs: a name prefix (ArnLike `ecommerce-*`) would also
        admit the alarms of a pipeline named `ecommerce-eu`. Several values of one condition
        key are ORed (IAM User Guide, "Conditions with multiple context keys or values")."""
        return [{
            "Sid": "OnlyOurAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": self.arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": alarm_arns(self.ctx)},
                          "StringEquals": {"aws:SourceAccount": self.ctx.account}},
        }]
