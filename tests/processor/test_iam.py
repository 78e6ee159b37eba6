"""Every call the processor makes is granted by the role `roles` creates, on that resource.

The policy and the code live in different packages; this test keeps them from drifting.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from pipelinectl import config as config_module
from pipelinectl.clients import ClientFactory
from pipelinectl.localaws.iamconditions import conditions_met
from pipelinectl.resources.base import Context
from pipelinectl.resources.role import Role

from .conftest import BUCKET, Pipeline
from .test_large_files import as_csv, rows, with_parts

BIG = {"transaction_id": "big-1", "amount": "1500.00", "timestamp": "2024-08-09T12:35:00Z"}
# API operation -> the IAM action that authorises it.
# TransactWriteItems: "Permissions for Put, Update, Delete, and Get actions are governed by the
# permissions used for the underlying PutItem, UpdateItem, DeleteItem, and GetItem operations"
# (DynamoDB Developer Guide, "Using IAM with DynamoDB transactions"); ours are Updates only.
ACTION = {"PublishBatch": "sns:Publish", "SendMessageBatch": "sqs:SendMessage",
          "TransactWriteItems": "dynamodb:UpdateItem"}


def granted(policy: dict[str, Any], action: str, resource: str,
            context: dict[str, list[str]] | None = None) -> bool:
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [
            statement["Action"]]
        if any(fnmatch.fnmatchcase(action, a) for a in actions) and fnmatch.fnmatchcase(
                resource, statement["Resource"]) and conditions_met(
                statement.get("Condition", {}), context or {}):
            return True
    return False


def resource_of(call: Any, pipeline: Pipeline) -> str:
    params = call.params
    if call.service == "s3":
        return f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"
    if call.service == "dynamodb":
        tables = {a["Update"]["TableName"] for a in params.get("TransactItems", [])}
        [table] = tables or params.get("RequestItems", {params.get("TableName"): None})
        return f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}"
    if call.service == "sns":
        return str(params["TopicArn"])
    name = params["QueueUrl"].rsplit("/", 1)[-1]
    return f"arn:aws:sqs:us-east-1:123456789012:{name}"


@pytest.mark.parametrize("last_wins", [False, True], ids=["reject", "last_wins"])
def test_every_recorded_call_is_granted_by_the_role_policy(pipeline: Pipeline,
                                                           last_wins: bool) -> None:
    pipeline.runtime.persister.last_wins = last_wins  # each policy writes differently
    config = config_module.load({}, {})
    ctx = Context(config=config, factory=ClientFactory(config), account="123456789012",
                  region="us-east-1")
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    policy = Role(ctx).inline_policy(key_arn)
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/a.csv",
                           Body=b"transaction_id,amount,timestamp\n1,5000,x\n"
                                b"2,2000,2024-08-09T00:00Z\n3,20,2024-08-09T00:00Z\n")
    pipeline.send({"source": "aws.s3", "detail-type": "Object Created", "detail": {
        "bucket": {"name": BUCKET}, "object": {"key": "incoming/a.csv"}}})
    pipeline.send(BIG)
    pipeline.send("junk")
    # a file above the split threshold: its parts go on the pipeline's own queue
    with_parts(pipeline, 2 * 1024)
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/big.csv", Body=as_csv(rows(120, "b")[0]))
    pipeline.send({"source": "aws.s3", "detail-type": "Object Created", "detail": {
        "bucket": {"name": BUCKET}, "object": {"key": "incoming/big.csv"}}})
    pipeline.drain()
    pipeline.drain()  # the parts
    calls = pipeline.recorder.calls
    assert any(c.operation == "SendMessageBatch" and c.params["QueueUrl"] == pipeline.queue_url
               for c in calls)  # parts queued: sqs:SendMessage on the pipeline's own queue
    assert any(c.params.get("Range") for c in pipeline.recorder.ops("GetObject"))
    write = "BatchWriteItem" if last_wins else "TransactWriteItems"
    assert {c.operation for c in calls} >= {"GetObject", "PutObject", write,
                                           "UpdateItem", "PublishBatch", "SendMessageBatch"}
    for call in calls:
        action = ACTION.get(call.operation, f"{call.service}:{call.operation}")
        assert granted(policy, action, resource_of(call, pipeline)), (action, call.params)
        if call.operation == "GetObject":
            # S3 answers a missing key with 404 only to a caller that may list it: the
            # processor dead-letters a 404 and retries a 403 (test_missing_object.py).
            prefix = call.params["Key"].rsplit("/", 1)[0] + "/"
            assert granted(policy, "s3:ListBucket", f"arn:aws:s3:::{call.params['Bucket']}",
                           {"s3:prefix": [prefix]}), call.params
    assert not granted(policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}",
                       {"s3:prefix": ["rejected/"]})  # listing stays limited to incoming/
