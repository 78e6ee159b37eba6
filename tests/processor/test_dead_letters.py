"""Dead-lettering of invalid messages: attributes of every kind, sizes, odd characters."""

from __future__ import annotations

from typing import Any

import pytest

from lambda_src import batch as batch_module

from .conftest import Pipeline

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
