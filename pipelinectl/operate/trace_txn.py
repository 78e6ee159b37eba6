"""`trace ID` for one transaction: the stored item, its logs, its invocations, and when it
failed its DLQ entry or rejects line (the sources and their bounds: operate/trace.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pipelinectl.engine import aws_errors
from pipelinectl.errors import PipelineError
from pipelinectl.operate.targets import Targets
from pipelinectl.operate.trace import (
    DEFAULT_LOOKBACK_MS,
    DLQ_LOOK_LIMIT,
    INVOCATION_MS,
    Step,
    Trace,
    epoch_ms,
    invocations,
    iso,
    log_lines,
    now_ms,
    quoted,
    rejects_lines,
    retention_note,
    step_for_invocation,
)
from pipelinectl.resources.base import Context


def trace_transaction(ctx: Context, transaction_id: str, since_ms: int | None = None) -> Trace:
    """Everything about `transaction_id` (see the module docstring)."""
    targets = Targets(ctx)
    with aws_errors(ctx):
        item = targets.get_item(transaction_id)
    now = now_ms()
    times = [t for t in (epoch_ms(item.get(k)) for k in ("processed_at", "alerted_at"))
             if t is not None] if item else []
    start = since_ms if since_ms is not None else (
        min(times) - INVOCATION_MS if times else now - DEFAULT_LOOKBACK_MS)
    end = min(now, max(times) + INVOCATION_MS) if times and since_ms is None else now
    trace = Trace("transaction", transaction_id, found=item is not None, outcome="",
                  window={"start": iso(start), "end": iso(end)},
                  log_group=ctx.names.log_group, item=item)
    clauses = [f"$.transaction_id = {quoted(transaction_id)}"]
    if item and item.get("message_id"):
        clauses.append(f"$.message_id = {quoted(str(item['message_id']))}")
    lines = log_lines(ctx, "{ " + " || ".join(clauses) + " }", start, end, trace.missing)
    _steps_from_lines(trace, lines, transaction_id)
    stored_by = [str(item["request_id"])] if item and item.get("request_id") else []
    request_ids = list(dict.fromkeys(
        stored_by + [str(line["request_id"]) for line in lines if line.get("request_id")]))
    trace.invocations = invocations(ctx, request_ids, start, end, trace.missing)
    for entry in trace.invocations:
        step_for_invocation(trace, entry)
    if item is not None:
        _stored(ctx, trace, item)
    failed = item is None or any(line.get("message") == "message sent to the DLQ"
                                 for line in lines)
    if failed:
        _dead_letter(ctx, trace, transaction_id)
    trace.rejects = rejects_lines(
        ctx, start, lambda line: line.get("transaction_id") == transaction_id, trace.missing)
    for line in trace.rejects:
        trace.steps.append(Step(line["_at_ms"], "rejected", (
            f"row {line.get('row')} of {line.get('source')}: {line.get('code')}: "
            f"{line.get('reason')} (in {line['object']}; S3 keeps whole seconds)")))
    if trace.rejects and item is None:
        lines += _rejected_file(ctx, trace, trace.rejects[0], start, end)
    _explain(ctx, trace, lines, start, end)
    return trace.finish()


def _rejected_file(ctx: Context, trace: Trace, reject: dict[str, Any], start: int,
                   end: int) -> list[dict[str, Any]]:
    """A rejected row: its file, and the invocation(s) that read it (their file lines)."""
    file = str(reject.get("source"))
    trace.entered = {"via": "s3", "file": file, "row": reject.get("row"),
                     "line": reject.get("line")}
    _uploaded(ctx, trace, file)
    lines = log_lines(ctx, f"{{ $.source = {quoted(file)} }}", start, end, trace.missing)
    key = reject["object"].split("/", 3)[3]
    lines = [line for line in lines if line.get("rejects") == key  # the slice that wrote it
             or line.get("message") not in ("file processed", "file slice handed on")]
    _steps_from_lines(trace, lines, "")
    known = {e["request_id"] for e in trace.invocations}
    more = list(dict.fromkeys(str(line["request_id"]) for line in lines
                              if line.get("request_id") and line["request_id"] not in known))
    for entry in invocations(ctx, more, start, end, trace.missing):
        trace.invocations.append(entry)
        step_for_invocation(trace, entry)
    return lines


def _steps_from_lines(trace: Trace, lines: list[dict[str, Any]], transaction_id: str) -> None:
    for line in lines:
        message = str(line.get("message", ""))
        if message == "alert sent" and line.get("transaction_id") == transaction_id:
            continue  # the item's alerted_at says it, with the time it was recorded
        if message == "message sent to the DLQ":
            trace.steps.append(Step(line["_at_ms"], "dead-lettered by the processor", (
                f"{line.get('error_code')}: {line.get('error_reason')}")))
        elif "retried" in message or line.get("level") in ("ERROR", "WARNING"):
            trace.steps.append(Step(line["_at_ms"], "attempt failed", message))
        elif message in ("file processed", "file slice handed on"):
            trace.steps.append(Step(line["_at_ms"], message, (
                f"{line.get('source')}: {line.get('rows')} rows, {line.get('stored')} stored, "
                f"{line.get('rejected')} rejected (part {line.get('part')}, slice "
                f"{line.get('slice')})")))


def _stored(ctx: Context, trace: Trace, item: dict[str, Any]) -> None:
    source = str(item.get("source", ""))
    entered: dict[str, Any] = {"via": source if source in ("sqs", "sns") else "s3",
                               "message_id": item.get("message_id"),
                               "transaction_type": item.get("type")}
    if item.get("sns_message_id"):
        entered["sns_message_id"] = item["sns_message_id"]
    if entered["via"] == "s3":
        file, _, row = source.rpartition("#")
        entered.update(file=file, row=int(row) if row.isdigit() else row)
        _uploaded(ctx, trace, file)
    trace.entered = {k: v for k, v in entered.items() if v is not None}
    queued = epoch_ms(item.get("queued_at"))
    if queued is not None:
        via = ("SNS message " + str(item["sns_message_id"]) + " as " if
               item.get("sns_message_id") else "")
        trace.steps.append(Step(queued, "queued", f"{via}SQS message {item.get('message_id')}"))
    processed = epoch_ms(item.get("processed_at"))
    if processed is not None:
        trace.steps.append(Step(processed, "stored", (
            f"{item.get('amount')} {item.get('currency', '')} in {ctx.names.table} "
            f"(source {source})")))
    alerted = epoch_ms(item.get("alerted_at"))
    if alerted is not None:
        trace.steps.append(Step(alerted, "alert sent", (
            f"SNS message {item.get('alert_message_id')} on {ctx.names.alerts_topic}")))
    elif Decimal(str(item.get("amount", 0))) > ctx.config.alert_threshold:
        trace.missing.append(f"no alert recorded although the amount is over the threshold "
                             f"({ctx.config.alert_threshold}): check `pipelinectl logs`")
    if not item.get("request_id"):
        trace.missing.append("the item has no request_id or message_id (stored by an older "
                             "processor, or an unchanged redelivery of one): its invocation "
                             "is found only from log lines naming the transaction")


def _uploaded(ctx: Context, trace: Trace, file: str) -> None:
    bucket, _, key = file.removeprefix("s3://").partition("/")
    try:
        with aws_errors(ctx):
            head = ctx.client("s3").head_object(Bucket=bucket, Key=key)
    except PipelineError as exc:
        trace.missing.append(f"the file {file} cannot be read now ({exc})")
        return
    # HeadObject's LastModified is the HTTP Last-Modified header, an HTTP-date: whole seconds.
    trace.steps.append(Step(int(head["LastModified"].timestamp() * 1000), "file uploaded",
                            f"{file} ({head.get('ContentLength')} bytes; S3 keeps whole "
                            "seconds)"))


def _dead_letter(ctx: Context, trace: Trace, transaction_id: str) -> None:
    from pipelinectl.operate import dlq

    letter = dlq.find(ctx, transaction_id, DLQ_LOOK_LIMIT)
    if letter is None:
        return
    trace.dead_letter = letter.as_dict()
    entered: dict[str, Any] = {"via": "sqs", "message_id": letter.source_message_id,
                               "transaction_type": letter.attributes.get("TransactionType")}
    try:
        body = json.loads(letter.body)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("Type") == "Notification":
        entered.update(via="sns", sns_message_id=body.get("MessageId"))
        published = epoch_ms(body.get("Timestamp"))
        if published is not None:
            trace.steps.append(Step(published, "published", f"SNS message {body['MessageId']}"))
        attribute = (body.get("MessageAttributes") or {}).get("TransactionType") or {}
        entered["transaction_type"] = entered["transaction_type"] or attribute.get("Value")
    trace.entered = {k: v for k, v in entered.items() if v}
    detail = (f"{ctx.names.dlq} message {letter.message_id} ({letter.origin}): "
              f"{letter.code}: {letter.reason}")
    logged = next((s for s in trace.steps if s.step == "dead-lettered by the processor"), None)
    sent = epoch_ms(letter.sent_at)
    if logged is not None:  # the log line's time is exact; SentTimestamp shown in seconds
        logged.step, logged.detail = "in the DLQ", detail
    elif sent is not None:
        trace.steps.append(Step(sent, "in the DLQ", detail + " (sent at, whole seconds)"))


def _explain(ctx: Context, trace: Trace, lines: list[dict[str, Any]], start: int,
             end: int) -> None:
    if trace.item is not None:
        trace.outcome = "stored and alerted" if trace.item.get("alerted_at") else "stored"
    elif trace.dead_letter is not None:
        trace.outcome = "dead-lettered"
    elif trace.rejects:
        trace.outcome = "rejected"
    else:
        trace.outcome = "not found"
        trace.missing.append(
            f"not stored in the table, not in the DLQ, and in no rejects object written "
            f"between {iso(start)} and {iso(end)}: not arrived yet, processed earlier "
            "(try --since 7d), or never sent")
    trace.found = trace.outcome != "not found"
    if trace.item is not None and (trace.dead_letter or trace.rejects):
        trace.outcome += " (another version was refused)"
    logged = any("ended_ms" in e or "started_ms" in e for e in trace.invocations)
    if not lines and not logged:
        trace.missing.append(retention_note(ctx, start, end))
