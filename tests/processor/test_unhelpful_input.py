"""Inputs whose reason did not help, or that left a stray object (issue 8, Unhelpful items).

Each feeds the input through the real path (moto in-process) and checks what a user sees:
the DLQ reason, the stored item, or the absence of a rejects object.
"""

from __future__ import annotations

import json
from typing import Any

from .conftest import BUCKET, Pipeline
from .test_envelopes import enable_eventbridge

TS = "2024-08-09T12:34:56Z"
TXN = {"transaction_id": "t-1", "amount": "10.00", "timestamp": TS}


def only_reason(pipeline: Pipeline) -> tuple[str, str]:
    (dead,) = pipeline.dead_letters()
    attrs = dead["MessageAttributes"]
    return attrs["ErrorCode"]["StringValue"], attrs["ErrorReason"]["StringValue"]


def test_a_timestamp_beyond_year_9999_in_utc_is_out_of_range(pipeline: Pipeline) -> None:
    pipeline.send({**TXN, "timestamp": "9999-12-31T23:00:00-14:00"})
    assert pipeline.drain() == {"batchItemFailures": []}
    code, reason = only_reason(pipeline)
    assert code == "bad_timestamp" and "out of range" in reason
    assert "not ISO 8601" not in reason


def test_a_5000_digit_number_is_explained_without_python_internals(pipeline: Pipeline) -> None:
    pipeline.send('{"transaction_id": "t-1", "amount": ' + "9" * 5000 + f', "timestamp": "{TS}"}}')
    assert pipeline.drain() == {"batchItemFailures": []}
    code, reason = only_reason(pipeline)
    assert code == "invalid_json" and "more than 4300 digits" in reason
    assert "sys." not in reason and "int_max_str_digits" not in reason


def test_a_binary_transaction_type_attribute_is_rejected_not_stored_as_base64(
        pipeline: Pipeline) -> None:
    pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=json.dumps(TXN),
                              MessageAttributes={"TransactionType": {
                                  "DataType": "Binary", "BinaryValue": b"Purchase"}})
    assert pipeline.drain() == {"batchItemFailures": []}
    assert pipeline.items() == {}
    code, reason = only_reason(pipeline)
    assert code == "bad_type" and "String attribute" in reason and "Binary" in reason


def test_a_binary_transaction_type_inside_an_sns_notification_is_rejected(
        pipeline: Pipeline) -> None:
    pipeline.sns.publish(TopicArn=pipeline.ingest_arn, Message=json.dumps(TXN),
                         MessageAttributes={"TransactionType": {
                             "DataType": "Binary", "BinaryValue": b"Purchase"}})
    assert pipeline.drain() == {"batchItemFailures": []}
    assert pipeline.items() == {}
    assert only_reason(pipeline)[0] == "bad_type"


def keys(pipeline: Pipeline) -> list[str]:
    listed: list[dict[str, Any]] = pipeline.s3.list_objects_v2(Bucket=BUCKET).get(
        "Contents", [])
    return sorted(o["Key"] for o in listed)


def test_folder_objects_are_ignored(pipeline: Pipeline) -> None:
    enable_eventbridge(pipeline)
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/", Body=b"")
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/2024/", Body=b"")
    pipeline.send({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                "s3": {"bucket": {"name": BUCKET},
                                       "object": {"key": "incoming/day+1/", "size": 0}}}]})
    assert pipeline.drain() == {"batchItemFailures": []}
    assert keys(pipeline) == ["incoming/", "incoming/2024/"]  # no rejected/.errors.jsonl
    assert pipeline.dead_letters() == []
