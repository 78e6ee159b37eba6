"""All output: rich tables on a terminal, JSON with stable keys for scripts, live progress.

The core returns data; only this module turns it into text. Rich is imported here, and this
module is imported lazily by the CLI, so `pipelinectl --help` stays fast.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipelinectl.engine import Progress, ProgressCallback
from pipelinectl.resources.base import Change, StatusRow

if TYPE_CHECKING:
    from pipelinectl.operate.dlq import DeadLetter, RedriveResult
    from pipelinectl.operate.fileruns import FileRun
    from pipelinectl.operate.logs import LogEvent
    from pipelinectl.operate.sendtest import SendTestResult
    from pipelinectl.operate.smoke import SmokeResult

PIPED_WIDTH = 200
#: C0/C1 control characters (ESC starts terminal escape sequences), DEL, and the Unicode
#: bidirectional overrides that can make a line read differently from what it holds.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_OR_BREAK = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
ACTION_STYLE = {"create": "green", "update": "yellow", "replace": "magenta", "unchanged": "dim",
                "conflict": "red", "delete": "red", "absent": "dim", "refused": "red",
                "keep": "cyan", "blocked": "red"}
HEALTH_STYLE = {"ok": "green", "warn": "yellow", "error": "red", "missing": "dim"}
PAST = {"create": "created", "update": "updated", "replace": "replaced",
        "unchanged": "unchanged", "delete": "deleted", "absent": "already gone",
        "refused": "refused (not ours)", "keep": "kept", "conflict": "conflict",
        "blocked": "blocked"}


def safe(text: str, *, lines: bool = False) -> str:
    """Data (ids, reasons, bodies, log lines) as the terminal should show it: every control
    character escaped as in a Python literal (``\\x1b``), so data can never move the cursor,
    retitle the window or hide text (rich passes ESC through untouched). ``lines`` keeps
    newlines and tabs, for multi-line log messages."""
    pattern = _UNSAFE if lines else _UNSAFE_OR_BREAK
    return pattern.sub(lambda m: repr(m.group())[1:-1], text)


class Renderer:
    def __init__(self, output: str = "table", console: Console | None = None) -> None:
        self.output = output
        # Piped output keeps whole ARNs on one line, for grep and copy-paste.
        self.console = console or Console(
            highlight=False, width=None if sys.stdout.isatty() else PIPED_WIDTH)
        self.err = Console(stderr=True, highlight=False)

    @property
    def json(self) -> bool:
        return self.output == "json"

    def emit_json(self, payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")

    def note(self, message: str) -> None:
        """Narration; on stderr in JSON mode so stdout stays parseable."""
        (self.err if self.json else self.console).print(message)

    def warn(self, message: str) -> None:
        """A warning the user must act on; on stderr in JSON mode, like narration."""
        text = Text("Warning: ", style="bold yellow")
        text.append(message)
        (self.err if self.json else self.console).print(text)

    # -- plan / apply / teardown --------------------------------------------------------

    def changes(self, changes: Sequence[Change], title: str, *, past: bool = False,
                arns: Sequence[tuple[str, str, str]] = ()) -> None:
        """The changes table, then (after apply) every resource's ARN."""
        if self.json:
            payload: dict[str, Any] = {"changes": [c.as_dict() for c in changes],
                                       "summary": summarize(changes)}
            if arns:
                payload["resources"] = [{"kind": k, "name": n, "arn": a} for k, n, a in arns]
            self.emit_json(payload)
            return
        table = Table(title=title, title_justify="left")
        for column in ("step", "resource", "name", "action", "what"):
            table.add_column(column)
        for change in changes:
            action = PAST.get(change.action, change.action) if past else change.action
            what = ", ".join(change.fields) or change.detail
            table.add_row(change.step, change.kind, change.name,
                          Text(action, style=ACTION_STYLE.get(change.action, "")), what)
        self.console.print(table)
        counts = summarize(changes)
        self.console.print(", ".join(f"{n} {PAST.get(k, k) if past else k}"
                                     for k, n in counts.items()) or "nothing")
        if arns:
            self._arns(arns)

    def _arns(self, rows: Sequence[tuple[str, str, str]]) -> None:
        table = Table(title="Resources", title_justify="left")
        for column in ("resource", "name", "ARN"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

    @contextmanager
    def progress(self, verb: str) -> Iterator[ProgressCallback]:
        """Live view of in-flight resources on a terminal; one line per finished resource."""
        if self.json:
            yield lambda _event: None
            return
        started = time.monotonic()
        in_flight: dict[tuple[str, str], float] = {}
        lock = threading.Lock()

        def view() -> Text:
            now = time.monotonic()
            lines = [f"  {verb} {kind} {name} ... {now - t0:.1f}s"
                     for (kind, name), t0 in sorted(in_flight.items())]
            return Text("\n".join(lines), style="dim")

        live = Live(view(), console=self.console, refresh_per_second=8, transient=True) \
            if self.console.is_terminal else None

        def on_event(event: Progress) -> None:
            with lock:
                key = (event.kind, event.name)
                if event.phase == "start":
                    in_flight[key] = time.monotonic()
                elif event.phase == "wait":
                    self.console.print(_progress_line(event, time.monotonic() - started))
                else:
                    in_flight.pop(key, None)
                    self.console.print(_progress_line(event, time.monotonic() - started))
                if live is not None:
                    live.update(view())

        if live is None:
            yield on_event
            return
        with live:
            yield on_event

    # -- status --------------------------------------------------------------------------

    def status(self, rows: Sequence[StatusRow], header: dict[str, str],
               file_run: FileRun | None = None) -> None:
        if self.json:
            self.emit_json({**header, "resources": [r.as_dict() for r in rows],
                            "healthy": all(r.health == "ok" for r in rows),
                            "latest_file_run": file_run.as_dict() if file_run else None})
            return
        title = " ".join(f"{k}={v}" for k, v in header.items())
        table = Table(title=f"Pipeline status ({title})", title_justify="left")
        for column in ("step", "resource", "name", "ARN", "state"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(row.step, row.kind, row.name, row.arn,
                          Text(row.state, style=HEALTH_STYLE[row.health]))
        self.console.print(table)
        if file_run is not None:
            self.file_run(file_run, "Latest file run")

    def file_run(self, run: FileRun, title: str) -> None:
        """A file's run record as a few lines (text only; JSON callers embed as_dict())."""
        from pipelinectl.render_ops import file_run_lines

        for line, style in file_run_lines(run, title):
            self.console.print(Text(safe(line), style=style), soft_wrap=True)


    # -- operate: send-test, test, dlq, logs ---------------------------------------------

    def send_test(self, result: SendTestResult) -> None:
        if self.json:
            self.emit_json(result.as_dict())
            return
        self.console.print(f"Sent transaction [bold]{escape(safe(result.transaction_id))}[/] "
                           f"(amount {result.amount}) via {result.via}: "
                           f"{escape(safe(result.reference))}")
        self.console.print(Text("Path: " + safe(" → ".join(result.path))), soft_wrap=True)
        if not result.waited:
            self.console.print("Not waiting (--no-wait); follow it with `pipelinectl logs "
                               "--follow`.")
            return
        for line, style in _send_test_lines(result):
            self.console.print(Text(safe(line), style=style))
        if result.ok and result.latency_seconds is not None:
            self.console.print(f"End-to-end latency: [bold]{result.latency_seconds:.2f}s[/]")

    def checks(self, result: SmokeResult, title: str = "Smoke test") -> None:
        if self.json:
            self.emit_json(result.as_dict())
            return
        table = Table(title=f"{title} {result.run_id} ({result.file}, {result.seconds:.1f}s)",
                      title_justify="left")
        for column in ("expectation", "result", "detail"):
            table.add_column(column, overflow="fold")
        for check in result.checks:
            table.add_row(check.name, Text("pass" if check.ok else "FAIL",
                                           style="green" if check.ok else "bold red"),
                          check.detail)
        self.console.print(table)
        if result.file_run is not None:
            self.file_run(result.file_run, "The sample file's run")

    def dead_letters(self, letters: Sequence[DeadLetter], queue: str) -> None:
        from pipelinectl.operate.dlq import body_preview

        if self.json:
            self.emit_json({"queue": queue, "count": len(letters),
                            "messages": [letter.as_dict() for letter in letters]})
            return
        if not letters:
            self.console.print(f"The dead-letter queue {queue} is empty.")
            return
        table = Table(title=f"Dead-letter queue {queue}: {len(letters)} message(s)",
                      title_justify="left")
        for column in ("sent", "message id", "from", "reason", "body"):
            table.add_column(column, overflow="fold")
        for letter in letters:
            table.add_row(Text(safe(letter.sent_at)), Text(safe(letter.message_id)),
                          letter.origin, Text(safe(letter.reason), style="yellow"),
                          Text(safe(body_preview(letter.body))))
        self.console.print(table)

    def redrive(self, result: RedriveResult) -> None:
        if self.json:
            self.emit_json(result.as_dict())
            return
        how = ("an SQS message move task" if result.method == "move-task" else
               "receive, send, delete (this endpoint has no StartMessageMoveTask)")
        self.console.print(f"Moved {result.moved} message(s) from {result.source} to "
                           f"{result.destination} by {how}.")
        if result.failed:
            self.console.print(Text(f"{result.failed} message(s) could not be sent and stay "
                                    "in the dead-letter queue.", style="red"))

    def log_event(self, event: LogEvent, *, stream: bool = False) -> None:
        """One event: a line on a terminal, one JSON object per line for scripts."""
        if self.json:
            sys.stdout.write(json.dumps(event.as_dict(), sort_keys=True) + "\n")
            sys.stdout.flush()
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(event.timestamp / 1000))
        line = Text(f"{stamp}.{event.timestamp % 1000:03d} ", style="dim")
        if stream:
            line.append(f"{event.stream[-8:]} ", style="dim")
        text, style = _log_text(event.message)
        line.append(safe(text, lines=True), style=style)
        self.console.print(line, soft_wrap=True)

def summarize(changes: Sequence[Change]) -> dict[str, int]:
    """How many changes of each action, sorted by action (the JSON `summary`)."""
    return dict(sorted(Counter(change.action for change in changes).items()))


def _progress_line(event: Progress, total: float) -> Text:
    if event.phase == "failed":
        return Text(f"  ✗ {event.step:<9} {event.kind} {event.name}: {event.error}",
                    style="red")
    if event.phase == "wait":
        return Text(f"  … {event.step:<9} {event.kind} {event.name}: {event.detail}  "
                    f"{event.elapsed:.1f}s (t+{total:.1f}s)", style="yellow")
    change = event.change
    action = change.action if change else "done"
    what = f" ({', '.join(change.fields)})" if change and change.fields else ""
    detail = f" - {change.detail}" if change and change.detail else ""
    line = Text(f"  ✓ {event.step:<9} {event.kind} {event.name}: ")
    line.append(PAST.get(action, action) + what, style=ACTION_STYLE.get(action, ""))
    line.append(f"{detail}  {event.elapsed:.1f}s (t+{total:.1f}s)", style="dim")
    return line


# Powertools' keys that repeat on every line and say nothing a reader needs.
_LOG_NOISE = {"level", "message", "timestamp", "service", "location", "xray_trace_id",
              "cold_start", "function_name", "function_memory_size", "function_arn",
              "function_request_id", "sampling_rate", "request_id"}
_LEVEL_STYLE = {"ERROR": "red", "CRITICAL": "bold red", "WARNING": "yellow", "DEBUG": "dim"}


def _log_text(message: str) -> tuple[str, str]:
    """A log line for people: structured JSON as `LEVEL message key=value`, EMF blobs as
    `metrics: Name=value`, the rest as it is (timeouts and tracebacks in red)."""
    doc: Any = None
    if message.startswith("{"):
        try:
            doc = json.loads(message)
        except (ValueError, RecursionError):  # deeply nested: shown as text
            doc = None
    if isinstance(doc, dict) and isinstance(doc.get("_aws"), dict):
        names = [m.get("Name") for d in doc["_aws"].get("CloudWatchMetrics", [])
                 for m in d.get("Metrics", [])]
        values = {n: doc.get(n) for n in names if n in doc}
        shown = " ".join(f"{n}={_metric(v)}" for n, v in values.items() if _metric(v) != "0")
        return f"metrics: {shown or 'all zero'}", "dim"
    if isinstance(doc, dict) and "message" in doc and "level" in doc:
        level = str(doc["level"])
        extra = " ".join(f"{k}={v}" for k, v in doc.items() if k not in _LOG_NOISE)
        return f"{level} {doc['message']}{' ' + extra if extra else ''}", _LEVEL_STYLE.get(
            level, "")
    bad = message.startswith("[ERROR]") or "Task timed out" in message or \
        message.startswith("Traceback")
    return message, "red" if bad else ""


def _metric(value: Any) -> str:
    if isinstance(value, list):
        value = sum(value) if all(isinstance(v, int | float) for v in value) else value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _send_test_lines(result: SendTestResult) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    if result.stored:
        lines.append((f"✓ stored after {result.stored_seconds:.2f}s (source "
                      f"{result.source})", "green"))
    else:
        where = " (in the dead-letter queue)" if result.outcome == "in the DLQ" else ""
        lines.append((f"✗ not stored{where}", "red"))
    if result.expect_alert:
        if result.alerted:
            lines.append((f"✓ alerted after {result.alerted_seconds:.2f}s (amount "
                          f"{result.amount} > threshold {result.threshold})", "green"))
        else:
            lines.append((f"✗ no alert recorded (amount {result.amount} > threshold "
                          f"{result.threshold})", "red"))
    else:
        lines.append((f"· no alert expected (amount {result.amount} <= threshold "
                      f"{result.threshold})", "dim"))
    return lines
