"""The pipeline's own KMS key (`alias/{name}-pipeline`) that encrypts its SNS topics, and the
key ARN the processor role is granted.

Why our own key: on AWS, EventBridge and CloudWatch alarm actions cannot publish to a topic
encrypted with the AWS-managed `alias/aws/sns` key (its policy cannot be changed), and they
fail silently. Our key's policy lets exactly those two services use it.

A key and its alias take two calls (CreateKey, then CreateAlias), so a run can stop between
them, and two runs can race for the alias. The key is tagged in CreateKey itself, which is how
a later run finds it when no alias names it: `up` adopts it (and gives it the alias), `teardown`
schedules its deletion. A run whose key lost the alias race schedules that key's deletion and
converges the winner instead, so concurrent runs leave one key.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from pipelinectl.config import TAG_KEY
from pipelinectl.errors import NotOursError, PipelineError
from pipelinectl.resources.alarms import Alarm, alarm_specs
from pipelinectl.resources.base import (
    KNOWN_AFTER_APPLY,
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
PENDING_DELETION = ("PendingDeletion", "PendingReplicaDeletion")
SERVICE_USE = ["kms:GenerateDataKey*", "kms:Decrypt"]


def topic_key_id(ctx: Context) -> str | None:
    """What the topics' KmsMasterKeyId should be, or None when encryption is off."""
    setting = ctx.config.topic_kms_key
    if setting == "none":
        return None
    if setting == "pipeline":
        return ctx.names.kms_alias
    return setting


def topic_key_arn(ctx: Context) -> Any:
    """The ARN of the topics' key for the role's grant, without a call: a str, None (no
    encryption), or KNOWN_AFTER_APPLY while the pipeline's own key does not exist yet (`plan`
    from nothing). An alias's key is what this run learned (PipelineKey's read or create, or
    look_up_topic_key for an alias of the user's).

    Why the key ARN and not the alias (kms:ResourceAliases): "It might take up to five minutes
    for tag and alias changes to affect KMS key authorization" (KMS Developer Guide, "Use
    aliases to control access to KMS keys", alias-authorization.html; same note in "ABAC for
    AWS KMS"), so an alias-based grant denies the first alerts after every fresh `up`. A key
    ARN in Resource is authorised from the first call, and names exactly one key.
    """
    key = topic_key_id(ctx)
    if key is None:
        return None
    if key.startswith("arn:") and ":key/" in key:
        return key
    if not _is_alias(key):
        return ctx.arn("kms", f"key/{key}")  # a bare key id
    return ctx.learned.topic_key_arn or KNOWN_AFTER_APPLY


def _is_alias(key: str) -> bool:
    return key.startswith("alias/") or ":alias/" in key


