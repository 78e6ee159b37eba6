"""Dead-lettering of invalid messages: attributes of every kind, sizes, odd characters."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lambda_src import batch as batch_module
from lambda_src.rejects import sqs_safe

from .conftest import BUCKET, Pipeline, message_bytes

GOOD = {"transaction_id": "good-1", "amount": "10.00", "timestamp": "2024-08-09T12:34:56Z"}


def attribute(message: dict[str, Any], name: str) -> str:
    return str(message["MessageAttributes"][name]["StringValue"])


def test_invalid_message_with_a_binary_attribute_is_dead_lettered(pipeline: Pipeline) -> None:
    pipeline.sqs.send_message(
        QueueUrl=pipeline.queue_url, MessageBody="not json",
        MessageAttributes={
            "Signature": {"DataType": "Binary", "BinaryValue": b"\x00\xffsig"},
            "TransactionType": {"DataType": "String", "StringValue": "Purchase"},
        })
    pipeline.send(GOOD)

    assert pipeline.drain() == {"batchItemFailures": []}

    assert set(pipeline.items()) == {"good-1"}
    (dead,) = pipeline.dead_letters()
    assert dead["Body"] == "not json"
    assert attribute(dead, "ErrorCode") == "invalid_json"
    assert "not valid JSON" in attribute(dead, "ErrorReason")
    assert dead["MessageAttributes"]["Signature"]["BinaryValue"] == b"\x00\xffsig"
    assert attribute(dead, "TransactionType") == "Purchase"


def test_an_unexpected_error_preparing_one_record_fails_only_that_record(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    real = batch_module.unwrap

    def unwrap(body: str, attributes: Any) -> Any:
        if body == "boom":
            raise RuntimeError("a bug")
        return real(body, attributes)

    monkeypatch.setattr(batch_module, "unwrap", unwrap)
    pipeline.send("boom")
    pipeline.send(GOOD)
    messages = pipeline.receive()
    boom_id = next(m["MessageId"] for m in messages if m["Body"] == "boom")

    response = pipeline.invoke(pipeline.event(messages))

    assert response == {"batchItemFailures": [{"itemIdentifier": boom_id}]}
    assert set(pipeline.items()) == {"good-1"}


SQS_ALLOWED = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
ODD_KEYS = '{"transaction_id": "odd", "amount": 1, "timestamp": "2024-08-09T12:34:56Z", ' \
           '"\\ud800x": 1, "\\u0001x": 2}'


def test_odd_field_names_reach_the_dlq_only_as_allowed_characters(pipeline: Pipeline) -> None:
    pipeline.send(ODD_KEYS, TransactionType="Purchase")
    pipeline.send(GOOD)

    assert pipeline.drain() == {"batchItemFailures": []}

    assert set(pipeline.items()) == {"good-1"}
    (dead,) = pipeline.dead_letters()
    assert dead["Body"] == ODD_KEYS
    reason = attribute(dead, "ErrorReason")
    assert attribute(dead, "ErrorCode") == "unknown_field"
    assert SQS_ALLOWED.fullmatch(reason), ascii(reason)
    assert "'\\ud800x'" in reason and "'\\x01x'" in reason
    for value in dead["MessageAttributes"].values():
        assert SQS_ALLOWED.fullmatch(value.get("StringValue", ""))


def test_sqs_safe_replaces_only_what_sqs_refuses() -> None:
    assert sqs_safe("a\ud800b\x01c\x7f\t\n\r\ufffe\U0001f600") == (
        "a\ufffdb\ufffdc\x7f\t\n\r\ufffd\U0001f600")


def test_odd_field_names_in_a_file_do_not_hold_back_the_file(pipeline: Pipeline) -> None:
    body = (json.dumps({**GOOD, "transaction_id": "file-good"}) + "\n" + ODD_KEYS + "\n")
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/odd.jsonl", Body=body.encode())
    pipeline.send({"source": "aws.s3", "detail-type": "Object Created", "detail": {
        "bucket": {"name": BUCKET}, "object": {"key": "incoming/odd.jsonl"}}})

    assert pipeline.drain() == {"batchItemFailures": []}

    assert set(pipeline.items()) == {"file-good"}
    (reject,) = pipeline.rejects("rejected/odd.jsonl.errors.jsonl")
    assert (reject["row"], reject["code"]) == (2, "unknown_field")
    assert "'\\ud800x'" in reject["reason"] and "'\\x01x'" in reject["reason"]


def test_a_body_at_the_size_limit_is_cut_and_marked(pipeline: Pipeline) -> None:
    limit = pipeline.recorder.max_message_bytes(pipeline.dlq_url)
    others = {f"A{i}": {"DataType": "String", "StringValue": "v" * 10} for i in range(8)}
    pipeline.sqs.send_message(
        QueueUrl=pipeline.queue_url, MessageBody="x" * (limit - 200),
        MessageAttributes={**others, "TransactionType": {"DataType": "String",
                                                         "StringValue": "Purchase"}})
    pipeline.send(GOOD)

    assert pipeline.drain() == {"batchItemFailures": []}  # the recorder checks the sizes

    assert set(pipeline.items()) == {"good-1"}
    (dead,) = pipeline.dead_letters()
    assert attribute(dead, "BodyTruncated") == "true"
    assert attribute(dead, "TransactionType") == "Purchase"
    assert attribute(dead, "ErrorCode") and attribute(dead, "SourceMessageId")
    assert set(dead["Body"]) == {"x"} and len(dead["Body"]) < limit - 200
    assert message_bytes({"MessageBody": dead["Body"],
                          "MessageAttributes": dead["MessageAttributes"]}) <= limit


def _invalid_300_kb() -> str:
    """An invalid transaction of 300 KB: more than SQS's old 256 KiB, less than its 1 MiB."""
    body = json.dumps({"transaction_id": "big-1", "amount": -1,
                       "timestamp": "2024-08-09T12:34:56Z", "note": "n" * 300_000})
    assert 262_144 < len(body.encode()) < 1_048_576
    return body


