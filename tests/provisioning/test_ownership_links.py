"""Subscriptions and mappings carry no tags: they are ours only if what they hang off is."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest

from pipelinectl import engine
from pipelinectl.resources.role import TRUST_POLICY


def foreign_wiring(p: Any) -> tuple[str, str]:
    """A function, queue and topic with our names but someone else's tags, wired together."""
    other = {"team": "other"}
    iam, lam, sqs, sns = (p.client(s) for s in ("iam", "lambda", "sqs", "sns"))
    role = iam.create_role(RoleName="theirs", AssumeRolePolicyDocument=json.dumps(
        TRUST_POLICY))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("h.py", "def handler(e, c):\n    return None\n")
    lam.create_function(FunctionName="ecommerce-processor", Runtime="python3.12", Role=role,
                        Handler="h.handler", Code={"ZipFile": code.getvalue()}, Tags=other)
    url = sqs.create_queue(QueueName="ecommerce-transactions", tags=other)["QueueUrl"]
    queue_arn = p.ctx.arn("sqs", "ecommerce-transactions")
    mapping = lam.create_event_source_mapping(EventSourceArn=queue_arn,
                                              FunctionName="ecommerce-processor",
                                              BatchSize=3)["UUID"]
    topic = sns.create_topic(Name="ecommerce-ingest",
                             Tags=[{"Key": "team", "Value": "other"}])["TopicArn"]
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn,
                        ReturnSubscriptionArn=True)["SubscriptionArn"]
    assert url
    return mapping, sub


def test_teardown_and_up_leave_links_between_foreign_resources_alone(pipeline: Any) -> None:
    p = pipeline()
    mapping, sub = foreign_wiring(p)
    planned = {c.kind: c for c in engine.plan(p.ctx, ["subscribe"])}
    assert planned["event source mapping"].action == "conflict"
    assert "hangs off Lambda function ecommerce-processor" in \
        planned["event source mapping"].detail
    assert planned["SNS subscription"].action == "conflict"
    with pytest.raises(engine.StepFailed):
        engine.apply(p.ctx, ["subscribe"])
    changes = {c.kind: c.action for c in engine.teardown(p.ctx)}
    assert changes["event source mapping"] == "refused"
    assert changes["SNS subscription"] == "refused"
    lam, sns = p.client("lambda"), p.client("sns")
    assert lam.get_event_source_mapping(UUID=mapping)["BatchSize"] == 3
    assert [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]] == [sub]