def look_up_topic_key(ctx: Context) -> None:
    """When topic_kms_key names an alias of the user's, learn its key's ARN (one DescribeKey)
    so that the role's desired() needs no call; the pipeline's own key is learned by
    PipelineKey, which the `topic` step reads or creates first."""
    key = topic_key_id(ctx)
    if key is None or ctx.config.topic_kms_key == "pipeline" or not _is_alias(key):
        return
    kms = ctx.client("kms")
    try:
        ctx.learned.topic_key_arn = str(kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"])
    except kms.exceptions.NotFoundException:
        raise PipelineError(
            f"topic_kms_key = {key!r} names no KMS key in account {ctx.account} region "
            f"{ctx.region}; create that alias or fix topic_kms_key in pipeline.toml."
        ) from None


class PipelineKey(Resource):
    """The customer-managed key and its alias, created and deleted together."""

    step = "topic"
    kind = "KMS key"

    @property
    def name(self) -> str:
        return self.ctx.names.kms_alias

    @property
    def arn(self) -> str:
        """The alias's ARN; KMS assigns the key's, which `arn_of` has once read or created."""
        return self.ctx.arn("kms", self.name)

    def arn_of(self, observed: Observed) -> str:
        return str(observed.get("arn") or self.arn)

    def _learn(self, key_arn: str) -> None:
        if self.ctx.config.topic_kms_key == "pipeline":  # teardown reads it either way
            self.ctx.learned.topic_key_arn = key_arn

    def key_policy(self) -> dict[str, Any]:
        ctx = self.ctx
        alarms = sorted(Alarm(ctx, spec).arn for spec in alarm_specs(ctx))
        statements = [
            {"Sid": "AccountAdministersKeyThroughIam", "Effect": "Allow",
             "Principal": {"AWS": ctx.arn("iam", "root", region=False)},
             "Action": "kms:*", "Resource": "*"},
            # No condition on purpose. SNS Developer Guide, "Managing Amazon SNS encryption
            # keys and costs" > "Enable compatibility between event sources from AWS services
            # and encrypted topics" (sns-key-management.html#compatibility-with-aws-services):
            # the documented statement is unconditioned, and adding aws:SourceAccount,
            # aws:SourceArn or aws:SourceOrgID to the key policy is not supported for
            # EventBridge-to-encrypted-topic delivery (every delivery would fail, silently).
            # We found no condition AWS documents for this path (kms:ViaService /
            # kms:CallerAccount / an SNS encryption context are not documented for it), so
            # none is added; the topic policy keeps the aws:SourceArn = our rule check.
            {"Sid": "EventBridgePublishesToTopics", "Effect": "Allow",
             "Principal": {"Service": "events.amazonaws.com"},
             "Action": SERVICE_USE, "Resource": "*"},
            # CloudWatch alarm actions do send aws:SourceArn / aws:SourceAccount (confused
            # deputy protection, as the SNS guide's alarm examples use): only our alarms.
            {"Sid": "CloudWatchAlarmsPublishToTopics", "Effect": "Allow",
             "Principal": {"Service": "cloudwatch.amazonaws.com"},
             "Action": SERVICE_USE, "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account},
                           "ArnEquals": {"aws:SourceArn": alarms}}},
        ]
        return {"Version": "2012-10-17", "Statement": statements}

    def desired(self) -> Observed:
        return {"alias": True, "policy": parse_policy(policy_json(self.key_policy())),
                "rotation": True, "enabled": True, "tags": self.ctx.tags}

    def read(self) -> Observed | None:
        kms = self.ctx.client("kms")
        try:
            meta = kms.describe_key(KeyId=self.name)["KeyMetadata"]
        except kms.exceptions.NotFoundException:
            orphans = self._unaliased_keys()
            return self._observe(orphans[0], aliased=False) if orphans else None
        return self._observe(meta, aliased=True)

    def _observe(self, meta: dict[str, Any], *, aliased: bool) -> Observed:
        kms = self.ctx.client("kms")
        key_id, state = meta["KeyId"], meta["KeyState"]
        self._learn(meta["Arn"])
        tags = kms.list_resource_tags(KeyId=key_id).get("Tags", [])
        # Not asked of a key pending deletion: KMS's "Key states" table governs which calls
        # such a key accepts, and we could not confirm this one there (unverified); `up`
        # re-enables such a key before enabling rotation, and teardown needs no rotation.
        rotation = None if state in PENDING_DELETION else \
            kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]
        return {
            "key_id": key_id,
            "arn": meta["Arn"],
            "alias": aliased,
            "policy": parse_policy(kms.get_key_policy(KeyId=key_id, PolicyName="default")
                                   ["Policy"]),
            "rotation": rotation,
            "enabled": state == "Enabled",
            "state": state,
            "tags": tag_dict(tags, "TagKey", "TagValue"),
        }

    def _unaliased_keys(self) -> list[dict[str, Any]]:
        """Our keys that no alias names and that are not pending deletion, oldest first.

        Keys pending deletion are ignored: a teardown scheduled them, and `up` makes a new key
        rather than silently revoking that deletion (the alias of an interrupted teardown still
        names its key, which `up` does re-enable). Oldest first, so that concurrent runs adopt
        the same key. KMS cannot filter keys by tag: ListAliases, ListKeys, then
        ListResourceTags for each key without an alias (AWS-managed keys all have one).
        """
        kms = self.ctx.client("kms")
        aliased = {alias.get("TargetKeyId")
                   for page in kms.get_paginator("list_aliases").paginate()
                   for alias in page["Aliases"]}
        found = []
        for page in kms.get_paginator("list_keys").paginate():
            for key in page["Keys"]:
                if key["KeyId"] in aliased or not self._tagged_ours(key["KeyId"]):
                    continue
                meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
                if meta["KeyState"] not in PENDING_DELETION:
                    found.append(meta)
        return sorted(found, key=lambda m: (m["CreationDate"], m["KeyId"]))

    def _tagged_ours(self, key_id: str) -> bool:
        kms = self.ctx.client("kms")
        try:
            tags = kms.list_resource_tags(KeyId=key_id).get("Tags", [])
        except kms.exceptions.ClientError:  # not a key we may read: not one we made
            return False
        return tag_dict(tags, "TagKey", "TagValue").get(TAG_KEY) == self.ctx.config.name

    def create(self) -> str:
        kms = self.ctx.client("kms")
        meta = kms.create_key(
            Description=f"pipelinectl: encrypts the SNS topics of pipeline {self.ctx.config.name}",
            KeyUsage="ENCRYPT_DECRYPT",
            Policy=policy_json(self.key_policy()),
            Tags=tag_list(self.ctx.tags, "TagKey", "TagValue"),
        )["KeyMetadata"]
        self._learn(meta["Arn"])
        if not self._attach_alias(meta["KeyId"]):  # another run's key won: it is ours now
            return str(self.ctx.learned.topic_key_arn or self.arn)
        kms.enable_key_rotation(KeyId=meta["KeyId"])
        return str(meta["Arn"])

    def _attach_alias(self, key_id: str) -> bool:
        """Point our alias at `key_id`; False when another run's key took it first (then ours
        is scheduled for deletion and the winner is brought to the desired state)."""
        kms = self.ctx.client("kms")
        try:
            kms.create_alias(AliasName=self.name, TargetKeyId=key_id)
            return True
        except kms.exceptions.AlreadyExistsException:
            winner = kms.describe_key(KeyId=self.name)["KeyMetadata"]
        if winner["KeyId"] == key_id:  # an earlier attempt of ours did reach AWS
            return True
        self._schedule_deletion(key_id)
        observed = self._observe(winner, aliased=True)
        problem = self.owner_problem(observed)
        if problem:
            raise NotOursError(
                f"The KMS alias {self.name} was taken, while this run created its key, by a "
                f"key that {problem}; this run's key is scheduled for deletion. Choose "
                "another kms_alias in [names] of pipeline.toml."
            )
        remaining = set(self.plan(observed, read=False).fields) - {"alias"}
        if remaining:
            self.update(remaining, observed)
        return False

    def _schedule_deletion(self, key_id: str) -> None:
        kms = self.ctx.client("kms")
        try:
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_DELETION_DAYS)
        except kms.exceptions.KMSInvalidStateException:
            # Another run scheduled it already; anything else is a real refusal.
            if kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] not in \
                    PENDING_DELETION:
                raise

    def update(self, fields: set[str], observed: Observed) -> None:
        kms = self.ctx.client("kms")
        key_id = observed["key_id"]
        if "enabled" in fields:
            if observed["state"] in PENDING_DELETION:
                kms.cancel_key_deletion(KeyId=key_id)
            kms.enable_key(KeyId=key_id)
        if "alias" in fields and not self._attach_alias(key_id):
            return
        if "policy" in fields:
            kms.put_key_policy(KeyId=key_id, PolicyName="default",
                               Policy=policy_json(self.key_policy()))
        if "rotation" in fields:
            kms.enable_key_rotation(KeyId=key_id)
        if "tags" in fields:
            kms.tag_resource(KeyId=key_id, Tags=tag_list(self.ctx.tags, "TagKey", "TagValue"))

    def delete(self, observed: Observed) -> None:
        """Schedule the deletion before dropping the alias: a teardown stopped in between
        leaves the alias naming a key pending deletion, which the re-run finds by its alias
        and finishes. (The other order leaves an enabled key that no alias names.) Keys of
        ours that no alias names (a run stopped after CreateKey, a lost race) go too."""
        kms = self.ctx.client("kms")
        if observed["state"] not in PENDING_DELETION:
            self._schedule_deletion(observed["key_id"])
        for orphan in self._unaliased_keys():
            self._schedule_deletion(orphan["KeyId"])
        if observed["alias"]:
            with suppress(kms.exceptions.NotFoundException):  # another teardown removed it
                kms.delete_alias(AliasName=self.name)

    def health(self, observed: Observed) -> Health:
        details = {"key_id": observed["key_id"], "rotation": observed["rotation"]}
        if not observed["alias"]:
            return (f"{observed['state']}, alias missing: run pipelinectl up", "error",
                    details)
        return observed["state"], ("ok" if observed["enabled"] else "error"), details

