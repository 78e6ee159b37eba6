"""Output of `replay` and `doctor`, beside render.py (which holds the other commands').

Same conventions: the core returns data, this turns it into rich text on a terminal or JSON
with stable keys for scripts; data from AWS (keys, reasons) goes through `safe`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipelinectl.render import Renderer, safe

if TYPE_CHECKING:
    from pipelinectl.operate.doctor import Finding
    from pipelinectl.operate.fileruns import FileRun
    from pipelinectl.operate.replay import ReplayResult, Tick

LEVEL_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns at GiB


@contextmanager
def replay_progress(out: Renderer, total: int) -> Iterator[Callable[[Tick], None]]:
    """A progress bar (objects, bytes, rate, ETA) on a terminal; nothing otherwise."""
    if out.json or not out.console.is_terminal or total == 0:
        yield lambda _tick: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[bytes]}"), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=out.console, transient=True) as bar:
        task = bar.add_task("replay", total=total, bytes="", rate="")

        def tick(event: Tick) -> None:
            rate = f"{event.done / event.elapsed:.1f} obj/s" if event.elapsed else ""
            bar.update(task, completed=event.done, rate=rate,
                       bytes=f"{size(event.bytes_done)}/{size(event.bytes_total)}")

        yield tick


def replay(out: Renderer, result: ReplayResult) -> None:
    if out.json:
        out.emit_json(result.as_dict())
        return
    where = f"s3://{result.bucket}/{result.selection.prefix}"
    if result.dry_run:
        table = Table(title=f"Would replay from {where} (nothing was sent)",
                      title_justify="left")
        for column in ("key", "size", "last modified"):
            table.add_column(column, overflow="fold")
        for obj in result.objects:
            row = obj.as_dict()
            table.add_row(Text(safe(obj.key)), size(obj.size), row["last_modified"])
        out.console.print(table)
        out.console.print(f"{len(result.objects)} object(s), {size(result.total_bytes)}; "
                          f"at {result.rate:g}/s about {len(result.objects) / result.rate:.0f}s.")
        return
    if not result.objects:
        out.console.print(f"Nothing to replay under {escape(where)} with these filters.")
        return
    out.console.print(
        f"Replayed {result.published} object(s) ({size(result.total_bytes)}) from "
        f"{escape(where)} to {escape(result.topic)} in {result.seconds:.1f}s as "
        f"[bold]{result.replay_name}[/]. Follow them with `pipelinectl logs --filter "
        f"{result.replay_name}`.")


def findings(out: Renderer, found: list[Finding], header: dict[str, str]) -> None:
    if out.json:
        out.emit_json({**header, "ok": not any(f.level == "fail" for f in found),
                       "counts": {level: sum(f.level == level for f in found)
                                  for level in ("ok", "warn", "fail")},
                       "checks": [f.as_dict() for f in found]})
        return
    title = " ".join(f"{k}={v}" for k, v in header.items())
    table = Table(title=f"Doctor ({title})", title_justify="left")
    for column in ("check", "result", "why", "fix"):
        table.add_column(column, overflow="fold")
    for finding in found:
        table.add_row(finding.check, Text(finding.level, style=LEVEL_STYLE[finding.level]),
                      Text(safe(finding.reason)), Text(safe(finding.fix)))
    out.console.print(table)
    counts = {level: sum(f.level == level for f in found) for level in ("ok", "warn", "fail")}
    out.console.print(", ".join(f"{n} {level}" for level, n in counts.items()))


def file_run_lines(run: FileRun, title: str) -> list[tuple[str, str]]:
    """`status` and `test`: one line of what the run did, one of what to do if it failed."""
    parts = (f"{run.parts_done}/{run.parts_total} parts" if run.parts_total is not None
             else f"{run.parts_done} part(s) done, still planning")
    counts = run.counts
    so_far = "" if run.state == "complete" else " so far"
    line = (f"{title}: {run.uri} ({run.mode or 'unknown mode'}, {parts}): "
            f"{counts.rows:,} rows{so_far}: {counts.stored:,} stored, "
            f"{counts.unchanged:,} unchanged, {counts.rejected:,} rejected")
    if run.state == "complete":
        line += f" in {run.seconds or 0:.1f}s"
    elif run.state == "running":
        line += f"; running since {run.started_at:%Y-%m-%d %H:%M:%S}Z" if run.started_at \
            else "; running"
    if run.rejects_objects:
        line += f"; rejects in {len(run.rejects_objects)} object(s), e.g. " \
            f"{run.rejects_objects[0]}"
    if run.state != "failed":
        return [(line, "green" if run.state == "complete" else "yellow")]
    return [(line, ""), (f"Failed: {run.failed_reason}", "bold red"),
            (str(run.advice), "yellow")]