def test_a_300_kb_invalid_message_is_dead_lettered_whole(pipeline: Pipeline) -> None:
    body = _invalid_300_kb()
    pipeline.sqs.send_message(
        QueueUrl=pipeline.queue_url, MessageBody=body,
        MessageAttributes={"TransactionType": {"DataType": "String", "StringValue": "Refund"}})

    assert pipeline.drain() == {"batchItemFailures": []}  # the recorder checks the sizes

    (dead,) = pipeline.dead_letters()
    assert dead["Body"] == body
    assert "BodyTruncated" not in dead["MessageAttributes"]
    assert attribute(dead, "TransactionType") == "Refund"
    assert attribute(dead, "ErrorCode") and attribute(dead, "ErrorReason")


def test_a_dlq_still_at_256_kib_gets_a_cut_copy_that_fits_it(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cut stays for what truly exceeds the DLQ's MaximumMessageSize."""
    pipeline.sqs.set_queue_attributes(QueueUrl=pipeline.dlq_url,
                                      Attributes={"MaximumMessageSize": "262144"})
    monkeypatch.setenv("DLQ_MAX_MESSAGE_BYTES", "262144")
    pipeline.runtime = pipeline.make_runtime()
    pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=_invalid_300_kb())

    assert pipeline.drain() == {"batchItemFailures": []}  # the recorder checks the sizes

    (dead,) = pipeline.dead_letters()
    assert attribute(dead, "BodyTruncated") == "true"
    assert message_bytes({"MessageBody": dead["Body"],
                          "MessageAttributes": dead["MessageAttributes"]}) <= 262_144


def test_transaction_type_survives_the_attribute_cap(pipeline: Pipeline) -> None:
    others = {f"A{i}": {"DataType": "String", "StringValue": "v"} for i in range(8)}
    pipeline.sqs.send_message(
        QueueUrl=pipeline.queue_url, MessageBody="not json",
        MessageAttributes={**others, "TransactionType": {"DataType": "String",
                                                         "StringValue": "Refund"}})

    assert pipeline.drain() == {"batchItemFailures": []}

    (dead,) = pipeline.dead_letters()
    assert attribute(dead, "TransactionType") == "Refund" and dead["Body"] == "not json"
    assert len(dead["MessageAttributes"]) == 10 and "BodyTruncated" not in dead[
        "MessageAttributes"]
