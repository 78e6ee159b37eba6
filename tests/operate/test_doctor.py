"""`doctor` against moto in-process: every check passes on a clean `up` and each one fails
(or warns) on a pipeline broken on purpose. Where moto cannot show a state AWS has (a
Failed function, a mapping's PROBLEM result, a young alias) it is injected into the parsed
response with a botocore after-call hook, as AWS would answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from pipelinectl import config as config_module
from pipelinectl import engine
from pipelinectl.cli import main
from pipelinectl.clients import ClientFactory
from pipelinectl.operate import doctor
from pipelinectl.resources.base import Context

REGION = "us-east-1"


@pytest.fixture
def deployed(aws: None, skip_notification_delay: Callable[[], None]) -> Iterator[Context]:
    config = config_module.load({})
    ctx = engine.make_context(config, ClientFactory(config))
    engine.apply(ctx)
    skip_notification_delay()
    yield ctx


def _levels(ctx: Context) -> dict[str, str]:
    return {f.check: f.level for f in doctor.run(ctx)}


def _inject(ctx: Context, service: str, operation: str,
            change: Callable[[dict[str, Any]], None]) -> None:
    def hook(parsed: dict[str, Any], **_: Any) -> None:
        change(parsed)

    ctx.client(service).meta.events.register(f"after-call.{service}.{operation}", hook)


def test_a_clean_up_passes_every_check_and_exits_0(deployed: Context) -> None:
    deployed.factory.calls.clear()
    found = doctor.run(deployed)
    assert {f.level for f in found} == {"ok"}, [f for f in found if f.level != "ok"]
    assert {"visibility timeout", "max receive count", "DLQ retention", "rule", "topic key",
            "EventBridge key statement", "DLQ", "unprocessed files", "function state",
            "event source mapping", "reserved concurrency"} <= {f.check for f in found}
    assert [c for c in deployed.factory.calls if c.mutating] == []  # read-only
    result = CliRunner().invoke(main, ["--output", "json", "doctor"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counts"]["fail"] == 0


def test_queue_settings_console_edits_are_flagged(deployed: Context) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName=deployed.names.queue)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={
        "VisibilityTimeout": "31", "MessageRetentionPeriod": str(14 * 86400),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": deployed.arn(
            "sqs", deployed.names.dlq), "maxReceiveCount": 2})})
    levels = _levels(deployed)
    assert levels["visibility timeout"] == "warn"  # 31 s for a 30 s function (< 6x)
    assert levels["max receive count"] == "warn"
    assert levels["DLQ retention"] == "warn"  # equal retention: DLQ copies expire early
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "10"})
    assert _levels(deployed)["visibility timeout"] == "fail"


def test_function_mapping_and_concurrency_problems_fail(deployed: Context) -> None:
    lam = boto3.client("lambda", region_name=REGION)
    lam.put_function_concurrency(FunctionName=deployed.names.function,
                                 ReservedConcurrentExecutions=0)
    uuid = lam.list_event_source_mappings(FunctionName=deployed.names.function)[
        "EventSourceMappings"][0]["UUID"]
    lam.update_event_source_mapping(UUID=uuid, Enabled=False)
    levels = _levels(deployed)
    assert levels["reserved concurrency"] == "fail"
    assert levels["event source mapping"] == "fail"
    lam.update_event_source_mapping(UUID=uuid, Enabled=True,
                                    ScalingConfig={"MaximumConcurrency": 5})
    lam.put_function_concurrency(FunctionName=deployed.names.function,
                                 ReservedConcurrentExecutions=2)
    assert _levels(deployed)["reserved concurrency"] == "warn"  # 2 < the mapping's 5

    def problem(parsed: dict[str, Any]) -> None:
        for mapping in parsed.get("EventSourceMappings", []):
            mapping.update(State="Enabled", LastProcessingResult=(
                "PROBLEM: Lambda needs kms:Decrypt permissions"))

    def failed(parsed: dict[str, Any]) -> None:
        parsed["Configuration"].update(State="Failed", StateReason="InvalidZipFile")

    _inject(deployed, "lambda", "ListEventSourceMappings", problem)
    _inject(deployed, "lambda", "GetFunction", failed)
    levels = _levels(deployed)
    assert levels["event source mapping"] == "fail"
    assert levels["function state"] == "fail"


def test_rule_topic_key_and_key_policy_problems_fail(deployed: Context) -> None:
    events = boto3.client("events", region_name=REGION)
    events.disable_rule(Name=deployed.names.rule)
    assert _levels(deployed)["rule"] == "fail"
    events.enable_rule(Name=deployed.names.rule)
    events.remove_targets(Rule=deployed.names.rule, Ids=["ingest-topic"])
    assert _levels(deployed)["rule"] == "fail"
    kms = boto3.client("kms", region_name=REGION)
    key_id = kms.describe_key(KeyId=deployed.names.kms_alias)["KeyMetadata"]["KeyId"]
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    for statement in policy["Statement"]:
        if statement.get("Principal", {}).get("Service") == "events.amazonaws.com":
            statement["Condition"] = {"StringEquals": {"aws:SourceAccount": deployed.account}}
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))
    boto3.client("sns", region_name=REGION).set_topic_attributes(
        TopicArn=deployed.arn("sns", deployed.names.ingest_topic),
        AttributeName="KmsMasterKeyId", AttributeValue="alias/aws/sns")
    levels = _levels(deployed)
    assert levels["EventBridge key statement"] == "fail"
    assert levels["topic key"] == "fail"


def test_young_alias_and_open_s3_window_warn(aws: None) -> None:
    config = config_module.load({})
    ctx = engine.make_context(config, ClientFactory(config))
    engine.apply(ctx)  # just now: S3's five minutes have not passed, nor KMS's
    # moto's ListAliases has no CreationDate; AWS reports it (KMS API Reference, AliasListEntry)
    _inject(ctx, "kms", "ListAliases", lambda parsed: [
        a.setdefault("CreationDate", datetime.now(UTC)) for a in parsed["Aliases"]])
    levels = _levels(ctx)
    assert levels["S3 EventBridge window"] == "warn"
    assert levels["KMS alias age"] == "warn"


def test_alarms_dlq_and_unprocessed_files(deployed: Context, monkeypatch: Any) -> None:
    names = deployed.names
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    alarms = [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]]
    first, second = sorted(alarms)[:2]
    cloudwatch.set_alarm_state(AlarmName=first, StateValue="ALARM", StateReason="test")
    cloudwatch.disable_alarm_actions(AlarmNames=[second])
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=names.dlq)["QueueUrl"],
                     MessageBody="{}")
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=names.bucket, Key="incoming/late.csv", Body=b"id\n")
    later = doctor.time.time() + 3600  # an hour later, the processor never ran for it
    fresh = engine.make_context(deployed.config, ClientFactory(deployed.config))
    found = {f.check: f for f in doctor.run(fresh, clock=lambda: later)}
    assert found[f"alarm {first}"].level == "fail"
    assert found[f"alarm {second}"].level == "warn"
    assert found["DLQ"].level == "fail"
    assert found["unprocessed files"].level == "warn"
    assert "pipelinectl replay --since" in found["unprocessed files"].fix
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1
    assert "check(s) failed" in result.output
