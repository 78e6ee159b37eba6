"""Everything in the (moto) account, as comparable data: the crash test's ground truth.

Listed service by service, not through pipelinectl's own resource classes, so a stray resource
the tool does not know about (an untagged bucket, a second KMS key, a duplicate subscription)
shows up too. Generated ids (key ids, subscription and mapping UUIDs) and timestamps are
replaced by stable placeholders so two runs compare equal when they built the same things.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session

from pipelinectl.config import EVENTBRIDGE_TAG_KEY

Snapshot = dict[str, Any]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@functools.cache
def _client(service: str, region: str) -> Any:
    """Clients outlive moto's resets (moto hooks botocore itself), and making one is most of
    a snapshot's cost."""
    return _session().client(service, region_name=region)


@functools.cache
def _session() -> Any:
    return boto3.Session(botocore_session=botocore.session.Session())


def take(region: str = "us-east-1") -> Snapshot:
    def client(service: str) -> Any:
        return _client(service, region)

    sections: dict[str, Callable[[Callable[[str], Any]], Any]] = {
        "iam": _iam, "s3": _s3, "dynamodb": _dynamodb, "kms": _kms, "sns": _sns,
        "sqs": _sqs, "lambda": _lambda, "events": _events, "cloudwatch": _alarms,
        "logs": _logs,
    }
    raw = {name: section(client) for name, section in sections.items()}
    return _sort_tags(json.loads(_UUID.sub("<id>", json.dumps(raw, sort_keys=True,
                                                              default=str))))


def _sort_tags(value: Any) -> Any:
    """Tag lists come back in whatever order the service keeps them: compare them as sets."""
    if isinstance(value, dict):
        return {k: sorted(_sort_tags(v), key=json.dumps)
                if k in {"tags", "Tags", "TagSet"} and isinstance(v, list) else _sort_tags(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_sort_tags(v) for v in value]
    return value


def leftovers(snapshot: Snapshot) -> Snapshot:
    """What is still there, section by section; KMS keys pending deletion do not count (KMS
    never deletes a key at once: the minimum waiting period is 7 days)."""
    left: Snapshot = {}
    for section, content in snapshot.items():
        parts = content if isinstance(content, dict) else {"": content}
        for part, items in parts.items():
            live = [k for k in items if k["state"] != "PendingDeletion"] if (
                section == "kms" and part == "keys") else items
            if live:
                left[f"{section} {part}".strip()] = live
    return left


def _iam(client: Callable[[str], Any]) -> list[dict[str, Any]]:
    iam = client("iam")
    roles = []
    for role in iam.list_roles()["Roles"]:
        name = role["RoleName"]
        roles.append({
            "name": name,
            "trust": role["AssumeRolePolicyDocument"],
            "inline": {p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
                       for p in iam.list_role_policies(RoleName=name)["PolicyNames"]},
            "attached": iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"],
            "tags": iam.list_role_tags(RoleName=name)["Tags"],
        })
    return roles


def _optional(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:  # S3 answers "not configured" with an error
        return f"<{type(exc).__name__}>"


def _bucket_tags(tag_set: Any) -> Any:
    """The notifications stamp holds the time `up` enabled them: compare its presence only."""
    if not isinstance(tag_set, list):
        return tag_set
    return [{**t, "Value": "<time>"} if t["Key"] == EVENTBRIDGE_TAG_KEY else t for t in tag_set]


def _s3(client: Callable[[str], Any]) -> list[dict[str, Any]]:
    s3 = client("s3")
    buckets = []
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        buckets.append({
            "name": name,
            "tags": _bucket_tags(_optional(lambda n=name: s3.get_bucket_tagging(Bucket=n)[
                "TagSet"])),
            "policy": _optional(lambda n=name: json.loads(s3.get_bucket_policy(Bucket=n)[
                "Policy"])),
            "public_access": _optional(lambda n=name: s3.get_public_access_block(Bucket=n)[
                "PublicAccessBlockConfiguration"]),
            "encryption": _optional(lambda n=name: s3.get_bucket_encryption(Bucket=n)[
                "ServerSideEncryptionConfiguration"]),
            "versioning": s3.get_bucket_versioning(Bucket=name).get("Status"),
            "notification": {k: v for k, v in s3.get_bucket_notification_configuration(
                Bucket=name).items() if k != "ResponseMetadata"},
            "objects": [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])],
        })
    return buckets


def _dynamodb(client: Callable[[str], Any]) -> list[dict[str, Any]]:
    ddb = client("dynamodb")
    tables = []
    for name in ddb.list_tables()["TableNames"]:
        table = ddb.describe_table(TableName=name)["Table"]
        backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        tables.append({
            "name": name, "key": table["KeySchema"], "status": table["TableStatus"],
            "billing": table.get("BillingModeSummary", {}).get("BillingMode"),
            "pitr": backups.get("PointInTimeRecoveryDescription", {}).get(
                "PointInTimeRecoveryStatus"),
            "tags": ddb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"],
        })
    return tables


