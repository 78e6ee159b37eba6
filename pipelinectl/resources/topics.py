"""SNS topics (ingest, alerts) and the pipeline's own KMS key that encrypts them.

Why our own key: on AWS, EventBridge and CloudWatch alarm actions cannot publish to a topic
encrypted with the AWS-managed `alias/aws/sns` key (its policy cannot be changed), and they
fail silently. Our key's policy lets exactly those two services use it, for this account only.
"""

from __future__ import annotations

from typing import Any

from pipelinectl.resources.base import (
    Context,
    Health,
    Observed,
    Resource,
    parse_policy,
    policy_json,
    tag_dict,
    tag_list,
)

KEY_DELETION_DAYS = 7  # the minimum waiting period KMS allows


def topic_key_id(ctx: Context) -> str | None:
    """What the topics' KmsMasterKeyId should be, or None when encryption is off."""
    setting = ctx.config.topic_kms_key
    if setting == "none":
        return None
    if setting == "pipeline":
        return ctx.names.kms_alias
    return setting


def topic_key_resource(ctx: Context) -> tuple[str, dict[str, Any] | None]:
    """IAM Resource and Condition that grant use of the topics' key and no other key.

    A key made by `up` is known by its alias before it exists, so the grant names the alias
    (kms:ResourceAliases) rather than a key id that only exists after apply.
    """
    key = topic_key_id(ctx)
    if key is None:
        return "", None
    if key.startswith("arn:") and ":key/" in key:
        return key, None
    if key.startswith("alias/") or ":alias/" in key:
        alias = key[key.index("alias/"):]
        return (ctx.arn("kms", "key/*"),
                {"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}})
    return ctx.arn("kms", f"key/{key}"), None


class PipelineKey(Resource):
    """The customer-managed key and its alias, created and deleted together."""

    step = "topic"
    kind = "KMS key"

    @property
    def name(self) -> str:
        return self.ctx.names.kms_alias

    @property
    def arn(self) -> str:
        return self.ctx.cache.get("kms_key_arn") or self.ctx.arn("kms", self.name)

    def desired(self) -> Observed:
        ctx = self.ctx
        service_use = {
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account}},
        }
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "AccountAdministersKeyThroughIam", "Effect": "Allow",
                 "Principal": {"AWS": ctx.arn("iam", "root", region=False)},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": "EventBridgePublishesToTopics",
                 "Principal": {"Service": "events.amazonaws.com"}, **service_use},
                {"Sid": "CloudWatchAlarmsPublishToTopics",
                 "Principal": {"Service": "cloudwatch.amazonaws.com"}, **service_use},
            ],
        }
        return {"policy": parse_policy(policy_json(policy)), "rotation": True,
                "enabled": True, "tags": ctx.tags}

    def read(self) -> Observed | None:
        kms = self.ctx.client("kms")
        try:
            meta = kms.describe_key(KeyId=self.name)["KeyMetadata"]
        except kms.exceptions.NotFoundException:
            return None
        key_id = meta["KeyId"]
        self.ctx.cache["kms_key_arn"] = meta["Arn"]
        tags = kms.list_resource_tags(KeyId=key_id).get("Tags", [])
        return {
            "key_id": key_id,
            "policy": parse_policy(kms.get_key_policy(KeyId=key_id, PolicyName="default")
                                   ["Policy"]),
            "rotation": kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"],
            "enabled": meta["KeyState"] == "Enabled",
            "state": meta["KeyState"],
            "tags": tag_dict(tags, "TagKey", "TagValue"),
        }

    def create(self) -> None:
        kms = self.ctx.client("kms")
        meta = kms.create_key(
            Description=f"pipelinectl: encrypts the SNS topics of pipeline {self.ctx.config.name}",
            KeyUsage="ENCRYPT_DECRYPT",
            Policy=policy_json(self.desired()["policy"]),
            Tags=tag_list(self.ctx.tags, "TagKey", "TagValue"),
        )["KeyMetadata"]
        self.ctx.cache["kms_key_arn"] = meta["Arn"]
        kms.create_alias(AliasName=self.name, TargetKeyId=meta["KeyId"])
        kms.enable_key_rotation(KeyId=meta["KeyId"])

    def update(self, fields: set[str], observed: Observed) -> None:
        kms = self.ctx.client("kms")
        key_id = observed["key_id"]
        if "enabled" in fields:
            if observed["state"] == "PendingDeletion":
                kms.cancel_key_deletion(KeyId=key_id)
            kms.enable_key(KeyId=key_id)
        if "policy" in fields:
            kms.put_key_policy(KeyId=key_id, PolicyName="default",
                               Policy=policy_json(self.desired()["policy"]))
        if "rotation" in fields:
            kms.enable_key_rotation(KeyId=key_id)
        if "tags" in fields:
            kms.tag_resource(KeyId=key_id, Tags=tag_list(self.ctx.tags, "TagKey", "TagValue"))

    def delete(self, observed: Observed) -> None:
        kms = self.ctx.client("kms")
        kms.delete_alias(AliasName=self.name)
        if observed["state"] != "PendingDeletion":
            kms.schedule_key_deletion(KeyId=observed["key_id"],
                                      PendingWindowInDays=KEY_DELETION_DAYS)

    def health(self, observed: Observed) -> Health:
        return observed["state"], ("ok" if observed["enabled"] else "error"), {
            "key_id": observed["key_id"], "rotation": observed["rotation"]}


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
        alarms = self.ctx.arn("cloudwatch", f"alarm:{self.ctx.names.alarm_prefix}-*")
        return [{
            "Sid": "OnlyOurAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": self.arn,
            "Condition": {"ArnLike": {"aws:SourceArn": alarms},
                          "StringEquals": {"aws:SourceAccount": self.ctx.account}},
        }]
