"""dlq list / redrive / purge against moto, with AWS's batch limits checked on the recorded
calls (moto accepts batches AWS would refuse)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelinectl.errors import PipelineError
from pipelinectl.operate import dlq
from pipelinectl.operate.targets import Targets
from pipelinectl.resources.base import Context

from .conftest import operations


def _dead_letter(targets: Targets, body: str, reason: str = "amount: must be > 0",
                 **extra: str) -> None:
    attributes = {"ErrorReason": reason, "ErrorCode": "amount_not_positive",
                  "SourceMessageId": "src-1", **extra}
    targets.client("sqs").send_message(
        QueueUrl=targets.dlq_url(), MessageBody=body,
        MessageAttributes={k: {"DataType": "String", "StringValue": v}
                           for k, v in attributes.items()})


def _depth(targets: Targets, url: str) -> int:
    return sum(targets.queue_depth(url))


def _batch_calls(ctx: Context, operation: str) -> list[dict[str, Any]]:
    return [c.params for c in ctx.factory.calls if c.operation == operation]


def test_list_shows_reasons_and_consumes_nothing(ctx: Context, targets: Targets) -> None:
    for i in range(13):
        _dead_letter(targets, f'{{"transaction_id": "t{i}", "amount": -1}}',
                     TransactionType="Refund")
    letters = dlq.peek(ctx)
    assert len(letters) == 13
    assert {letter.reason for letter in letters} == {"amount: must be > 0"}
    assert letters[0].code == "amount_not_positive"
    assert letters[0].attributes == {"TransactionType": "Refund"}
    assert all(len(p["Entries"]) <= 10
               for p in _batch_calls(ctx, "ChangeMessageVisibilityBatch"))
    # every message is visible again at once: nothing consumed, nothing hidden
    assert targets.queue_depth(targets.dlq_url()) == (13, 0)
    assert len(dlq.peek(ctx)) == 13


def test_list_respects_max_and_receive_limit(ctx: Context, targets: Targets) -> None:
    for i in range(25):
        _dead_letter(targets, f"poison {i}")
    assert len(dlq.peek(ctx, limit=12)) == 12
    receives = _batch_calls(ctx, "ReceiveMessage")
    assert receives and all(p["MaxNumberOfMessages"] <= 10 for p in receives)


def test_list_of_an_empty_dlq_makes_no_receive(ctx: Context) -> None:
    assert dlq.peek(ctx) == []
    assert "ReceiveMessage" not in operations(ctx)


def test_a_message_without_reason_says_it_exhausted_its_receives(ctx: Context,
                                                                  targets: Targets) -> None:
    targets.client("sqs").send_message(QueueUrl=targets.dlq_url(), MessageBody="x")
    (letter,) = dlq.peek(ctx)
    assert "maxReceiveCount" in letter.reason


def test_redrive_falls_back_to_batches_of_ten_when_move_tasks_are_unsupported(
        ctx: Context, targets: Targets) -> None:
    for i in range(23):
        _dead_letter(targets, f'{{"transaction_id": "t{i}"}}', TransactionType="Purchase")
    result = dlq.redrive(ctx)
    assert (result.method, result.moved, result.failed) == ("receive-send-delete", 23, 0)
    assert operations(ctx).count("StartMessageMoveTask") == 1  # tried first
    sends = _batch_calls(ctx, "SendMessageBatch")
    deletes = _batch_calls(ctx, "DeleteMessageBatch")
    assert [len(p["Entries"]) for p in sends] == [10, 10, 3]
    assert [len(p["Entries"]) for p in deletes] == [10, 10, 3]
    assert all(p["QueueUrl"] == targets.queue_url() for p in sends)
    assert all(p["QueueUrl"] == targets.dlq_url() for p in deletes)
    assert _depth(targets, targets.dlq_url()) == 0
    assert _depth(targets, targets.queue_url()) == 23
    moved = targets.client("sqs").receive_message(
        QueueUrl=targets.queue_url(), MessageAttributeNames=["All"])["Messages"][0]
    assert moved["MessageAttributes"]["TransactionType"]["StringValue"] == "Purchase"


def test_redrive_splits_batches_at_1_mib(ctx: Context, targets: Targets) -> None:
    big = "x" * (300 * 1024)  # more than SQS's old 256 KiB: the queues take 1 MiB now
    for _ in range(5):
        _dead_letter(targets, big)
    result = dlq.redrive(ctx)
    assert result.moved == 5
    sends = _batch_calls(ctx, "SendMessageBatch")
    sizes = [sum(len(e["MessageBody"]) for e in p["Entries"]) for p in sends]
    assert all(size <= dlq.BATCH_BYTES for size in sizes)
    assert [len(p["Entries"]) for p in sends] == [3, 2]


def test_redrive_max_moves_only_that_many(ctx: Context, targets: Targets) -> None:
    for i in range(7):
        _dead_letter(targets, f"m{i}")
    result = dlq.redrive(ctx, limit=4)
    assert result.moved == 4
    assert "StartMessageMoveTask" not in operations(ctx)  # a move task cannot be capped
    assert _depth(targets, targets.dlq_url()) == 3


def test_redrive_moves_only_what_was_there_when_it_started(ctx: Context,
                                                          targets: Targets) -> None:
    """A poison message the processor sends straight back must not make redrive loop."""
    for i in range(3):
        _dead_letter(targets, f"m{i}")
    sqs = targets.client("sqs")
    real_send = sqs.send_message_batch

    def send_and_bounce(**params: Any) -> Any:
        response = real_send(**params)
        for entry in params["Entries"]:
            _dead_letter(targets, entry["MessageBody"] + " again")
        return response

    sqs.send_message_batch = send_and_bounce
    try:
        result = dlq.redrive(ctx)
    finally:
        del sqs.send_message_batch
    assert result.moved == 3
    assert _depth(targets, targets.dlq_url()) == 3


def test_redrive_uses_the_move_task_where_the_endpoint_has_it(ctx: Context,
                                                             targets: Targets) -> None:
    _dead_letter(targets, "m")
    sqs = targets.client("sqs")
    started: list[dict[str, Any]] = []
    sqs.start_message_move_task = lambda **p: started.append(p) or {"TaskHandle": "h-1"}
    sqs.list_message_move_tasks = lambda **p: {"Results": [
        {"TaskHandle": "h-1", "Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 1}]}
    try:
        result = dlq.redrive(ctx, sleep=lambda _s: None)
    finally:
        del sqs.start_message_move_task, sqs.list_message_move_tasks
    assert (result.method, result.moved, result.task_handle) == ("move-task", 1, "h-1")
    assert started == [{"SourceArn": targets.dlq_arn, "DestinationArn": targets.queue_arn}]
    assert "SendMessageBatch" not in operations(ctx)


def test_a_failed_move_task_is_an_error_with_its_reason(ctx: Context,
                                                        targets: Targets) -> None:
    sqs = targets.client("sqs")
    sqs.start_message_move_task = lambda **p: {"TaskHandle": "h-2"}
    sqs.list_message_move_tasks = lambda **p: {"Results": [
        {"TaskHandle": "h-2", "Status": "FAILED", "FailureReason": "AccessDenied"}]}
    try:
        with pytest.raises(PipelineError, match="AccessDenied"):
            dlq.redrive(ctx, sleep=lambda _s: None)
    finally:
        del sqs.start_message_move_task, sqs.list_message_move_tasks


def test_purge_empties_the_dlq_and_a_second_purge_explains_the_60s_rule(
        ctx: Context, targets: Targets) -> None:
    for i in range(4):
        _dead_letter(targets, f"m{i}")
    assert dlq.purge(ctx) == 4
    assert _depth(targets, targets.dlq_url()) == 0
    assert operations(ctx).count("PurgeQueue") == 1
    with pytest.raises(PipelineError, match="one per 60 seconds"):
        dlq.purge(ctx)


def test_missing_dlq_says_run_up(aws: None) -> None:
    from pipelinectl import config as config_module
    from pipelinectl.clients import ClientFactory
    from pipelinectl.engine import make_context

    config = config_module.load({})
    with pytest.raises(PipelineError, match="run `pipelinectl up` first"):
        dlq.peek(make_context(config, ClientFactory(config)))


def test_send_batches_limits() -> None:
    entries = [{"Id": str(i), "MessageBody": "b"} for i in range(21)]
    assert [len(b) for b in dlq.send_batches(entries)] == [10, 10, 1]
    assert dlq.send_batches([]) == []
    big = [{"Id": str(i), "MessageBody": "x" * 400_000} for i in range(3)]
    assert [len(b) for b in dlq.send_batches(big)] == [2, 1]


def _client_error(status: int, code: str, message: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}},
                       "StartMessageMoveTask")


@pytest.mark.parametrize(("error", "unsupported"), [
    (NotImplementedError("The start_message_move_task action has not been implemented"), True),
    (_client_error(501, "501", "Not Implemented"), True),
    (_client_error(400, "UnsupportedOperation", "not supported"), True),
    # AWS's transient failures: retried by botocore, then an error, never another method
    (_client_error(500, "InternalError", "not implemented yet, try again"), False),
    (_client_error(503, "ServiceUnavailable", "Service Unavailable"), False),
    (RuntimeError("not implemented"), False),
])
def test_unsupported_classification(error: Exception, unsupported: bool) -> None:
    assert dlq._unsupported(error) is unsupported


def _answer_move_task_with(ctx: Context, statuses: list[int],
                           monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """StartMessageMoveTask answers these HTTP statuses in turn (SQS's JSON error for a
    5xx, a task handle for 200), as AWS's endpoint would; returns what was answered."""
    from io import BytesIO

    from botocore.awsrequest import AWSResponse

    class Raw(BytesIO):
        def stream(self, **_: Any) -> Any:
            yield self.read()

    def http(status: int, body: dict[str, Any], headers: dict[str, str]) -> AWSResponse:
        return AWSResponse("https://sqs.us-east-1.amazonaws.com/", status,
                           {"x-amzn-RequestId": "injected", **headers},
                           Raw(json.dumps(body).encode()))

    answered: list[int] = []
    # moto's own before-send handler runs too and has no such action: give it one, whose
    # answer is ignored since ours comes first.
    from moto.sqs.responses import SQSResponse

    monkeypatch.setattr(SQSResponse, "start_message_move_task", lambda self: "{}",
                        raising=False)

    def answer(**_: Any) -> Any:
        status = statuses[min(len(answered), len(statuses) - 1)]
        answered.append(status)
        if status == 200:
            return http(200, {"TaskHandle": "h-3"},
                        {"Content-Type": "application/x-amz-json-1.0"})
        return http(status, {"__type": "com.amazonaws.sqs#InternalError",
                             "message": "We encountered an internal error."},
                    {"x-amzn-query-error": "InternalError;Receiver",
                     "Content-Type": "application/x-amz-json-1.0"})

    ctx.client("sqs").meta.events.register_first("before-send.sqs.StartMessageMoveTask",
                                                 answer)
    return answered


