"""teardown removes exactly what carries our tag, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from step_graph import every_resource_count

from pipelinectl import engine
from pipelinectl.config import TAG_KEY


def everything_named(p: Any, prefix: str = "ecommerce") -> list[str]:
    """Every resource in the account whose name starts with the pipeline's name."""
    found: list[str] = []
    found += [r["RoleName"] for r in p.client("iam").list_roles()["Roles"]
              if r["RoleName"].startswith(prefix)]
    found += [b["Name"] for b in p.client("s3").list_buckets()["Buckets"]]
    found += p.client("dynamodb").list_tables()["TableNames"]
    found += [t["TopicArn"] for t in p.client("sns").list_topics()["Topics"]]
    found += p.client("sqs").list_queues().get("QueueUrls", [])
    found += [f["FunctionName"] for f in p.client("lambda").list_functions()["Functions"]]
    found += [r["Name"] for r in p.client("events").list_rules()["Rules"]]
    found += [g["logGroupName"] for g in p.client("logs").describe_log_groups()["logGroups"]]
    found += [a["AlarmName"] for a in p.client("cloudwatch").describe_alarms()["MetricAlarms"]]
    found += [a["AliasName"] for a in p.client("kms").list_aliases()["Aliases"]
              if not a["AliasName"].startswith("alias/aws/")]
    found += [m["UUID"] for m in p.client("lambda").list_event_source_mappings()[
        "EventSourceMappings"]]
    found += [s["SubscriptionArn"] for s in p.client("sns").list_subscriptions()[
        "Subscriptions"]]
    return found


def test_teardown_leaves_nothing_and_a_second_one_has_nothing_to_do(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    bucket = p.ctx.names.bucket
    s3 = p.client("s3")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for version in range(3):  # versions and a delete marker must all go
        s3.put_object(Bucket=bucket, Key="incoming/a.csv", Body=f"v{version}".encode())
    s3.delete_object(Bucket=bucket, Key="incoming/a.csv")
    changes = engine.teardown(p.ctx)
    assert {c.action for c in changes} == {"delete"}
    assert len(changes) == every_resource_count()
    assert everything_named(p) == []
    key = p.client("kms").list_keys()["Keys"][0]["KeyId"]
    assert p.client("kms").describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == \
        "PendingDeletion"
    p.reset_calls()
    again = engine.teardown(p.ctx)
    assert {c.action for c in again} == {"absent"}
    assert p.mutating() == []


def test_teardown_keep_data_keeps_bucket_and_table(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    changes = engine.teardown(p.ctx, keep_data=True)
    kept = {c.kind for c in changes if c.action == "keep"}
    assert kept == {"S3 bucket", "DynamoDB table"}
    assert sorted(everything_named(p)) == sorted([p.ctx.names.bucket, p.ctx.names.table])


def test_same_named_queue_without_our_tag_is_refused_by_up_and_left_by_teardown(
        pipeline: Any) -> None:
    p = pipeline()
    sqs = p.client("sqs")
    foreign = sqs.create_queue(QueueName="ecommerce-transactions",
                               tags={"team": "someone-else"})["QueueUrl"]
    planned = {c.name: c for c in engine.plan(p.ctx)}
    assert planned["ecommerce-transactions"].action == "conflict"
    with pytest.raises(engine.StepFailed, match="not this pipeline's") as failed:
        engine.apply(p.ctx)
    # Independent steps ran to the end; nothing that needs or names the queue was started
    # (the role would be granted the foreign queue, the alarms would watch it, the rule
    # dead-letters into the queue step's DLQ).
    done = {c.step for c in failed.value.done}
    assert {"bucket", "table", "topic"} <= done
    assert not {"roles", "lambda", "rule", "subscribe", "alarms"} & done
    assert failed.value.exit_code == 1
    changes = engine.teardown(p.ctx)
    refused = [c for c in changes if c.action == "refused"]
    assert [(c.kind, c.name) for c in refused] == [("SQS queue", "ecommerce-transactions")]
    assert sqs.list_queue_tags(QueueUrl=foreign)["Tags"] == {"team": "someone-else"}
    assert sqs.get_queue_url(QueueName="ecommerce-transactions")["QueueUrl"] == foreign


def test_another_pipelines_resource_is_not_ours_either(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx, ["table"])
    p.client("dynamodb").tag_resource(
        ResourceArn=p.ctx.arn("dynamodb", "table/ecommerce-transactions"),
        Tags=[{"Key": TAG_KEY, "Value": "other"}])
    with pytest.raises(engine.StepFailed) as failed:
        engine.apply(p.ctx, ["table"])
    assert "belongs to pipeline 'other'" in str(failed.value)


def test_two_pipelines_live_side_by_side_and_tear_down_separately(pipeline: Any) -> None:
    first, second = pipeline(name="ecommerce"), pipeline(name="payments")
    engine.apply(first.ctx)
    engine.apply(second.ctx)
    engine.teardown(first.ctx)
    assert {c.action for c in engine.plan(second.ctx)} == {"unchanged"}
    assert [n for n in everything_named(second) if "ecommerce" in n] == []
    assert len([n for n in everything_named(second) if "payments" in n]) >= 14


def test_teardown_finds_the_pipeline_key_after_topic_encryption_was_turned_off(
        pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    p.fresh(topic_kms_key="none")
    engine.apply(p.ctx)
    changes = engine.teardown(p.ctx)
    assert ("KMS key", "delete") in {(c.kind, c.action) for c in changes}
    assert everything_named(p) == []
