"""Patch m (motocompat_models.py): moto keeps every model object it made; patched, a copy made
to answer a request is freed. Measured by counting live objects, never by timing."""

from __future__ import annotations

import gc
from typing import Any

import boto3

ITEMS, SCANS = 50, 20


def _live_items() -> int:
    from moto.dynamodb.models.dynamo_type import Item

    gc.collect()
    return sum(isinstance(o, Item) for o in gc.get_objects())


def _table_then_scans() -> tuple[Any, int]:
    """A table of ITEMS items, then SCANS full scans: (client, live moto Items added by the
    scans). Each scan returns every item, as on AWS."""
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(TableName="k", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    for i in range(ITEMS):
        ddb.put_item(TableName="k", Item={"id": {"S": f"t{i}"}, "amount": {"N": "10.25"}})
    before = _live_items()
    for _ in range(SCANS):
        assert ddb.scan(TableName="k", ConsistentRead=True)["Count"] == ITEMS
    return ddb, _live_items() - before


def test_defect_m_moto_keeps_a_copy_of_every_item_each_scan_returned(plain_moto: None) -> None:
    _, added = _table_then_scans()
    assert added >= ITEMS * SCANS  # every scan's deep copies, still alive


def test_patch_m_scans_leave_nothing_alive_and_the_dashboard_lists_live_models(
        patched: None) -> None:
    from moto.dynamodb.models.dynamo_type import Item

    ddb, added = _table_then_scans()
    assert added == 0
    listed = list(Item.instances_tracked)  # what /moto-api/data.json iterates
    assert len(listed) == ITEMS  # the stored items, each once
    del listed
    ddb.delete_item(TableName="k", Key={"id": {"S": "t0"}})
    gc.collect()
    assert len(Item.instances_tracked) == ITEMS - 1  # a deleted item is gone from it too


def test_patch_m_sqs_receives_leave_no_message_copies(patched: None) -> None:
    """ReceiveMessage deep-copies each message it returns (moto's SQS models)."""
    from moto.sqs.models import Message

    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="k")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    gc.collect()
    before = sum(isinstance(o, Message) for o in gc.get_objects())
    for _ in range(SCANS):
        got = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
        assert len(got) == 1
    gc.collect()
    assert sum(isinstance(o, Message) for o in gc.get_objects()) == before
