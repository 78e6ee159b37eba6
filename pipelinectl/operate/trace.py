"""`trace ID`: everything the pipeline knows about one transaction, as a timeline.

Where each piece comes from (collected here; rendered by render_trace.py):
- the stored item (a consistent GetItem): its fields, ``processed_at``, ``source``,
  ``alerted_at`` + ``alert_message_id``, and what the processor records of its origin:
  ``message_id`` (SQS), ``sns_message_id``, ``queued_at`` (SQS SentTimestamp), ``request_id``;
- the function's log group (FilterLogEvents): the JSON lines naming the transaction or its
  message (``{ $.transaction_id = "…" || $.message_id = "…" }``: alerts, dead-lettering,
  retries, the file line), then the START/REPORT lines of the invocations those name
  (``?"RequestId: …"`` terms), for the request id and the duration;
- the DLQ (looked at without consuming it, operate/dlq.py) and the rejects objects
  (``rejected/…errors.jsonl`` lines carry the row's ``transaction_id``), when it failed.

The search is bounded in time: by default from 15 minutes (Lambda's longest invocation)
before the item's ``processed_at`` to 15 minutes after its last step, or the last 24 hours
when nothing is stored; ``--since`` widens or narrows it. Every piece not found is said, with
the likely reason (retention, the window, an item stored by an older processor).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipelinectl.engine import aws_errors
from pipelinectl.errors import PipelineError
from pipelinectl.operate import logs as logs_core
from pipelinectl.operate.targets import Targets
from pipelinectl.resources.base import Context, error_code

#: Lambda's maximum timeout (Lambda Developer Guide, "Configure Lambda function timeout":
#: 900 seconds): an invocation that stored something started at most this long before.
INVOCATION_MS = 900_000
DEFAULT_LOOKBACK_MS = 24 * 3600 * 1000
#: FilterLogEvents' filterPattern is at most 1024 characters (botocore's CloudWatch Logs
#: model, shape FilterPattern: max 1024); a `?"RequestId: <uuid>"` term is 50, so 15 fit.
#: Every page is followed (logs.fetch uses the paginator): "partially full or empty pages
#: don't necessarily mean that pagination is finished" (API Reference, FilterLogEvents).
REQUEST_TERMS_PER_CALL = 15
REJECTS_PREFIX = "rejected/"  # the function's REJECTS_PREFIX (resources/function.py)
MAX_REJECTS_OBJECTS = 200  # rejects objects read per trace, newest first
DLQ_LOOK_LIMIT = 500
_REPORT = re.compile(r"REPORT RequestId: (\S+)\s+Duration: ([\d.]+) ms\s+Billed Duration: "
                     r"(\d+) ms(?:\s+Memory Size: (\d+) MB)?(?:\s+Max Memory Used: (\d+) MB)?"
                     r"(?:\s+Init Duration: ([\d.]+) ms)?(?:\s+Status: (\w+))?")
_START = re.compile(r"START RequestId: (\S+)")


@dataclass
class Step:
    """One thing that happened, when, and what it says."""

    at_ms: int
    step: str
    detail: str
    since_previous_s: float | None = None
    since_first_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"at": iso(self.at_ms), **asdict(self)}


@dataclass
class Trace:
    """The timeline and its sources; ``missing`` says what could not be found and why."""

    kind: str  # "transaction" or "file"
    target: str
    found: bool
    outcome: str
    window: dict[str, str]
    log_group: str
    entered: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] | None = None
    invocations: list[dict[str, Any]] = field(default_factory=list)
    dead_letter: dict[str, Any] | None = None
    rejects: list[dict[str, Any]] = field(default_factory=list)
    file: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "steps"}
        data["steps"] = [s.as_dict() for s in self.steps]
        plain: dict[str, Any] = json.loads(json.dumps(data, default=_plain))
        return plain

    def finish(self) -> Trace:
        """Order the steps and add the time between them."""
        self.steps.sort(key=lambda s: s.at_ms)
        if self.steps:
            first = self.steps[0].at_ms
            previous = first
            for step in self.steps:
                step.since_previous_s = round((step.at_ms - previous) / 1000, 3)
                step.since_first_s = round((step.at_ms - first) / 1000, 3)
                previous = step.at_ms
        return self


def iso(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(text: Any) -> int | None:
    """An ISO 8601 time (as the processor writes them) to epoch milliseconds."""
    if isinstance(text, datetime):
        return int(text.timestamp() * 1000)
    try:
        return int(datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def quoted(value: str) -> str:
    """A string literal for a filter pattern."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# -- logs -----------------------------------------------------------------------------------


def log_lines(ctx: Context, pattern: str, start_ms: int, end_ms: int,
              missing: list[str]) -> list[dict[str, Any]]:
    """The JSON log lines matching `pattern` (parsed, with their timestamp), all pages."""
    try:
        events = logs_core.fetch(ctx, start_ms, pattern, end_ms)
    except PipelineError as exc:
        missing.append(str(exc))
        return []
    lines = []
    for event in events:
        try:
            doc = json.loads(event.message)
        except ValueError:
            continue
        if isinstance(doc, dict):
            lines.append({**doc, "_at_ms": event.timestamp})
    return lines


