"""send-test: what it publishes on each path, and its waiting and diagnosis logic.

moto runs no processor in-process, so the fake clock's sleep hook plays it: it writes the
item (or a DLQ message) after a few polls, exactly as the processor would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest

from pipelinectl.operate import sendtest
from pipelinectl.operate.targets import Targets
from pipelinectl.resources.base import Context

from .conftest import FakeTime, operations, put_item


def _txn(amount: str, txn_id: str = "t-1") -> sendtest.TestTransaction:
    return sendtest.TestTransaction.new(Decimal(amount), txn_id)


def _process_after(ctx: Context, polls: int, txn_id: str = "t-1", *, alert: bool,
                   amount: str = "1500", alert_after: int | None = None) -> Callable[[int], None]:
    """A sleep hook that stores the item on poll `polls` (and alerts on `alert_after`)."""

    def hook(sleeps: int) -> None:
        if sleeps == polls:
            put_item(ctx, transaction_id=txn_id, amount=Decimal(amount), source="sns",
                     processed_at="2024-08-09T12:00:00.000Z",
                     **({"alerted_at": "2024-08-09T12:00:00.100Z"}
                        if alert and alert_after is None else {}))
        if alert_after is not None and sleeps == alert_after:
            put_item(ctx, transaction_id=txn_id, amount=Decimal(amount), source="sns",
                     processed_at="2024-08-09T12:00:00.000Z",
                     alerted_at="2024-08-09T12:00:01.000Z")

    return hook


def _send(ctx: Context, fake_time: FakeTime, txn: sendtest.TestTransaction,
          via: sendtest.Via = "sns", timeout: float = 10) -> sendtest.SendTestResult:
    return sendtest.send_test(ctx, txn, via, timeout=timeout, clock=fake_time.clock,
                              sleep=fake_time.sleep)


def test_over_threshold_waits_until_stored_and_alerted(ctx: Context,
                                                       fake_time: FakeTime) -> None:
    fake_time.on_sleep.append(_process_after(ctx, 3, alert=False, alert_after=6))
    result = _send(ctx, fake_time, _txn("1500"))
    assert result.ok, result.problem
    assert (result.stored, result.alerted, result.outcome) == (True, True, "stored and alerted")
    assert result.stored_seconds is not None and result.alerted_seconds is not None
    assert 0 < result.stored_seconds < result.alerted_seconds == result.latency_seconds
    assert result.path[0] == f"SNS {ctx.names.ingest_topic}"
    assert result.path[-1] == f"SNS {ctx.names.alerts_topic} (alert)"
    assert result.source == "sns"
    publish = next(c.params for c in ctx.factory.calls if c.operation == "Publish")
    assert publish["MessageAttributes"]["TransactionType"]["StringValue"] == "Purchase"
    assert json.loads(publish["Message"])["transaction_id"] == "t-1"


def test_below_threshold_needs_no_alert(ctx: Context, fake_time: FakeTime) -> None:
    fake_time.on_sleep.append(_process_after(ctx, 2, alert=False, amount="100"))
    result = _send(ctx, fake_time, _txn("100"))
    assert result.ok
    assert (result.expect_alert, result.alerted) == (False, False)
    assert result.latency_seconds == result.stored_seconds
    assert not any("alerts" in step for step in result.path)


def test_stored_but_never_alerted_says_so(ctx: Context, fake_time: FakeTime) -> None:
    fake_time.on_sleep.append(_process_after(ctx, 2, alert=False))
    result = _send(ctx, fake_time, _txn("1500"), timeout=5)
    assert not result.ok
    assert result.outcome == "stored, no alert yet"
    assert "was stored, no alert yet" in str(result.problem)
    assert fake_time.now - 1000 >= 5  # it waited the whole timeout for the alert


def test_a_message_in_the_dlq_is_reported_with_its_reason_before_the_deadline(
        ctx: Context, targets: Targets, fake_time: FakeTime) -> None:
    def to_dlq(sleeps: int) -> None:
        if sleeps == 4:
            targets.client("sqs").send_message(
                QueueUrl=targets.dlq_url(), MessageBody='{"transaction_id": "t-1"}',
                MessageAttributes={"ErrorReason": {"DataType": "String",
                                                   "StringValue": "amount: too many decimals"}})

    fake_time.on_sleep.append(to_dlq)
    result = _send(ctx, fake_time, _txn("1500"), timeout=60)
    assert result.outcome == "in the DLQ"
    assert result.problem == ("Transaction t-1 is in the DLQ: amount: too many decimals; see "
                              "`pipelinectl dlq list`.")
    assert fake_time.now - 1000 < 10  # found early, not at the 60 s deadline


def test_nothing_arrived_asks_whether_local_runs_and_the_mapping_is_enabled(
        ctx: Context, fake_time: FakeTime) -> None:
    ctx.config = replace(ctx.config, local=True)
    result = _send(ctx, fake_time, _txn("1500"), via="sqs", timeout=3)
    assert result.outcome == "not stored"
    problem = str(result.problem)
    assert problem.startswith("Nothing arrived for transaction t-1 after 3s")
    assert "is `pipelinectl local` running / is the mapping enabled?" in problem
    assert "no event source mapping" in problem  # this fixture never subscribed
    assert "1 waiting" in problem  # sent to the queue; nobody consumed it


def test_nothing_arrived_on_aws_points_at_status(ctx: Context, fake_time: FakeTime) -> None:
    result = _send(ctx, fake_time, _txn("20"), timeout=2)
    assert "is the event source mapping enabled?" in str(result.problem)
    assert "pipelinectl local" not in str(result.problem)


def test_polling_is_cheap(ctx: Context, fake_time: FakeTime) -> None:
    """GetItem per poll with backoff to 0.25 s; the DLQ depth about once a second."""
    _send(ctx, fake_time, _txn("20"), timeout=10)
    get_items = operations(ctx, "dynamodb").count("GetItem")
    assert get_items < 60
    assert operations(ctx).count("ReceiveMessage") == 0  # DLQ never grew: never peeked


def test_a_reused_id_counts_only_a_new_write(ctx: Context, fake_time: FakeTime) -> None:
    put_item(ctx, transaction_id="t-1", amount=Decimal("5"), source="sqs",
             processed_at="2020-01-01T00:00:00.000Z")
    fake_time.on_sleep.append(_process_after(ctx, 5, alert=False, amount="20"))
    result = _send(ctx, fake_time, _txn("20"))
    assert result.ok
    assert result.stored_seconds is not None and result.stored_seconds > 0.1


def test_via_sqs_sends_to_the_queue_with_the_type_attribute(ctx: Context, targets: Targets,
                                                           fake_time: FakeTime) -> None:
    txn = sendtest.TestTransaction.new(Decimal("1500.10"), "t-9", "Refund")
    result = sendtest.send_test(ctx, txn, "sqs", wait=False)
    assert (result.waited, result.outcome) == (False, "sent (not waiting)")
    message = targets.client("sqs").receive_message(
        QueueUrl=targets.queue_url(), MessageAttributeNames=["All"])["Messages"][0]
    assert message["MessageAttributes"]["TransactionType"]["StringValue"] == "Refund"
    assert '"amount": 1500.10' in message["Body"]  # exact, never a float
    assert result.path[0] == f"SQS {ctx.names.queue}"


def test_via_s3_drops_one_jsonl_row_under_incoming(ctx: Context, targets: Targets) -> None:
    txn = sendtest.TestTransaction.new(Decimal("7"), "t-3", "Purchase")
    result = sendtest.send_test(ctx, txn, "s3", wait=False)
    key = "incoming/send-test/t-3.jsonl"
    assert result.reference == f"s3://{ctx.names.bucket}/{key}"
    body = targets.client("s3").get_object(Bucket=ctx.names.bucket, Key=key)["Body"].read()
    (line,) = body.decode().splitlines()
    assert json.loads(line)["type"] == "Purchase"
    assert result.path[1] == f"EventBridge {ctx.names.rule}"


def test_via_s3_reports_a_rejected_row(ctx: Context, targets: Targets,
                                       fake_time: FakeTime) -> None:
    def reject(sleeps: int) -> None:
        if sleeps == 2:
            targets.client("s3").put_object(
                Bucket=ctx.names.bucket, Key="rejected/send-test/t-4.jsonl.errors.jsonl",
                Body=b'{"row": 1, "reason": "amount: must be greater than 0"}\n')

    fake_time.on_sleep.append(reject)
    result = _send(ctx, fake_time, _txn("3", "t-4"), via="s3", timeout=2)
    assert "rejected by the file reader: amount: must be greater than 0" in str(result.problem)


def test_result_json_has_stable_keys(ctx: Context, fake_time: FakeTime) -> None:
    fake_time.on_sleep.append(_process_after(ctx, 1, alert=True))
    data = _send(ctx, fake_time, _txn("1500")).as_dict()
    assert sorted(data) == sorted([
        "transaction_id", "amount", "via", "reference", "path", "threshold", "expect_alert",
        "waited", "stored", "alerted", "stored_seconds", "alerted_seconds", "latency_seconds",
        "source", "outcome", "ok", "problem"])
    assert data["amount"] == "1500" and data["threshold"] == "1000"


@pytest.mark.parametrize("amount", ["1500", "0.01", "1000000"])
def test_body_amount_is_an_exact_json_number(amount: str) -> None:
    body = json.loads(_txn(amount).json(with_type=False), parse_float=Decimal)
    assert body["amount"] == Decimal(amount)
    assert "type" not in body
