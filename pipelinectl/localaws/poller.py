"""Drives SQS event source mappings the way the Lambda service does.

For each enabled mapping, several batches at once (scaling.py decides how many): receive up
to BatchSize messages (waiting up to MaximumBatchingWindowInSeconds to fill the batch), invoke
the function with the SQS event, and delete what succeeded. With ``ReportBatchItemFailures``
only the records not listed in ``batchItemFailures`` are deleted; on a function error, a
timeout or an invalid partial batch response nothing is deleted, so the messages come back
after the visibility timeout and moto's own receive counting moves them to the dead-letter
queue after maxReceiveCount receives.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pipelinectl.localaws import rolecalls
from pipelinectl.localaws._aws import Clients, arn_parts, regional_backends
from pipelinectl.localaws.pool import Runner
from pipelinectl.localaws.runner import FunctionUnavailable, Invocation, read_function
from pipelinectl.localaws.scaling import Scaler, hold_throttled

log = logging.getLogger(__name__)

_RECEIVE_MAX = 10  # ReceiveMessage limit
#: What the execution role needs for an SQS mapping (Lambda Developer Guide, SQS execution role).
MAPPING_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


@dataclass(frozen=True)
class Mapping:
    uuid: str
    function_arn: str
    queue_arn: str
    batch_size: int
    window: float
    report_failures: bool
    maximum_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency

    @property
    def queue_name(self) -> str:
        return arn_parts(self.queue_arn)[3]

    @property
    def function_name(self) -> str:
        return arn_parts(self.function_arn)[3].split(":")[-1]


def enabled_sqs_mappings() -> dict[str, Mapping]:
    """Every enabled SQS event source mapping moto holds, by UUID."""
    from moto.awslambda.models import lambda_backends
    from moto.awslambda_simple.models import lambda_simple_backends  # use_docker=False

    found: dict[str, Mapping] = {}
    backends = [*regional_backends(lambda_backends), *regional_backends(lambda_simple_backends)]
    for _account, _region, backend in backends:
        for esm in list(backend._event_source_mappings.values()):
            if not esm.enabled or arn_parts(esm.event_source_arn)[0] != "sqs":
                continue
            if esm.get_configuration().get("State") != "Enabled":
                continue  # still Creating (consistency emulation): Lambda polls nothing yet
            found[esm.uuid] = Mapping(
                uuid=esm.uuid,
                function_arn=esm.function_arn,
                queue_arn=esm.event_source_arn,
                batch_size=int(esm.batch_size or 10),
                window=float(esm.max_batch_window or 0),
                report_failures="ReportBatchItemFailures" in (esm.function_response_types or []),
                maximum_concurrency=(esm.scaling_config or {}).get("MaximumConcurrency"),
            )
    return found


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of the SQS event Lambda passes to a function."""
    attributes = {}
    for name, attr in message.get("MessageAttributes", {}).items():
        value: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": attr["DataType"],
        }
        if "StringValue" in attr:
            value["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            value["binaryValue"] = base64.b64encode(attr["BinaryValue"]).decode()
        attributes[name] = value
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(payload: Any, batch_ids: set[str]) -> set[str] | None:
    """The message ids a partial batch response reports as failed; None = the whole batch failed.

    As documented for Lambda: a null/empty response or list means complete success; a malformed
    response, or an item identifier that is empty or not in the batch, means complete failure.
    """
    if payload is None:
        return set()
    if not isinstance(payload, dict):
        return None
    items = payload.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        return None
    failed: set[str] = set()
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in batch_ids:
            return None
        failed.add(ident)
    return failed


def _queue_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return "NonExistentQueue" in code or "QueueDoesNotExist" in code


def _merge(batch: list[dict[str, Any]], more: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add newly received messages; one received again (its visibility timeout shorter than the
    batching window) keeps one record, with its newest receipt handle."""
    by_id = {msg["MessageId"]: msg for msg in batch}
    by_id.update((msg["MessageId"], msg) for msg in more)
    return list(by_id.values())


class MappingLoop:
    """The pollers of one mapping: one thread per concurrent batch, as many as the Scaler
    allows at the moment."""

    def __init__(self, mapping: Mapping, clients: Clients, runner: Runner) -> None:
        self.mapping = mapping
        self._clients = clients
        self._runner = runner
        self._stop = threading.Event()
        self._url: str | None = None
        self._visibility = 30.0
        self.scaler = Scaler(mapping.maximum_concurrency, runner.max_concurrency)
        self.threads: list[threading.Thread] = []
        self._grow_lock = threading.Lock()
        self._refusal: str | None = None

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def start(self) -> None:
        self._grow()

    def stop(self) -> None:
        self._stop.set()

    def _grow(self) -> None:
        """Start pollers up to the current target (threads are never fewer than the target)."""
        with self._grow_lock:
            while len(self.threads) < self.scaler.target and not self._stop.is_set():
                index = len(self.threads)
                thread = threading.Thread(target=self._run, args=(index,), daemon=True,
                                          name=f"esm-{self.mapping.uuid[:8]}-{index}")
                self.threads.append(thread)
                thread.start()

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            if index >= self.scaler.target:  # scaled in: this poller waits
                self._stop.wait(0.1)
                continue
            try:
                self._poll_once()
                self._grow()
            except FunctionUnavailable as exc:
                log.debug("mapping %s: %s", self.mapping.uuid, exc)
                self._stop.wait(1.0)
            except Exception as exc:
                if self._stop.is_set():
                    return
                self._url = None
                if _queue_missing(exc):  # deleted before its mapping, as a teardown may do
                    log.debug("mapping %s: queue %s is gone", self.mapping.uuid, exc)
                else:
                    log.warning("mapping %s polling failed: %s", self.mapping.uuid, exc)
                self._stop.wait(1.0)

    def _sqs(self) -> Any:
        return self._clients("sqs", arn_parts(self.mapping.queue_arn)[1])

    def _queue_url(self) -> str:
        if self._url is None:
            _, _, account, name = arn_parts(self.mapping.queue_arn)
            url = self._sqs().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
            attrs = self._sqs().get_queue_attributes(
                QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
            self._visibility = float(attrs.get("VisibilityTimeout", 30))
            self._url = url
        return self._url

    def _receive(self, limit: int, wait: int) -> list[dict[str, Any]]:
        response = self._sqs().receive_message(
            QueueUrl=self._queue_url(),
            MaxNumberOfMessages=max(1, min(_RECEIVE_MAX, limit)),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _collect(self) -> list[dict[str, Any]]:
        """A batch: up to BatchSize messages, within the batching window once the first arrived."""
        m = self.mapping
        batch = self._receive(m.batch_size, wait=1)
        self.scaler.received(len(batch), min(m.batch_size, _RECEIVE_MAX))
        if not batch or m.window <= 0:
            return batch
        deadline = time.monotonic() + m.window
        while len(batch) < m.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(m.batch_size - len(batch), wait=int(min(remaining, 1)))
            batch = _merge(batch, more)
            if not more and remaining < 1:
                self._stop.wait(min(0.05, remaining))
        return batch

    def _poll_once(self) -> None:
        spec = read_function(self.mapping.function_arn)  # nothing for a function that is gone
        if self._role_refused(spec.role, spec.name):
            return
        messages = self._collect()
        received = time.monotonic()
        if not messages:
            return
        if self._stop.is_set():  # disabled, changed or deleted while we were receiving
            self._release(messages)
            return
        m = self.mapping
        region = arn_parts(m.queue_arn)[1]
        event = {"Records": [sqs_record(msg, m.queue_arn, region) for msg in messages]}
        inv = hold_throttled(lambda: self._runner.invoke(m.function_arn, event),
                             received + self._visibility, self.scaler, self._stop)
        if inv is None:
            log.info("%s → λ %s: batch of %d throttled until its visibility timeout; it "
                     "returns to the queue", m.queue_name, m.function_name, len(messages),
                     extra={"activity": "fail"})
            return
        if not inv.ok and not m.report_failures:
            self.scaler.errored()
        handles = {msg["MessageId"]: msg["ReceiptHandle"] for msg in messages}
        failed = self._failed(inv, set(handles))
        done = [(mid, h) for mid, h in handles.items() if mid not in failed]
        for i in range(0, len(done), _RECEIVE_MAX):
            chunk = done[i : i + _RECEIVE_MAX]
            result = self._sqs().delete_message_batch(
                QueueUrl=self._queue_url(),
                Entries=[{"Id": str(n), "ReceiptHandle": h} for n, (_, h) in enumerate(chunk)],
            )
            for err in result.get("Failed", []):
                log.warning("could not delete a processed message: %s", err.get("Message"))
        self._report(inv, len(messages), len(failed))

    def _role_refused(self, role: str, function: str) -> bool:
        """The Lambda service polls with the function's execution role: without its SQS
        permissions on the queue nothing is received (rolecalls.py; said once per reason)."""
        refusal = rolecalls.service_call_refused(
            role, function, list(MAPPING_ACTIONS), self.mapping.queue_arn,
            arn_parts(self.mapping.queue_arn)[1])
        if refusal and refusal != self._refusal:
            log.warning("mapping %s cannot poll %s: %s", self.mapping.uuid,
                        self.mapping.queue_name, refusal, extra={"activity": "refused"})
        self._refusal = refusal
        if refusal:
            self._stop.wait(1.0)
        return refusal is not None

    def _release(self, messages: list[dict[str, Any]]) -> None:
        for i in range(0, len(messages), _RECEIVE_MAX):
            self._sqs().change_message_visibility_batch(
                QueueUrl=self._queue_url(),
                Entries=[
                    {"Id": str(n), "ReceiptHandle": msg["ReceiptHandle"], "VisibilityTimeout": 0}
                    for n, msg in enumerate(messages[i : i + _RECEIVE_MAX])
                ],
            )

    def _failed(self, inv: Invocation, batch_ids: set[str]) -> set[str]:
        if not inv.ok:
            return batch_ids
        if not self.mapping.report_failures:
            return set()
        failed = failed_message_ids(inv.payload, batch_ids)
        if failed is None:
            log.warning(
                "%s returned an invalid partial batch response; the whole batch is retried",
                inv.function.name,
            )
            return batch_ids
        return failed

    def _report(self, inv: Invocation, size: int, failed: int) -> None:
        m = self.mapping
        head = f"{m.queue_name} → λ {inv.function.name}: batch of {size}, {inv.duration_ms:.0f} ms"
        if inv.concurrency > 1:
            head += f", {inv.concurrency} running"
        if inv.injected:
            head += f", injected: {inv.injected}"
        if inv.timed_out:
            log.info(
                "%s, timed out after %ss", head, inv.function.timeout, extra={"activity": "fail"}
            )
        elif not inv.ok:
            log.info(
                "%s, failed: %s: %s",
                head,
                inv.error_type,
                inv.error_message,
                extra={"activity": "fail"},
            )
        elif failed:
            log.info("%s, %d item(s) failed", head, failed, extra={"activity": "partial"})
        else:
            log.info("%s, ok", head, extra={"activity": "invoke"})


class Poller:
    """Keeps one :class:`MappingLoop` per enabled SQS mapping, rediscovering them periodically."""

    def __init__(self, clients: Clients, runner: Runner, interval: float = 0.25) -> None:
        self._clients = clients
        self._runner = runner
        self._interval = interval
        self._loops: dict[str, MappingLoop] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="esm-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:
                log.exception("event source mapping discovery failed")
            self._stop.wait(self._interval)

    def sync(self) -> None:
        wanted = enabled_sqs_mappings()
        for uuid, loop in list(self._loops.items()):
            if wanted.get(uuid) != loop.mapping or not loop.alive:
                loop.stop()
                del self._loops[uuid]
        for uuid, mapping in wanted.items():
            if uuid not in self._loops and not self._stop.is_set():
                loop = MappingLoop(mapping, self._clients, self._runner)
                self._loops[uuid] = loop
                loop.start()

    def signal_stop(self) -> None:
        self._stop.set()
        for loop in list(self._loops.values()):
            loop.stop()

    def join(self, timeout: float) -> None:
        """Wait for the supervisor and every loop, all within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        threads = [t for loop in list(self._loops.values()) for t in list(loop.threads)]
        for thread in [self._thread, *threads]:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 5.0) -> None:
        self.signal_stop()
        self.join(timeout)
