"""Output of `trace`, beside render.py: a timeline table on a terminal, the whole trace as
JSON (stable keys) for scripts. Data from AWS (ids, reasons, keys) goes through `safe`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from pipelinectl.render import Renderer, safe

if TYPE_CHECKING:
    from pipelinectl.operate.trace import Trace

STEP_STYLE = {"stored": "green", "alert sent": "green", "in the DLQ": "bold red",
              "dead-lettered by the processor": "red", "rejected": "red",
              "attempt failed": "yellow"}


def trace(out: Renderer, found: Trace) -> None:
    if out.json:
        out.emit_json(found.as_dict())
        return
    out.console.print(Text(f"Trace of {found.kind} {safe(found.target)}: {found.outcome}",
                           style="bold"))
    if found.entered:
        out.console.print(Text("Entered: " + ", ".join(
            f"{k}={safe(str(v))}" for k, v in found.entered.items())))
    if found.item:
        shown = {k: v for k, v in found.item.items() if k not in ("fingerprint",)}
        out.console.print(Text("Item: " + ", ".join(f"{k}={safe(str(v))}"
                                                    for k, v in sorted(shown.items()))))
    if found.file.get("counts"):
        counts = found.file["counts"]
        out.console.print(Text(
            f"Rows: {counts['rows']} read, {counts['stored']} stored, {counts['unchanged']} "
            f"unchanged, {counts['rejected']} rejected; {len(found.file['alerts'])} alert(s); "
            f"{len(found.invocations)} invocation(s); rejects: "
            f"{', '.join(found.file['rejects_objects']) or 'none'}"))
    table = Table(title=f"Timeline ({found.window.get('start')} .. {found.window.get('end')}, "
                        f"{found.log_group})", title_justify="left")
    for column in ("at", "+s", "step", "detail"):
        table.add_column(column, overflow="fold")
    for step in found.steps:
        table.add_row(step.as_dict()["at"], f"{step.since_previous_s:.3f}",
                      Text(step.step, style=STEP_STYLE.get(step.step, "")),
                      Text(safe(step.detail)))
    if found.steps:
        out.console.print(table)
    if found.steps:
        total = found.steps[-1].since_first_s or 0.0
        out.console.print(f"First to last step: {total:.3f}s")
    for note in found.missing:
        out.console.print(Text("Missing: " + safe(note), style="yellow"))
