"""Failed EventBridge deliveries are kept and seen (issue 7 item 2), the alerts topic admits
exactly our alarms (item 9), and both queues take SQS's 1 MiB messages (issue 8 item 8)."""

from __future__ import annotations

import json
from typing import Any

from pipelinectl import engine
from pipelinectl.localaws.iamconditions import conditions_met

ACCOUNT = "123456789012"
REGION = "us-east-1"
RULE = "ecommerce-object-created"
DLQ_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:ecommerce-transactions-dlq"


def _pending(p: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    p.fresh()
    return [(c.kind, c.name, c.fields) for c in engine.plan(p.ctx) if c.action != "unchanged"]


def _rule_row(p: Any) -> Any:
    return next(r for r in engine.status(p.ctx) if r.kind == "EventBridge rule")


def test_a_target_that_lost_its_dlq_is_planned_and_repaired_by_up(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    events = p.client("events")
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:ecommerce-ingest"
    events.put_targets(Rule=RULE, Targets=[{"Id": "ingest-topic", "Arn": topic}])  # by hand

    row = _rule_row(p)
    assert row.health == "warn" and "no DLQ" in row.state
    assert _pending(p) == [("EventBridge rule", RULE, ("dead_letter_queue", "retry_policy"))]
    p.reset_calls()
    engine.apply(p.ctx)
    assert p.mutating() == ["events.PutTargets"]
    [target] = events.list_targets_by_rule(Rule=RULE)["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": DLQ_ARN}
    assert _pending(p) == []
    row = _rule_row(p)
    assert row.health == "ok" and "DLQ ecommerce-transactions-dlq" in row.state
    assert row.details["dead_letter_queue"] == DLQ_ARN


def test_a_dlq_policy_that_no_longer_admits_the_rule_is_planned_and_repaired(
        pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    sqs = p.client("sqs")
    url = sqs.get_queue_url(QueueName="ecommerce-transactions-dlq")["QueueUrl"]
    other = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/someone-elses-rule"
    policy = json.loads(sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] = other
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})

    assert _pending(p) == [("SQS dead-letter queue", "ecommerce-transactions-dlq",
                            ("policy",))]
    p.reset_calls()
    engine.apply(p.ctx)
    assert p.mutating() == ["sqs.SetQueueAttributes"]
    assert _pending(p) == []


def test_a_queue_left_at_256_kib_is_planned_and_raised_to_1_mib(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    sqs = p.client("sqs")
    for name in ("ecommerce-transactions", "ecommerce-transactions-dlq"):
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "262144"})

    assert sorted(_pending(p)) == [
        ("SQS dead-letter queue", "ecommerce-transactions-dlq", ("maximum_message_size",)),
        ("SQS queue", "ecommerce-transactions", ("maximum_message_size",))]
    p.reset_calls()
    engine.apply(p.ctx)
    sets = [c.params for c in p.calls if c.operation == "SetQueueAttributes"]
    assert sorted(s["Attributes"]["MaximumMessageSize"] for s in sets) == ["1048576"] * 2
    assert all(set(s["Attributes"]) == {"MaximumMessageSize"} for s in sets)
    assert _pending(p) == []


def _admits(topic_policy: dict[str, Any], alarm_arn: str) -> bool:
    """Would SNS let CloudWatch publish for this alarm? The statement's conditions, evaluated
    as IAM documents them, with the keys CloudWatch alarm actions send."""
    statement = next(s for s in topic_policy["Statement"]
                     if s.get("Sid") == "OnlyOurAlarmsPublish")
    return conditions_met(statement["Condition"], {"aws:sourcearn": [alarm_arn],
                                                   "aws:sourceaccount": [ACCOUNT]})


def test_the_alerts_topic_admits_exactly_our_alarms_not_those_of_a_longer_named_pipeline(
        pipeline: Any) -> None:
    ours, theirs = pipeline(name="ecommerce"), pipeline(name="ecommerce-eu")
    engine.apply(ours.ctx)
    engine.apply(theirs.ctx)
    cloudwatch = ours.client("cloudwatch")
    alarms = {a["AlarmName"]: a["AlarmArn"]
              for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    mine = {n: a for n, a in alarms.items() if not n.startswith("ecommerce-eu-")}
    eu = {n: a for n, a in alarms.items() if n.startswith("ecommerce-eu-")}
    assert mine and len(mine) == len(eu)

    sns = ours.client("sns")
    for pipe, admitted, refused in (("ecommerce", mine, eu), ("ecommerce-eu", eu, mine)):
        policy = json.loads(sns.get_topic_attributes(
            TopicArn=f"arn:aws:sns:{REGION}:{ACCOUNT}:{pipe}-alerts")["Attributes"]["Policy"])
        assert [n for n, a in admitted.items() if not _admits(policy, a)] == []
        assert [n for n, a in refused.items() if _admits(policy, a)] == []
