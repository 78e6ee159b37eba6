"""The landing bucket: EventBridge notifications on, public access blocked, TLS only,
default encryption, optional versioning. Teardown empties it, object versions included."""

from __future__ import annotations

import contextlib
from typing import Any

from pipelinectl.config import EVENTBRIDGE_TAG_KEY
from pipelinectl.errors import PipelineError
from pipelinectl.resources import bucket_events
from pipelinectl.resources.base import (
    Health,
    Observed,
    Resource,
    error_code,
    parse_policy,
    policy_json,
    tag_dict,
    tag_list,
)

BLOCK_ALL = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
             "RestrictPublicBuckets": True}
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


class Bucket(Resource):
    step = "bucket"
    kind = "S3 bucket"

    @property
    def name(self) -> str:
        return self.ctx.names.bucket

    @property
    def arn(self) -> str:
        return f"arn:{self.ctx.partition}:s3:::{self.name}"

    def desired(self) -> Observed:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [self.arn, f"{self.arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }],
        }
        return {
            "eventbridge": True,
            "public_access_block": BLOCK_ALL,
            "policy": parse_policy(policy_json(policy)),
            "encryption": "AES256",
            "versioning": "Enabled" if self.ctx.config.bucket_versioning else "Disabled",
            "tags": self.ctx.tags,
        }

    def read(self) -> Observed | None:
        s3 = self.ctx.client("s3")
        try:
            s3.head_bucket(Bucket=self.name)
        except Exception as exc:
            code = error_code(exc)
            if code in {"404", "NoSuchBucket", "NotFound"}:
                return None
            if code in {"403", "AccessDenied"}:
                return {"tags": {}, "foreign": True}
            raise
        status = s3.get_bucket_versioning(Bucket=self.name).get("Status", "Disabled")
        observed = {
            "eventbridge": "EventBridgeConfiguration" in s3.get_bucket_notification_configuration(
                Bucket=self.name),
            "public_access_block": self._optional(
                s3.get_public_access_block, "PublicAccessBlockConfiguration"),
            "policy": parse_policy(self._optional(s3.get_bucket_policy, "Policy")),
            "encryption": _sse_algorithm(self._optional(
                s3.get_bucket_encryption, "ServerSideEncryptionConfiguration")),
            # A bucket once versioned can only be Suspended, which is what "off" means then.
            "versioning": {"Suspended": "Disabled"}.get(status, status),
            "tags": tag_dict(self._optional(s3.get_bucket_tagging, "TagSet")),
        }
        # `up` warns while the window of an earlier run is still open, too.
        self.ctx.learned.eventbridge_enabled_at = observed["tags"].get(EVENTBRIDGE_TAG_KEY)
        return observed

    def _optional(self, getter: Any, key: str) -> Any:
        """S3 answers 'not configured' with an error code rather than an empty value."""
        try:
            return getter(Bucket=self.name).get(key)
        except Exception as exc:
            if error_code(exc) in {"NoSuchBucketPolicy", "NoSuchTagSet",
                                   "NoSuchPublicAccessBlockConfiguration",
                                   "ServerSideEncryptionConfigurationNotFoundError"}:
                return None
            raise

    def create(self) -> None:
        """Created with its tags in the one call (CreateBucketConfiguration.Tags, S3 API
        Reference; needs s3:TagResource), so a crash right after CreateBucket cannot leave a
        bucket that neither the next `up` nor `teardown` may touch. An endpoint that ignores
        creation tags (an older emulator) gets them from the tagging call below instead."""
        s3 = self.ctx.client("s3")
        configuration: dict[str, Any] = {"Tags": tag_list(self.ctx.tags)}
        if self.ctx.region != "us-east-1":
            configuration["LocationConstraint"] = self.ctx.region
        s3.create_bucket(Bucket=self.name, CreateBucketConfiguration=configuration)
        tags = tag_dict(self._optional(s3.get_bucket_tagging, "TagSet"))
        fields = set(self.desired()) - {"tags"}
        if any(tags.get(key) != value for key, value in self.ctx.tags.items()):
            fields.add("tags")
        self.update(fields, {"tags": tags})

    def update(self, fields: set[str], observed: Observed) -> None:
        s3 = self.ctx.client("s3")
        wanted = self.desired()
        if "tags" in fields or "eventbridge" in fields:
            merged = {**(observed.get("tags") or {}), **wanted["tags"]}
            if "eventbridge" in fields:  # stamped before enabling: see bucket_events
                merged[EVENTBRIDGE_TAG_KEY] = bucket_events.stamp(bucket_events.now())
                self.ctx.learned.eventbridge_enabled_at = merged[EVENTBRIDGE_TAG_KEY]
            s3.put_bucket_tagging(Bucket=self.name, Tagging={"TagSet": tag_list(merged)})
        if "public_access_block" in fields:
            s3.put_public_access_block(Bucket=self.name,
                                       PublicAccessBlockConfiguration=BLOCK_ALL)
        if "encryption" in fields:
            s3.put_bucket_encryption(Bucket=self.name, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        if "policy" in fields:
            s3.put_bucket_policy(Bucket=self.name, Policy=policy_json(wanted["policy"]))
        if "eventbridge" in fields:
            s3.put_bucket_notification_configuration(
                Bucket=self.name,
                NotificationConfiguration={"EventBridgeConfiguration": {}})
        if "versioning" in fields and (observed.get("versioning") == "Enabled"
                                       or wanted["versioning"] == "Enabled"):
            status = "Enabled" if wanted["versioning"] == "Enabled" else "Suspended"
            s3.put_bucket_versioning(Bucket=self.name,
                                     VersioningConfiguration={"Status": status})

    def owner_problem(self, observed: Observed) -> str | None:
        if observed.get("foreign"):
            return "is owned by another AWS account (bucket names are global)"
        return super().owner_problem(observed)

    def delete(self, observed: Observed) -> None:
        """S3 API reference, DeleteBucket: every object, version and delete marker must be
        deleted first, else 409 BucketNotEmpty. Teardown deletes the bucket only once the
        mapping and the function are gone, yet an invocation that was still running may
        write a `rejected/` object after the emptying: empty once more, then delete."""
        s3 = self.ctx.client("s3")
        self.empty()
        with contextlib.suppress(s3.exceptions.NoSuchBucket):
            try:
                s3.delete_bucket(Bucket=self.name)
            except Exception as exc:
                if error_code(exc) != "BucketNotEmpty":
                    raise
                self.empty()
                s3.delete_bucket(Bucket=self.name)

    def empty(self) -> int:
        """Delete every object version and delete marker; returns how many were removed."""
        s3 = self.ctx.client("s3")
        removed = 0
        batch: list[dict[str, str]] = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=self.name):
            for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                batch.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
                if len(batch) == DELETE_BATCH:
                    removed += self._delete_objects(batch)
                    batch = []
        if batch:
            removed += self._delete_objects(batch)
        return removed

    def _delete_objects(self, batch: list[dict[str, str]]) -> int:
        response = self.ctx.client("s3").delete_objects(
            Bucket=self.name, Delete={"Objects": batch, "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise PipelineError(
                f"Could not empty bucket {self.name}: {len(errors)} objects refused deletion "
                f"({first.get('Key')}: {first.get('Code')}); fix that and re-run teardown."
            )
        return len(batch)

    def health(self, observed: Observed) -> Health:
        problems = [k for k, v in self.desired().items() if k != "tags" and observed.get(k) != v]
        if problems:
            return f"drifted: {', '.join(problems)}", "warn", {"drift": problems}
        pending = bucket_events.window(self.ctx, observed["tags"])
        if pending is not None:
            return pending.warning(), "warn", {
                "versioning": observed["versioning"],
                "eventbridge_effective_at": bucket_events.stamp(pending.ends_at)}
        return "ready", "ok", {"versioning": observed["versioning"]}


def _sse_algorithm(config: dict[str, Any] | None) -> str | None:
    rules = (config or {}).get("Rules") or [{}]
    value = rules[0].get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
    return str(value) if value else None