def _kms(client: Callable[[str], Any]) -> dict[str, Any]:
    kms = client("kms")
    keys = []
    for key in kms.list_keys()["Keys"]:
        meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
        if meta.get("KeyManager") == "AWS":
            continue
        keys.append({
            "state": meta["KeyState"],
            "policy": json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")[
                "Policy"]),
            "rotation": kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"],
            "tags": kms.list_resource_tags(KeyId=key["KeyId"])["Tags"],
        })
    aliases = [{"name": a["AliasName"], "has_key": "TargetKeyId" in a}
               for a in kms.list_aliases()["Aliases"]
               if not a["AliasName"].startswith("alias/aws/")]
    return {"keys": sorted(keys, key=lambda k: (k["state"], json.dumps(k["tags"]))),
            "aliases": aliases}


def _sns(client: Callable[[str], Any]) -> dict[str, Any]:
    sns = client("sns")
    topics = []
    for topic in sns.list_topics()["Topics"]:
        arn = topic["TopicArn"]
        attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        topics.append({"arn": arn, "policy": json.loads(attrs.get("Policy", "null")),
                       "kms": attrs.get("KmsMasterKeyId"),
                       "tags": sns.list_tags_for_resource(ResourceArn=arn)["Tags"]})
    subscriptions = sorted(
        ({"topic": s["TopicArn"], "protocol": s["Protocol"], "endpoint": s["Endpoint"],
          "raw": sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])[
              "Attributes"].get("RawMessageDelivery")}
         for s in sns.list_subscriptions()["Subscriptions"]),
        key=json.dumps)
    return {"topics": topics, "subscriptions": subscriptions}


_SQS_VOLATILE = {"CreatedTimestamp", "LastModifiedTimestamp", "ApproximateNumberOfMessages",
                 "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"}


def _sqs(client: Callable[[str], Any]) -> list[dict[str, Any]]:
    sqs = client("sqs")
    queues = []
    for url in sqs.list_queues().get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        stable = {k: v for k, v in attrs.items() if k not in _SQS_VOLATILE}
        for key in ("Policy", "RedrivePolicy"):
            if key in stable:
                stable[key] = json.loads(stable[key])
        queues.append({"url": url, "attributes": stable,
                       "tags": sqs.list_queue_tags(QueueUrl=url).get("Tags", {})})
    return queues


_LAMBDA_KEEP = ("FunctionName", "Runtime", "Role", "Handler", "CodeSha256", "Timeout",
                "MemorySize", "Environment", "State", "LastUpdateStatus")


def _lambda(client: Callable[[str], Any]) -> dict[str, Any]:
    lam = client("lambda")
    functions = []
    for function in lam.list_functions()["Functions"]:
        got = lam.get_function(FunctionName=function["FunctionName"])
        functions.append({**{k: got["Configuration"].get(k) for k in _LAMBDA_KEEP},
                          "tags": got.get("Tags", {})})
    mappings = [{k: m.get(k) for k in ("EventSourceArn", "FunctionArn", "BatchSize",
                                       "MaximumBatchingWindowInSeconds",
                                       "FunctionResponseTypes", "State")}
                for m in lam.list_event_source_mappings()["EventSourceMappings"]]
    return {"functions": functions, "mappings": mappings}


def _events(client: Callable[[str], Any]) -> list[dict[str, Any]]:
    events = client("events")
    rules = []
    for rule in events.list_rules()["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        rules.append({"name": rule["Name"], "pattern": json.loads(rule.get("EventPattern")
                                                                  or "null"),
                      "state": rule["State"], "targets": targets,
                      "tags": events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"]})
    return rules


_ALARM_VOLATILE = {"AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp",
                   "StateReason", "StateReasonData", "StateValue",
                   "StateTransitionedTimestamp"}


def _alarms(client: Callable[[str], Any]) -> list[dict[str, Any]]:
    cloudwatch = client("cloudwatch")
    return [{**{k: v for k, v in alarm.items() if k not in _ALARM_VOLATILE},
             "tags": cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]}
            for alarm in cloudwatch.describe_alarms()["MetricAlarms"]]


def _logs(client: Callable[[str], Any]) -> list[dict[str, Any]]:
    logs = client("logs")
    groups = []
    for group in logs.describe_log_groups()["logGroups"]:
        arn = group["arn"].removesuffix(":*")
        groups.append({"name": group["logGroupName"],
                       "retention": group.get("retentionInDays"),
                       "tags": logs.list_tags_for_resource(resourceArn=arn)["tags"]})
    return groups
