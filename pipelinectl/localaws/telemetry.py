"""What the Lambda and SQS services report: function logs, AWS/Lambda and AWS/SQS metrics, EMF."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pipelinectl.localaws import rolecalls
from pipelinectl.localaws._aws import Clients, regional_backends
from pipelinectl.localaws.faults import METRIC_NAMESPACE, Faults
from pipelinectl.localaws.runner import FunctionSpec, Invocation

log = logging.getLogger(__name__)

_MAX_DATUMS_PER_CALL = 1000  # PutMetricData limit
_MAX_EVENTS_PER_CALL = 10_000  # PutLogEvents limit
_FLUSH_EVERY = 50  # invocations buffered at most before shipping


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def log_lines(inv: Invocation) -> list[tuple[int, str]]:
    """The invocation's log events as Lambda writes them: START, output, END, REPORT."""
    start_ms = int(inv.started * 1000)
    end_ms = max(start_ms + int(inv.duration_ms), *(t for t, _ in inv.lines), start_ms)
    rid = inv.request_id
    lines = [(start_ms, f"START RequestId: {rid} Version: $LATEST"), *inv.lines]
    if inv.timed_out:
        lines.append(
            (
                end_ms,
                f"{_iso(end_ms)} {rid} Task timed out after {inv.function.timeout:.2f} seconds",
            )
        )
    report = (
        f"REPORT RequestId: {rid}\tDuration: {inv.duration_ms:.2f} ms"
        f"\tBilled Duration: {math.ceil(inv.duration_ms)} ms\tMemory Size: {inv.function.memory} MB"
    )
    if inv.max_memory_mb is not None:
        report += f"\tMax Memory Used: {inv.max_memory_mb} MB"
    if inv.init_ms is not None:
        report += f"\tInit Duration: {inv.init_ms:.2f} ms"
    if inv.timed_out:
        report += "\tStatus: timeout"
    lines += [(end_ms, f"END RequestId: {rid}"), (end_ms, report)]
    return sorted(lines, key=lambda item: item[0])