def invocations(ctx: Context, request_ids: list[str], start_ms: int, end_ms: int,
                missing: list[str]) -> list[dict[str, Any]]:
    """START and REPORT of each request id: when it ran and for how long (Lambda writes
    ``REPORT RequestId: … Duration: … ms Billed Duration: … ms …``, Lambda Developer Guide,
    "Using CloudWatch Logs with Lambda"). That is the plain-text log format, Lambda's default,
    which `up` keeps (it sets no LoggingConfig); a function switched to the JSON log format
    writes ``platform.report`` records instead, which this does not read (the invocation is
    then reported without its duration, and the gap is named)."""
    found: dict[str, dict[str, Any]] = {r: {"request_id": r} for r in request_ids}
    for chunk_start in range(0, len(request_ids), REQUEST_TERMS_PER_CALL):
        chunk = request_ids[chunk_start:chunk_start + REQUEST_TERMS_PER_CALL]
        pattern = " ".join(f"?{quoted('RequestId: ' + r)}" for r in chunk)
        try:
            events = logs_core.fetch(ctx, start_ms, pattern, end_ms)
        except PipelineError as exc:
            missing.append(str(exc))
            break
        for event in events:
            _read_platform_line(event.message, event.timestamp, found)
    for request_id, entry in found.items():
        if "duration_ms" not in entry:
            missing.append(f"no REPORT line for invocation {request_id} between "
                           f"{iso(start_ms)} and {iso(end_ms)}: still running, or outside "
                           "the window (--since)")
    return sorted(found.values(), key=lambda e: e.get("started_ms") or e.get("ended_ms") or 0)


def _read_platform_line(message: str, at_ms: int, found: dict[str, dict[str, Any]]) -> None:
    start = _START.match(message)
    if start and start.group(1) in found:
        found[start.group(1)]["started_ms"] = at_ms
        return
    report = _REPORT.search(message)
    if report and report.group(1) in found:
        entry = found[report.group(1)]
        entry.update(ended_ms=at_ms, duration_ms=float(report.group(2)),
                     billed_ms=int(report.group(3)))
        if report.group(4):
            entry["memory_mb"] = int(report.group(4))
        if report.group(5):
            entry["max_memory_mb"] = int(report.group(5))
        if report.group(6):
            entry["init_ms"] = float(report.group(6))
        if report.group(7):
            entry["status"] = report.group(7)


def retention_note(ctx: Context, start_ms: int, end_ms: int) -> str:
    """Why no log events were found: the window, and the group's retention."""
    group = ctx.names.log_group
    days = None
    try:
        with aws_errors(ctx):
            found = ctx.client("logs").describe_log_groups(logGroupNamePrefix=group)
        days = next((g.get("retentionInDays") for g in found.get("logGroups", [])
                     if g.get("logGroupName") == group), None)
    except PipelineError:
        pass
    kept = f"retention is {days} days" if days else "no retention set (kept forever)"
    return (f"no log events found in {group} between {iso(start_ms)} and {iso(end_ms)} "
            f"({kept}; widen the window with --since)")


def step_for_invocation(trace: Trace, entry: dict[str, Any]) -> None:
    request_id = entry["request_id"]
    if "started_ms" in entry:
        trace.steps.append(Step(entry["started_ms"], "invocation started",
                                f"Lambda request {request_id}"))
    if "ended_ms" in entry:
        extra = f", init {entry['init_ms']:.0f} ms" if "init_ms" in entry else ""
        status = f", {entry['status']}" if "status" in entry else ""
        trace.steps.append(Step(entry["ended_ms"], "invocation ended",
                                f"Lambda request {request_id}: {entry['duration_ms']:.1f} ms "
                                f"(billed {entry['billed_ms']} ms{extra}{status})"))


# -- rejects ----------------------------------------------------------------------------------


def rejects_lines(ctx: Context, start_ms: int, match: Any, missing: list[str],
                  prefix: str = REJECTS_PREFIX) -> list[dict[str, Any]]:
    """Lines of rejects objects under `prefix` modified since `start_ms` that `match`
    accepts, each with its object's key and time; at most MAX_REJECTS_OBJECTS objects."""
    targets = Targets(ctx)
    s3 = targets.client("s3")
    bucket = ctx.names.bucket
    objects = []
    with aws_errors(ctx):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            objects += [o for o in page.get("Contents", [])
                        if o["Key"].endswith(".errors.jsonl")
                        and int(o["LastModified"].timestamp() * 1000) >= start_ms - 1000]
        objects.sort(key=lambda o: o["LastModified"], reverse=True)
        if len(objects) > MAX_REJECTS_OBJECTS:
            missing.append(f"only the newest {MAX_REJECTS_OBJECTS} of {len(objects)} rejects "
                           f"objects were read; narrow the window with --since")
        found = []
        for obj in objects[:MAX_REJECTS_OBJECTS]:
            try:
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"]
            except Exception as exc:  # deleted since the listing: say so, go on
                missing.append(f"could not read s3://{bucket}/{obj['Key']}: {error_code(exc)}")
                continue
            for raw in body.iter_lines():
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(line, dict) and match(line):
                    found.append({**line, "object": f"s3://{bucket}/{obj['Key']}",
                                  "_at_ms": int(obj["LastModified"].timestamp() * 1000)})
    return found


def now_ms() -> int:
    return int(time.time() * 1000)


def collect(ctx: Context, target: str, since_ms: int | None = None) -> Trace:
    """A file's trace for ``s3://bucket/key``, a transaction's for anything else."""
    if target.startswith("s3://"):
        from pipelinectl.operate.trace_file import trace_file

        return trace_file(ctx, target, since_ms)
    from pipelinectl.operate.trace_txn import trace_transaction

    return trace_transaction(ctx, target, since_ms)

