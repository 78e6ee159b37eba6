"""The dead-letter queue: look at it without consuming it, move it back, or empty it.

Why each choice:
- `list` receives with a visibility timeout long enough to page through the queue without
  seeing a message twice, then hands every message straight back (ChangeMessageVisibility
  to 0), so listing never delays a redrive or hides the DLQ from its alarm for long.
- `redrive` prefers SQS's own StartMessageMoveTask (server-side, keeps attributes). Endpoints
  that lack it get receive -> SendMessageBatch -> DeleteMessageBatch instead: a pipelinectl
  local AWS says so in its info document (`sqs_message_move_tasks: false`), another endpoint
  by answering that the action is not implemented (HTTP 501, UnsupportedOperation, ...).
  A 500 or 503 is a transient failure (InternalFailure 500, ServiceUnavailable 503: SQS API
  Reference, "Common Errors"; InvalidAction 400 there is "the action requested is
  invalid"): botocore's standard mode retries it (Boto3 guide, "Retries": HTTP 500, 502,
  503, 504) and, if it persists, the command fails; it never silently turns into another
  method. The fallback moves at most 10 entries and 1 MiB per batch call
  (AWS's limits, botocore's SQS model; moto does not enforce the count). Only messages that
  reached the queue are deleted from the DLQ.
  A redrive moves at most the messages present when it started, so a poison message the
  processor sends straight back cannot make it loop.
- Two writers share the DLQ: the processor (ErrorCode, ErrorReason, ...) and EventBridge,
  for events it could not deliver to the ingest topic. EventBridge's messages carry the
  event itself and the attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE,
  EXHAUSTED_RETRY_CONDITION and RETRY_ATTEMPTS (EventBridge user guide, "Using dead-letter
  queues to process undelivered events"); `list` shows them as the reason, and `redrive`
  hands the event to the processor, which unwraps EventBridge S3 events.
- `purge` is PurgeQueue (one per 60 s per queue, an AWS rule we explain, not hide).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pipelinectl.clients import Client
from pipelinectl.engine import aws_errors
from pipelinectl.errors import PipelineError
from pipelinectl.operate.targets import Targets
from pipelinectl.resources.base import Context, error_code

BATCH_LIMIT = 10  # ReceiveMessage, SendMessageBatch, DeleteMessageBatch, ChangeVisibilityBatch
BATCH_BYTES = 1_048_576  # SendMessageBatch payload limit, all entries together
PEEK_HIDE_SECONDS = 30  # long enough to page; every message is released right after
MOVE_HIDE_SECONDS = 60  # while a message is between the DLQ and the queue
MOVE_TASK_WAIT_SECONDS = 120
ERROR_ATTRIBUTES = ("ErrorCode", "ErrorReason", "SourceMessageId", "Pipeline")
#: EventBridge's dead-letter attributes, and the names `list` gives them.
EVENTBRIDGE_ATTRIBUTES = {"RULE_ARN": "rule", "TARGET_ARN": "target",
                          "ERROR_CODE": "error_code", "ERROR_MESSAGE": "error_message",
                          "EXHAUSTED_RETRY_CONDITION": "exhausted_retry_condition",
                          "RETRY_ATTEMPTS": "retry_attempts"}
#: Answers that mean "this endpoint has no such action" (HTTP 501 Not Implemented, RFC 9110
#: 15.6.2, which botocore does not retry), never a transient 5xx.
UNSUPPORTED_CODES = {"UnsupportedOperation", "InvalidAction", "NotImplemented",
                     "NotImplementedException", "UnknownOperationException", "501"}
#: The local AWS's info document (pipelinectl.localaws) says whether it has move tasks.
MOVE_TASKS_INFO_KEY = "sqs_message_move_tasks"


@dataclass(frozen=True)
class DeadLetter:
    """One message in the DLQ, with the reason its writer attached (if it did).

    ``origin`` says who put it there: ``processor`` (an invalid message), ``eventbridge``
    (an event the rule could not deliver; ``eventbridge`` holds its attributes) or
    ``redrive policy`` (a message that failed processing maxReceiveCount times).
    """

    message_id: str
    body: str
    reason: str
    code: str
    source_message_id: str
    receive_count: int
    sent_at: str
    attributes: dict[str, str]
    origin: str = "processor"
    eventbridge: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RedriveResult:
    method: Literal["move-task", "receive-send-delete"]
    source: str
    destination: str
    moved: int
    failed: int
    task_handle: str | None = None
    status: str = "COMPLETED"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- list ---------------------------------------------------------------------------------


def peek(ctx: Context, limit: int = 50) -> list[DeadLetter]:
    """Up to `limit` DLQ messages; every one is visible again when this returns."""
    targets = Targets(ctx)
    with aws_errors(ctx):
        url = targets.dlq_url()
        visible, _ = targets.queue_depth(url)
        if visible == 0:
            return []
        sqs = targets.client("sqs")
        found: dict[str, dict[str, Any]] = {}
        try:
            for message in _receive_up_to(sqs, url, min(visible, limit), PEEK_HIDE_SECONDS):
                found.setdefault(message["MessageId"], message)
        finally:
            _release(sqs, url, [m["ReceiptHandle"] for m in found.values()])
    return [_dead_letter(m) for m in found.values()]


def find(ctx: Context, needle: str, limit: int = 100) -> DeadLetter | None:
    """The first DLQ message whose body mentions `needle` (a transaction id)."""
    forms = encodings(needle)
    return next((letter for letter in peek(ctx, limit)
                 if any(form in letter.body for form in forms)), None)


def encodings(text: str) -> set[str]:
    """`text` as it can appear in a body: raw, JSON-escaped once (a transaction message) or
    twice (inside an SNS notification's Message), with non-ASCII escaped or not. A plain
    substring test missed ids with quotes, backslashes, control or non-ASCII characters."""
    forms = {text}
    for _ in range(2):
        forms |= {json.dumps(form, ensure_ascii=ascii_only)[1:-1]
                  for form in list(forms) for ascii_only in (True, False)}
    return forms


def _receive_up_to(sqs: Client, url: str, wanted: int,
                   hide_seconds: int) -> Iterator[dict[str, Any]]:
    """Receive until `wanted` messages came or SQS has nothing more to give.

    Short polling samples a subset of SQS's servers and may come back empty while messages
    exist, so an empty answer is retried with a one-second long poll before giving up.
    """
    got, empties = 0, 0
    while got < wanted and empties < 2:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(BATCH_LIMIT, wanted - got),
            VisibilityTimeout=hide_seconds, WaitTimeSeconds=1 if empties else 0,
            AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        empties = 0 if messages else empties + 1
        got += len(messages)
        yield from messages


def _release(sqs: Client, url: str, handles: Sequence[str]) -> None:
    """Make received messages visible again at once (the 'do not consume' half of peek)."""
    for start in range(0, len(handles), BATCH_LIMIT):
        chunk = handles[start:start + BATCH_LIMIT]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(chunk)])


def _dead_letter(message: dict[str, Any]) -> DeadLetter:
    attrs = {name: str(value.get("StringValue", ""))
             for name, value in message.get("MessageAttributes", {}).items()}
    system = message.get("Attributes", {})
    sent_ms = int(system.get("SentTimestamp", 0))
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent_ms / 1000)) if sent_ms else ""
    delivery = {name: attrs[key] for key, name in EVENTBRIDGE_ATTRIBUTES.items()
                if key in attrs}
    ours: Iterable[str]
    if delivery and "ErrorReason" not in attrs:  # an event EventBridge could not deliver
        reason = _eventbridge_reason(delivery)
        code = delivery.get("error_code", "")
        origin = "eventbridge"
        ours = EVENTBRIDGE_ATTRIBUTES
    else:
        reason = attrs.get("ErrorReason") or ("no reason attached: it failed processing "
                                              "maxReceiveCount times")
        code = attrs.get("ErrorCode", "")
        origin = "processor" if "ErrorReason" in attrs else "redrive policy"
        ours = ERROR_ATTRIBUTES
    return DeadLetter(
        message_id=str(message["MessageId"]), body=str(message.get("Body", "")),
        reason=reason, code=code, source_message_id=attrs.get("SourceMessageId", ""),
        receive_count=int(system.get("ApproximateReceiveCount", 0)), sent_at=sent_at,
        attributes={k: v for k, v in attrs.items() if k not in ours},
        origin=origin, eventbridge=delivery)


def _eventbridge_reason(delivery: dict[str, str]) -> str:
    """One line: who failed to deliver to what, why, and after how many retries."""
    rule = delivery.get("rule", "?").rsplit("/", 1)[-1]
    target = delivery.get("target", "?").rsplit(":", 1)[-1]
    why = ": ".join(v for v in (delivery.get("error_code"), delivery.get("error_message")) if v)
    retries = delivery.get("retry_attempts")
    after = f" after {retries} retries" if retries not in (None, "", "0") else ""
    exhausted = delivery.get("exhausted_retry_condition")
    until = f" ({exhausted} reached)" if exhausted else ""
    return (f"EventBridge rule {rule} could not deliver to {target}{after}{until}: "
            f"{why or 'no error given'}")


# -- redrive ------------------------------------------------------------------------------


def redrive(ctx: Context, *, limit: int | None = None,
            sleep: Callable[[float], None] = time.sleep) -> RedriveResult:
    """Move DLQ messages back to the queue; StartMessageMoveTask when the endpoint has it."""
    targets = Targets(ctx)
    names = targets.names
    with aws_errors(ctx):
        dlq_url, queue_url = targets.dlq_url(), targets.queue_url()
        if limit is None:
            handle = _start_move_task(targets)
            if handle is not None:
                moved, status = _wait_for_task(targets, handle, sleep)
                return RedriveResult("move-task", names.dlq, names.queue, moved, 0, handle,
                                     status)
        visible, _ = targets.queue_depth(dlq_url)
        moved, failed = move_by_hand(targets.client("sqs"), dlq_url, queue_url,
                                     visible if limit is None else min(visible, limit))
    return RedriveResult("receive-send-delete", names.dlq, names.queue, moved, failed)


def _start_move_task(targets: Targets) -> str | None:
    """The task handle, or None when this endpoint does not implement message move tasks."""
    info = targets.ctx.factory.endpoint_info()
    if info is not None and info.get(MOVE_TASKS_INFO_KEY) is False:
        return None
    sqs = targets.client("sqs")
    try:
        response = sqs.start_message_move_task(SourceArn=targets.dlq_arn,
                                               DestinationArn=targets.queue_arn)
    except Exception as exc:
        if _unsupported(exc):
            return None
        raise
    return str(response["TaskHandle"])


def _unsupported(exc: Exception) -> bool:
    """Only an answer that the action does not exist here (moto in-process raises
    NotImplementedError); an error's wording or a transient 5xx decides nothing."""
    return isinstance(exc, NotImplementedError) or error_code(exc) in UNSUPPORTED_CODES


def _wait_for_task(targets: Targets, handle: str,
                   sleep: Callable[[float], None]) -> tuple[int, str]:
    """Poll ListMessageMoveTasks until our task leaves RUNNING (or we stop waiting)."""
    sqs = targets.client("sqs")
    deadline = time.monotonic() + MOVE_TASK_WAIT_SECONDS
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        tasks = sqs.list_message_move_tasks(SourceArn=targets.dlq_arn,
                                            MaxResults=10).get("Results", [])
        task = next((t for t in tasks if t.get("TaskHandle") == handle), task)
        if task.get("Status") not in (None, "RUNNING", "CANCELLING"):
            break
        sleep(1.0)
    status = str(task.get("Status", "RUNNING"))
    if status == "FAILED":
        raise PipelineError(f"The message move task failed: {task.get('FailureReason')}; "
                            "check the queues' policies and re-run `pipelinectl dlq redrive`.")
    return int(task.get("ApproximateNumberOfMessagesMoved", 0)), status


def move_by_hand(sqs: Client, dlq_url: str, queue_url: str, wanted: int) -> tuple[int, int]:
    """Receive -> SendMessageBatch -> DeleteMessageBatch of `wanted` messages; returns
    (moved, failed).

    The count is fixed up front (by the caller, from the DLQ's depth): messages that come
    back to the DLQ while we work (the processor rejecting them again) wait for the next
    redrive instead of looping here.
    """
    moved = failed = 0
    pending: list[dict[str, Any]] = []
    for message in _receive_up_to(sqs, dlq_url, wanted, MOVE_HIDE_SECONDS):
        pending.append(message)
        if len(pending) == BATCH_LIMIT:
            ok, bad = _move_batch(sqs, dlq_url, queue_url, pending)
            moved, failed, pending = moved + ok, failed + bad, []
    if pending:
        ok, bad = _move_batch(sqs, dlq_url, queue_url, pending)
        moved, failed = moved + ok, failed + bad
    return moved, failed


def _move_batch(sqs: Client, dlq_url: str, queue_url: str,
                messages: Sequence[dict[str, Any]]) -> tuple[int, int]:
    moved = failed = 0
    for chunk in send_batches([_send_entry(i, m) for i, m in enumerate(messages)]):
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=chunk)
        sent = {entry["Id"] for entry in response.get("Successful", [])}
        failed += len(chunk) - len(sent)
        if sent:
            deleted = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=[
                {"Id": entry["Id"], "ReceiptHandle": messages[int(entry["Id"])]["ReceiptHandle"]}
                for entry in chunk if entry["Id"] in sent])
            moved += len(deleted.get("Successful", []))
    return moved, failed