def emf_datums(line: str) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, MetricDatum) pairs from one Embedded Metric Format log line; [] otherwise."""
    if not line.startswith("{") or '"_aws"' not in line:
        return []
    try:
        doc = json.loads(line)
        directives = doc["_aws"]["CloudWatchMetrics"]
        timestamp = datetime.fromtimestamp(
            int(doc["_aws"].get("Timestamp", time.time() * 1000)) / 1000, UTC
        )
    except (ValueError, KeyError, TypeError):
        return []
    out: list[tuple[str, dict[str, Any]]] = []
    for directive in directives:
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics", []):
            name = metric.get("Name")
            raw = doc.get(name)
            values = raw if isinstance(raw, list) else [raw]
            numbers = [
                float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)
            ]
            for dims in dimension_sets:
                if not numbers or any(d not in doc for d in dims):
                    continue
                datum: dict[str, Any] = {
                    "MetricName": name,
                    "Dimensions": [{"Name": d, "Value": str(doc[d])} for d in dims],
                    "Timestamp": timestamp,
                    "Unit": metric.get("Unit", "None"),
                }
                if len(numbers) == 1:
                    datum["Value"] = numbers[0]
                else:
                    datum["Values"] = numbers
                if metric.get("StorageResolution") == 1:
                    datum["StorageResolution"] = 1
                out.append((directive.get("Namespace", "aws-embedded-metrics"), datum))
    return out


class Telemetry:
    """Ships invocation logs and metrics, and samples queue metrics, through the local endpoint.

    Invocations are shipped by a background thread so the pollers never wait for it. Queue
    metrics are put when a value changes, and at least every ``heartbeat`` seconds otherwise,
    so an idle local AWS does not fill moto's memory with identical datapoints.
    """

    def __init__(self, clients: Clients, heartbeat: float = 30.0,
                 faults: Faults | None = None) -> None:
        self._clients = clients
        self._faults = faults
        self._throttles: Counter[tuple[str, str]] = Counter()
        self._throttle_lock = threading.Lock()
        self._heartbeat = heartbeat
        self._known_streams: set[tuple[str, str, str]] = set()
        self._dlq_depths: dict[str, int] = {}
        self._last_put: dict[tuple[str, str, str], tuple[float, float]] = {}
        self._pending: queue.Queue[Invocation | None] = queue.Queue()
        self._log_buffer: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._metric_buffer: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._drain_until = float("inf")
        self._thread = threading.Thread(target=self._ship_loop, name="telemetry", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_seconds: float = 15.0) -> None:
        """Ship what is pending for at most ``drain_seconds``, drop the rest, then stop.

        A backlog built under heavy load could otherwise hold a SIGTERM for many seconds, to
        ship logs into a state that is about to be discarded."""
        if self._thread.is_alive():
            self._drain_until = time.monotonic() + drain_seconds
            self._pending.put(None)
            self._thread.join(timeout=drain_seconds + 1.0)

    def _ship_loop(self) -> None:
        dropped = buffered = 0
        while (inv := self._pending.get()) is not None:
            if time.monotonic() > self._drain_until:
                dropped += 1
                continue
            try:
                self.record(inv)
                buffered += 1
                if buffered >= _FLUSH_EVERY or self._pending.empty():
                    buffered = 0
                    self.flush()
            except Exception as exc:
                log.warning("could not ship logs/metrics of %s: %s", inv.function.name, exc)
        with contextlib.suppress(Exception):
            self.flush()
        if dropped:
            log.info("stopping: the logs and metrics of %d invocation(s) were not shipped",
                     dropped)

    # ---- invocations

    def on_invocation(self, inv: Invocation) -> None:
        """Runner listener: queue the invocation for shipping."""
        self._pending.put(inv)

    def record(self, inv: Invocation) -> None:
        """Buffer its logs (for /aws/lambda/<fn>), AWS/Lambda metrics and the EMF metrics it
        printed; flush() ships them. Under load one PutLogEvents per stream and one
        PutMetricData per namespace carry many invocations: one call each per invocation
        took a third of the local AWS's requests while a backlog drained."""
        fn = inv.function
        stream_arn = (f"arn:aws:logs:{fn.region}:{fn.account}:log-group:{fn.log_group}"
                      f":log-stream:{inv.log_stream}")
        refusal = rolecalls.service_call_refused(
            fn.role, fn.name, ["logs:CreateLogStream", "logs:PutLogEvents"], stream_arn,
            fn.region)
        if refusal:  # Lambda writes the logs with the execution role: none without it
            log.warning("logs of %s dropped: %s", fn.name, refusal,
                        extra={"activity": "refused"})
        else:
            self._log_buffer.setdefault((fn.region, fn.log_group, inv.log_stream), []).extend(
                {"timestamp": t, "message": m} for t, m in log_lines(inv))
        now = datetime.now(UTC)
        dims = [{"Name": "FunctionName", "Value": fn.name}]
        failed = 0.0 if inv.ok else 1.0
        # ConcurrentExecutions: the function's executions running as this one started (its
        # Maximum per period is the peak, the statistic AWS advises for it).
        lambda_metrics = [
            {"MetricName": "Invocations", "Value": 1.0, "Unit": "Count"},
            {"MetricName": "Errors", "Value": failed, "Unit": "Count"},
            {"MetricName": "Duration", "Value": round(inv.duration_ms, 2), "Unit": "Milliseconds"},
            {"MetricName": "ConcurrentExecutions", "Value": float(inv.concurrency),
             "Unit": "Count"},
        ]
        by_namespace: dict[str, list[dict[str, Any]]] = {
            "AWS/Lambda": [{**m, "Dimensions": dims, "Timestamp": now} for m in lambda_metrics]
        }
        for _, text in inv.lines:
            for namespace, datum in emf_datums(text):
                by_namespace.setdefault(namespace, []).append(datum)
        for namespace, datums in by_namespace.items():
            self._metric_buffer.setdefault((fn.region, namespace), []).extend(datums)

    def flush(self) -> None:
        """Ship what record() buffered."""
        logs_by_stream, self._log_buffer = self._log_buffer, {}
        metrics, self._metric_buffer = self._metric_buffer, {}
        for (region, group, stream), events in logs_by_stream.items():
            self.ship_logs(region, group, stream, events)
        for (region, namespace), datums in metrics.items():
            self.put_metrics(region, namespace, datums)

    def ship_logs(self, region: str, group: str, stream: str,
                  events: list[dict[str, Any]]) -> None:
        logs = self._clients("logs", region)
        key = (region, group, stream)
        if key not in self._known_streams:
            self._create_stream(logs, group, stream)
            self._known_streams.add(key)
        events = sorted(events, key=lambda event: int(event["timestamp"]))
        for i in range(0, len(events), _MAX_EVENTS_PER_CALL):
            chunk = events[i : i + _MAX_EVENTS_PER_CALL]
            try:
                logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=chunk)
            except logs.exceptions.ResourceNotFoundException:  # group deleted meanwhile
                self._create_stream(logs, group, stream)
                logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=chunk)

    @staticmethod
    def _create_stream(logs: Any, group: str, stream: str) -> None:
        existing = logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
        if not any(g["logGroupName"] == group for g in existing):
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=group)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)

    def put_metrics(self, region: str, namespace: str, datums: list[dict[str, Any]]) -> None:
        cloudwatch = self._clients("cloudwatch", region)
        for i in range(0, len(datums), _MAX_DATUMS_PER_CALL):
            cloudwatch.put_metric_data(
                Namespace=namespace, MetricData=datums[i : i + _MAX_DATUMS_PER_CALL]
            )

    def on_throttle(self, fn: FunctionSpec) -> None:
        """Runner listener: one throttled invocation request (AWS/Lambda Throttles; it counts
        in neither Invocations nor Errors). Put with the queue metrics."""
        with self._throttle_lock:
            self._throttles[(fn.region, fn.name)] += 1

    def put_counters(self) -> None:
        """Throttles and injected faults counted since the last call."""
        with self._throttle_lock:
            throttles, self._throttles = self._throttles, Counter()
        now = datetime.now(UTC)
        for (region, name), count in throttles.items():
            self.put_metrics(region, "AWS/Lambda", [
                {"MetricName": "Throttles", "Value": float(count), "Unit": "Count",
                 "Dimensions": [{"Name": "FunctionName", "Value": name}], "Timestamp": now}])
        faults = [] if self._faults is None else self._faults.metric_data()
        if faults:
            self.put_metrics("us-east-1", METRIC_NAMESPACE,
                             [{**datum, "Timestamp": now} for datum in faults])

    # ---- queues

    def sample_queues(self) -> None:
        """AWS/SQS depth and age metrics for every queue; notes messages arriving in DLQs."""
        from moto.sqs.models import sqs_backends

        self.put_counters()
        now_ms = time.time() * 1000
        now = datetime.now(UTC)
        for _account, region, backend in regional_backends(sqs_backends):
            datums: list[dict[str, Any]] = []
            queues = list(backend.queues.values())
            dlq_arns = {q.redrive_policy["deadLetterTargetArn"] for q in queues if q.redrive_policy}
            for q in queues:
                messages = list(q._messages)
                visible = sum(1 for m in messages if m.visible and not m.delayed)
                delayed = sum(1 for m in messages if m.delayed)
                oldest = min((m.sent_timestamp for m in messages if m.sent_timestamp), default=None)
                age = 0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000)
                values = {
                    "ApproximateNumberOfMessagesVisible": (float(visible), "Count"),
                    "ApproximateNumberOfMessagesNotVisible": (
                        float(len(messages) - visible - delayed),
                        "Count",
                    ),
                    "ApproximateNumberOfMessagesDelayed": (float(delayed), "Count"),
                    "ApproximateAgeOfOldestMessage": (round(age, 3), "Seconds"),
                }
                dims = [{"Name": "QueueName", "Value": q.name}]
                datums += [
                    {"MetricName": k, "Value": v, "Unit": u, "Dimensions": dims, "Timestamp": now}
                    for k, (v, u) in values.items()
                    if self._due((region, q.name, k), v)
                ]
                if q.queue_arn in dlq_arns:
                    self._note_dlq(q.name, len(messages))
            if datums:
                self.put_metrics(region, "AWS/SQS", datums)

    def _due(self, key: tuple[str, str, str], value: float) -> bool:
        now = time.monotonic()
        last = self._last_put.get(key)
        if last is not None and last[0] == value and now - last[1] < self._heartbeat:
            return False
        self._last_put[key] = (value, now)
        return True

    def _note_dlq(self, name: str, depth: int) -> None:
        before = self._dlq_depths.get(name, 0)
        self._dlq_depths[name] = depth
        if depth > before:
            log.info(
                "dead-letter queue %s now holds %d message(s) (+%d)",
                name,
                depth,
                depth - before,
                extra={"activity": "dlq"},
            )
