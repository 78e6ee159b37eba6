"""What the processor records so `pipelinectl trace` can follow a transaction back: the
origin on the stored item, the transaction id on DLQ and rejects lines, the file on alert
lines, one line per file with its counts - and no log line per row."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from .conftest import BUCKET, Pipeline

TXN = {"transaction_id": "tr-1", "amount": 1500, "timestamp": "2024-08-09T12:34:56Z"}


def log_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The processor's log records with their structured fields (Powertools' ``extra``)."""
    return [{**record.__dict__, "message": record.getMessage()}
            for record in caplog.records if record.name == "processor"]


def test_an_item_from_sns_names_its_messages_queue_time_and_invocation(
        pipeline: Pipeline) -> None:
    pipeline.publish(TXN, TransactionType="Purchase")
    (message,) = pipeline.receive()
    pipeline.invoke(pipeline.event([message]))
    item = pipeline.items()["tr-1"]
    notification = json.loads(message["Body"])
    assert item["message_id"] == message["MessageId"]
    assert item["sns_message_id"] == notification["MessageId"]
    assert item["request_id"] == "req-1"  # the Lambda context's aws_request_id
    sent_ms = int(message["Attributes"]["SentTimestamp"])
    assert item["queued_at"] == datetime.fromtimestamp(sent_ms / 1000, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    assert item["source"] == "sns"


def test_an_unchanged_redelivery_keeps_the_first_origin(pipeline: Pipeline) -> None:
    pipeline.send(TXN)
    first = pipeline.receive()
    pipeline.invoke(pipeline.event(first))
    stored = pipeline.items()["tr-1"]
    pipeline.send(TXN)  # a second message, same content
    pipeline.invoke(pipeline.event(pipeline.receive()))
    again = pipeline.items()["tr-1"]
    assert again["message_id"] == stored["message_id"] == first[0]["MessageId"]
    assert "sns_message_id" not in again  # it came straight from SQS


def test_dlq_line_names_the_transaction_and_rejects_line_its_id(
        pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="processor")
    pipeline.send({**TXN, "transaction_id": "bad-1", "amount": -3})
    pipeline.drain()
    (dead,) = [d for d in log_lines(caplog)
               if d["message"] == "message sent to the DLQ"]
    assert (dead["transaction_id"], dead["error_code"]) == ("bad-1", "amount_not_positive")
    body = ("transaction_id,amount,timestamp\nok-1,2000,2024-08-09T12:34:56Z\n"
            "bad-2,-1,2024-08-09T12:34:56Z\n")
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/t.csv", Body=body.encode())
    pipeline.send({"detail-type": "Object Created", "source": "aws.s3", "detail": {
        "bucket": {"name": BUCKET}, "object": {"key": "incoming/t.csv", "size": len(body)}}})
    pipeline.drain()
    (reject,) = pipeline.rejects("rejected/t.csv.errors.jsonl")
    assert (reject["transaction_id"], reject["row"]) == ("bad-2", 2)
    lines = log_lines(caplog)
    uri = f"s3://{BUCKET}/incoming/t.csv"
    (alert,) = [d for d in lines if d["message"] == "alert sent"]
    assert (alert["transaction_id"], alert["file"], alert["row"]) == ("ok-1", uri, "1")
    (done,) = [d for d in lines if d["message"] == "file processed"]
    assert {k: done[k] for k in ("source", "rows", "stored", "unchanged", "rejected",
                                 "alerts_sent", "rejects")} == {
        "source": uri, "rows": 2, "stored": 1, "unchanged": 0, "rejected": 1,
        "alerts_sent": 1, "rejects": "rejected/t.csv.errors.jsonl"}
    assert pipeline.items()["ok-1"]["request_id"] == "req-1"


def test_a_file_logs_per_file_not_per_row(pipeline: Pipeline,
                                          caplog: pytest.LogCaptureFixture) -> None:
    rows = "".join(f"row-{i},{10 + i},2024-08-09T12:34:56Z\n" for i in range(300))
    body = "transaction_id,amount,timestamp\n" + rows
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/many.csv", Body=body.encode())
    pipeline.send({"detail-type": "Object Created", "source": "aws.s3", "detail": {
        "bucket": {"name": BUCKET}, "object": {"key": "incoming/many.csv", "size": len(body)}}})
    caplog.set_level("INFO", logger="processor")
    pipeline.drain()
    assert len(pipeline.items()) == 300
    lines = [d["message"] for d in log_lines(caplog)]
    assert "file processed" in lines and len(lines) < 10, lines  # per file, not per row