def _send_entry(index: int, message: dict[str, Any]) -> dict[str, Any]:
    """The message as it was sent: body and attributes (TransactionType must survive).
    EventBridge's failure attributes stay behind: they describe a delivery that is over."""
    attributes: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        if name in EVENTBRIDGE_ATTRIBUTES:
            continue
        kept = {k: value[k] for k in ("DataType", "StringValue", "BinaryValue") if k in value}
        attributes[name] = kept
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
    if attributes:
        entry["MessageAttributes"] = attributes
    return entry


def send_batches(entries: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split into SendMessageBatch calls: at most 10 entries and 256 KiB each."""
    batches: list[list[dict[str, Any]]] = []
    size = 0
    for entry in entries:
        entry_size = _entry_bytes(entry)
        if not batches or len(batches[-1]) >= BATCH_LIMIT or size + entry_size > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(entry)
        size += entry_size
    return batches


def _entry_bytes(entry: dict[str, Any]) -> int:
    """What SQS counts: the body plus each attribute's name, type and value."""
    total = len(entry["MessageBody"].encode())
    for name, value in entry.get("MessageAttributes", {}).items():
        payload = value.get("StringValue", "") or value.get("BinaryValue", b"")
        raw = payload.encode() if isinstance(payload, str) else bytes(payload)
        total += len(name.encode()) + len(str(value.get("DataType", "")).encode()) + len(raw)
    return total


# -- purge --------------------------------------------------------------------------------


def purge(ctx: Context) -> int:
    """Empty the DLQ; returns how many messages it held (approximately, as SQS counts)."""
    targets = Targets(ctx)
    with aws_errors(ctx):
        url = targets.dlq_url()
        visible, in_flight = targets.queue_depth(url)
        sqs = targets.client("sqs")
        try:
            sqs.purge_queue(QueueUrl=url)
        except Exception as exc:
            if error_code(exc) in {"AWS.SimpleQueueService.PurgeQueueInProgress",
                                   "PurgeQueueInProgress"}:
                raise PipelineError(
                    f"A purge of {targets.names.dlq} is already in progress (SQS allows one "
                    "per 60 seconds); wait a minute, then check `pipelinectl dlq list`."
                ) from exc
            raise
    return visible + in_flight


def body_preview(body: str, width: int = 80) -> str:
    """The body on one line (SNS envelopes shown by their Message, S3 events by their
    object), clipped for a table."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # a deeply nested body is shown as text
        doc = None
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        body = str(doc["Message"])
    elif isinstance(doc, dict) and doc.get("source") == "aws.s3" and isinstance(
            doc.get("detail"), dict):
        detail = doc["detail"]
        bucket = (detail.get("bucket") or {}).get("name", "?")
        key = (detail.get("object") or {}).get("key", "?")
        body = f"{doc.get('detail-type', 'S3 event')}: s3://{bucket}/{key}"
    flat = " ".join(body.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"