def test_a_transient_500_on_start_message_move_task_is_retried_not_a_fallback(
        ctx: Context, targets: Targets, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.endpoint

    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda _s: None)  # retry backoff
    _dead_letter(targets, "m")
    answered = _answer_move_task_with(ctx, [500, 200], monkeypatch)
    sqs = targets.client("sqs")
    sqs.list_message_move_tasks = lambda **p: {"Results": [
        {"TaskHandle": "h-3", "Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 1}]}
    try:
        result = dlq.redrive(ctx, sleep=lambda _s: None)
    finally:
        del sqs.list_message_move_tasks
    assert answered == [500, 200]
    assert (result.method, result.task_handle) == ("move-task", "h-3")
    assert "ReceiveMessage" not in operations(ctx) and "SendMessageBatch" not in operations(ctx)


def test_a_persistent_500_fails_the_redrive_and_moves_nothing_by_hand(
        ctx: Context, targets: Targets, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.endpoint

    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda _s: None)
    _dead_letter(targets, "m")
    answered = _answer_move_task_with(ctx, [500], monkeypatch)
    with pytest.raises(PipelineError):
        dlq.redrive(ctx, sleep=lambda _s: None)
    # clients.py: retries max_attempts=8, which counts retries (Boto3 guide, "Retries";
    # total_max_attempts would count the first request): 1 + 8 attempts
    assert len(answered) == 9
    assert "SendMessageBatch" not in operations(ctx)
    assert targets.queue_depth(targets.dlq_url()) == (1, 0)


def test_an_endpoint_that_says_it_has_no_move_tasks_is_not_asked(
        ctx: Context, targets: Targets) -> None:
    ctx.factory._info["endpoint_info"] = {"service": "pipelinectl-local",
                                          dlq.MOVE_TASKS_INFO_KEY: False}
    _dead_letter(targets, "m")
    result = dlq.redrive(ctx)
    assert (result.method, result.moved) == ("receive-send-delete", 1)
    assert "StartMessageMoveTask" not in operations(ctx)


def test_body_preview_unwraps_sns_and_clips() -> None:
    envelope = '{"Type": "Notification", "TopicArn": "arn", "Message": "{\\"a\\": 1}"}'
    assert dlq.body_preview(envelope) == '{"a": 1}'
    assert dlq.body_preview("y" * 200, width=10) == "y" * 9 + "…"


S3_EVENT = {"version": "0", "id": "e-1", "detail-type": "Object Created", "source": "aws.s3",
            "account": "123456789012", "region": "us-east-1",
            "detail": {"bucket": {"name": "landing"}, "object": {"key": "incoming/a.csv"}}}
RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/ecommerce-object-created"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ecommerce-ingest"


def _eventbridge_dead_letter(targets: Targets) -> None:
    """What EventBridge sends to a target's DLQ: the event, and its documented attributes
    (EventBridge user guide, "Using dead-letter queues to process undelivered events")."""
    attributes = {"RULE_ARN": RULE_ARN, "TARGET_ARN": TOPIC_ARN, "ERROR_CODE": "NO_PERMISSIONS",
                  "ERROR_MESSAGE": "Not authorized to publish to the topic",
                  "RETRY_ATTEMPTS": "0"}
    targets.client("sqs").send_message(
        QueueUrl=targets.dlq_url(), MessageBody=json.dumps(S3_EVENT),
        MessageAttributes={k: {"DataType": "String", "StringValue": v}
                           for k, v in attributes.items()})


def test_list_shows_an_event_eventbridge_could_not_deliver_with_its_error(
        ctx: Context, targets: Targets) -> None:
    _eventbridge_dead_letter(targets)
    _dead_letter(targets, '{"transaction_id": "t1", "amount": -1}')
    by_origin = {letter.origin: letter for letter in dlq.peek(ctx)}
    assert set(by_origin) == {"eventbridge", "processor"}
    letter = by_origin["eventbridge"]
    assert letter.code == "NO_PERMISSIONS"
    assert letter.reason == ("EventBridge rule ecommerce-object-created could not deliver to "
                             "ecommerce-ingest: NO_PERMISSIONS: Not authorized to publish to "
                             "the topic")
    assert letter.eventbridge == {"rule": RULE_ARN, "target": TOPIC_ARN,
                                  "error_code": "NO_PERMISSIONS", "retry_attempts": "0",
                                  "error_message": "Not authorized to publish to the topic"}
    assert letter.attributes == {}
    assert dlq.body_preview(letter.body) == "Object Created: s3://landing/incoming/a.csv"
    assert by_origin["processor"].eventbridge == {}


def test_redrive_hands_the_event_back_without_eventbridge_failure_attributes(
        ctx: Context, targets: Targets) -> None:
    _eventbridge_dead_letter(targets)
    assert dlq.redrive(ctx).moved == 1
    [moved] = targets.client("sqs").receive_message(
        QueueUrl=targets.queue_url(), MessageAttributeNames=["All"])["Messages"]
    assert json.loads(moved["Body"]) == S3_EVENT  # the processor unwraps this event
    assert "MessageAttributes" not in moved


def test_redrive_and_the_processor_count_message_bytes_as_sqs_does() -> None:
    """SQS counts a message's size as its body plus, per attribute, name + data type + value
    (SQS API Reference, MessageAttributeValue: "All parts of the message attribute, including
    Name, Type, and Value, are part of the message size restriction"); the two batchers share
    no code (lambda_src ships alone), so both are checked on the same entries."""
    from lambda_src.rejects import entry_bytes

    entries = [
        {"Id": "0", "MessageBody": "héllo"},  # 6 bytes in UTF-8
        {"Id": "1", "MessageBody": "x", "MessageAttributes": {
            "ErrorCode": {"DataType": "String", "StringValue": "bad"},  # 9 + 6 + 3
            "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}},  # 4 + 6 + 2
        {"Id": "2", "MessageBody": "z", "MessageAttributes": {
            "Ü": {"DataType": "String", "StringValue": "v"}}},  # 2 + 6 + 1
    ]
    expected = [6, 1 + 18 + 12, 1 + 9]
    assert [dlq._entry_bytes(e) for e in entries] == expected
    assert [entry_bytes(e) for e in entries] == expected
