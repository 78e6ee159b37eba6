"""`trace s3://bucket/incoming/key`: what happened to one file - when it landed, the
invocations that read it (every part and slice of a large file), rows stored / unchanged /
rejected, its alerts and its rejects objects.

From: HeadObject (size, upload time), the function's JSON log lines naming the file
(``{ $.source = "…" || $.file = "…" }``: one per slice read, per split, per alert, per
completed run; never one per row), the START/REPORT lines of those invocations, the file's
run record (operate/fileruns.py: mode, parts, exact counts once complete), and the
rejects objects ``rejected/<key>.errors.jsonl`` / ``rejected/<key>.part-NNNNN[-N].errors.jsonl``.
The window starts one minute before the upload (or 24 hours back without the object).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from pipelinectl.engine import aws_errors
from pipelinectl.errors import PipelineError, UsageError
from pipelinectl.operate import fileruns
from pipelinectl.operate.fileruns import FileRun, read_file_run
from pipelinectl.operate.trace import (
    DEFAULT_LOOKBACK_MS,
    REJECTS_PREFIX,
    Step,
    Trace,
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

INCOMING = "incoming/"
SLICE_LINES = ("file processed", "file slice handed on")
COUNTS = ("rows", "stored", "unchanged", "rejected", "alerts_sent")


def parse_uri(uri: str) -> tuple[str, str]:
    try:
        bucket, key = fileruns.parse_uri(uri)
    except ValueError:
        bucket, key = "", ""
    if not key.startswith(INCOMING) or key.endswith("/"):
        raise UsageError(f"{uri!r} is not a file the pipeline reads: give "
                         "s3://BUCKET/incoming/KEY (or a transaction id).")
    return bucket, key


def trace_file(ctx: Context, uri: str, since_ms: int | None = None) -> Trace:
    bucket, key = parse_uri(uri)
    now = now_ms()
    trace = Trace("file", uri, found=False, outcome="", window={},
                  log_group=ctx.names.log_group)
    uploaded = _head(ctx, trace, bucket, key)
    start = since_ms if since_ms is not None else (
        uploaded - 60_000 if uploaded is not None else now - DEFAULT_LOOKBACK_MS)
    trace.window = {"start": iso(start), "end": iso(now)}
    lines = log_lines(ctx, f"{{ $.source = {quoted(uri)} || $.file = {quoted(uri)} }}",
                      start, now, trace.missing)
    slices = [line for line in lines if line.get("message") in SLICE_LINES]
    alerts = [line for line in lines if line.get("message") == "alert sent"]
    for line in lines:
        _line_step(trace, line)
    request_ids = list(dict.fromkeys(str(line["request_id"]) for line in lines
                                     if line.get("request_id")))
    trace.invocations = invocations(ctx, request_ids, start, now, trace.missing)
    for entry in trace.invocations:
        step_for_invocation(trace, entry)
    name = key.removeprefix(INCOMING)
    mine = re.compile(re.escape(REJECTS_PREFIX + name) + r"\.(part-\d{5}(-\d+)?\.)?errors\.jsonl")
    trace.rejects = rejects_lines(ctx, start, lambda line: line.get("source") == uri,
                                  trace.missing, prefix=REJECTS_PREFIX + name + ".")
    trace.rejects = [r for r in trace.rejects
                     if mine.fullmatch(r["object"].split("/", 3)[3])]
    totals = {name: sum(int(s.get(name) or 0) for s in slices) for name in COUNTS}
    run = _run_record(ctx, trace, bucket, key)
    if run is not None:  # the record is exact where log lines may be missing or expired
        totals = {**asdict(run.counts), "alerts_sent": totals["alerts_sent"]}
    trace.file = {"bucket": bucket, "key": key, **trace.file, "counts": totals,
                  "counts_from": "run record" if run is not None else "log lines",
                  "slices": len(slices), "alerts": [
                      {"transaction_id": a.get("transaction_id"), "row": a.get("row"),
                       "sns_message_id": a.get("sns_message_id")} for a in alerts],
                  "rejects_objects": sorted({r["object"] for r in trace.rejects}),
                  "message_ids": sorted({str(s["message_id"]) for s in slices
                                         if s.get("message_id")})}
    trace.found = bool(slices) or run is not None
    state = f"{run.state} ({run.mode} run)" if run is not None else "read"
    trace.outcome = (f"{state}: {totals['rows']} rows, {totals['stored']} stored, "
                     f"{totals['unchanged']} unchanged, {totals['rejected']} rejected, "
                     f"{len(alerts)} alert(s)") if trace.found else "not read"
    if not lines:
        trace.missing.append(retention_note(ctx, start, now))
    return trace.finish()


def _run_record(ctx: Context, trace: Trace, bucket: str, key: str) -> FileRun | None:
    """The file's run record (operate/fileruns.py): mode, parts, exact counts, failure."""
    with aws_errors(ctx):
        run = read_file_run(ctx.client("dynamodb"), ctx.names.table, bucket, key)
    if run is None:
        trace.missing.append("no run record for this file (never read, or read by a processor "
                             "older than run records): counts are summed from log lines")
        return None
    trace.file["run"] = run.as_dict()
    if run.started_at is not None:
        trace.steps.append(Step(int(run.started_at.timestamp() * 1000), "run started", (
            f"run {run.run_id}, {run.mode}, {run.parts_total or '?'} part(s)")))
    if run.failed_reason:
        trace.missing.append(f"the run failed: {run.failed_reason}")
    elif run.completed_at is None:
        trace.missing.append(f"the run is still going: {run.parts_done} of "
                             f"{run.parts_total or '?'} part(s) done")
    return run


def _head(ctx: Context, trace: Trace, bucket: str, key: str) -> int | None:
    try:
        with aws_errors(ctx):
            head = ctx.client("s3").head_object(Bucket=bucket, Key=key)
    except PipelineError as exc:
        trace.missing.append(f"s3://{bucket}/{key} cannot be read now ({exc}); the window "
                             "starts 24 hours back unless --since says otherwise")
        return None
    at = int(head["LastModified"].timestamp() * 1000)
    trace.file = {"size": head.get("ContentLength"), "etag": head.get("ETag"),
                  "last_modified": iso(at)}
    trace.steps.append(Step(at, "file uploaded", (
        f"{head.get('ContentLength')} bytes, ETag {head.get('ETag')} (S3 keeps whole seconds)")))
    return at


def _line_step(trace: Trace, line: dict[str, Any]) -> None:
    message = str(line.get("message", ""))
    at = int(line["_at_ms"])
    if message in SLICE_LINES:
        trace.steps.append(Step(at, message, (
            f"part {line.get('part')} slice {line.get('slice')}: {line.get('rows')} rows, "
            f"{line.get('stored')} stored, {line.get('unchanged')} unchanged, "
            f"{line.get('rejected')} rejected (request {line.get('request_id')}, SQS message "
            f"{line.get('message_id')})")))
    elif message == "alert sent":
        trace.steps.append(Step(at, "alert sent", (
            f"row {line.get('row')}: transaction {line.get('transaction_id')}, SNS message "
            f"{line.get('sns_message_id')}")))
    elif message in ("file split", "file run complete", "file replayed",
                     "file run cannot finish"):
        detail = ", ".join(f"{k}={line[k]}" for k in ("parts", "size", "rows", "stored",
                                                      "rejected", "seconds", "replay",
                                                      "reason") if k in line)
        trace.steps.append(Step(at, message, detail))
