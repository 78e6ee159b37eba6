"""`pipelinectl top` on screen: a rich Live view on a terminal, plain text elsewhere.

Plain text (no colour, no cursor movement, no escape sequence at all) when the output is not
a terminal, when TERM is dumb (rich: Console.is_dumb_terminal), or when NO_COLOR is set to a
non-empty value (no-color.org): rich alone would keep bold and dim under NO_COLOR, so the
console is made without a colour system, which renders every style as its bare text.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipelinectl.operate.top import Series, Snapshot
from pipelinectl.render import PIPED_WIDTH

#: What rich gives a dumb terminal (rich.console.Console.size).
DUMB_WIDTH = 80

BLOCKS = "▁▂▃▄▅▆▇█"
ASCII_LEVELS = "_.-=+*#@"
ALARM_STYLE = {"OK": "green", "ALARM": "bold red", "INSUFFICIENT_DATA": "yellow",
               "missing": "dim"}
THROUGHPUT = ("stored", "rejected", "alerted", "dead_lettered")
LAMBDA = ("invocations", "errors", "throttles", "duration_avg", "duration_max", "concurrency")
QUEUES = ("queue_visible", "queue_in_flight", "queue_oldest_age", "dlq_visible")
#: Series whose non-zero value is bad news, shown in red.
BAD = {"rejected", "dead_lettered", "errors", "throttles", "dlq_visible"}


def plain_wanted(console: Console) -> bool:
    return bool(os.environ.get("NO_COLOR")) or not console.is_terminal \
        or console.is_dumb_terminal


def console() -> Console:
    """The console `top` writes to; without a colour system (no escape codes) when NO_COLOR
    is set."""
    no_color = bool(os.environ.get("NO_COLOR"))
    # rich draws a dumb terminal 80 wide only when given no width and no height (LINES set
    # alone, as pytest-xdist's workers have it, skips that rule): say it ourselves.
    dumb = os.environ.get("TERM", "").lower() in ("dumb", "unknown")
    width = DUMB_WIDTH if dumb else None if sys.stdout.isatty() else PIPED_WIDTH
    return Console(highlight=False, color_system=None if no_color else "auto", width=width)


def sparkline(points: Sequence[float | None], *, unicode: bool = True) -> str:
    """One character per point, scaled from 0 to the window's peak; a gap for no data."""
    levels = BLOCKS if unicode else ASCII_LEVELS
    peak = max((p for p in points if p is not None), default=0.0)
    chars = []
    for point in points:
        if point is None:
            chars.append(" ")
        elif peak <= 0 or point <= 0:
            chars.append(levels[0])
        else:
            chars.append(levels[min(len(levels) - 1, int(point / peak * (len(levels) - 1)
                                                         + 0.999))])
    return "".join(chars)


def fold(points: Sequence[float | None], size: int, *, counter: bool) -> list[float | None]:
    """`size` consecutive points as one: summed for a counter, the maximum for a level (a
    narrow terminal gets 2 or 3 minutes per mark instead of a truncated line)."""
    folded: list[float | None] = []
    for i in range(0, len(points), size):
        known = [p for p in points[i:i + size] if p is not None]
        folded.append(None if not known else sum(known) if counter else max(known))
    return folded


def minutes_per_mark(width: int) -> int:
    """60 marks need about 120 columns with the figures beside them; rich draws a dumb
    terminal 80 wide."""
    return 1 if width >= 120 else 2 if width >= 95 else 3


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if value.is_integer() or abs(value) >= 100 else f"{value:,.1f}"
    return f"{text} {unit}".rstrip()


def view(snap: Snapshot, *, interval: float | None, unicode: bool,
         width: int = 200) -> RenderableType:
    """The whole screen: header, series with sparklines, queues now, alarms."""
    per_mark = minutes_per_mark(width)
    table_box = box.SIMPLE_HEAD if unicode else box.ASCII2
    when = datetime.fromtimestamp(snap.taken_at, UTC).strftime("%H:%M:%S UTC")
    refresh = f", refresh every {interval:g}s, Ctrl-C quits" if interval else ""
    header = Text(f"pipelinectl top  pipeline {snap.pipeline} ({snap.region})  {when}"
                  f"{refresh}", style="bold")
    series = Table(box=table_box, title_justify="left", pad_edge=False,
                   title=f"Per minute over the last hour ({snap.start:%H:%M}-{snap.end:%H:%M}"
                         f" UTC, oldest left{_per_mark_note(per_mark)})")
    for column, justify in (("", "left"), ("last 60 min", "left"), ("last", "right"),
                            ("peak", "right"), ("total", "right")):
        series.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for group, keys in (("transactions", THROUGHPUT), ("lambda", LAMBDA),
                        ("queues", QUEUES)):
        series.add_row(Text(group, style="bold cyan"))
        for key in keys:
            series.add_row(*_series_row(snap.series[key], key, unicode, per_mark))
    return Group(header, series, _now(snap), _alarms(snap, table_box))


def _per_mark_note(per_mark: int) -> str:
    return "" if per_mark == 1 else f", {per_mark} minutes per mark"


def _series_row(series: Series, key: str, unicode: bool, per_mark: int) -> list[Text]:
    spec = series.spec
    bad = key in BAD and series.total > 0
    style = "red" if bad else "green" if spec.counter else ""
    marks = sparkline(fold(series.points, per_mark, counter=spec.counter), unicode=unicode)
    return [Text(f"  {spec.label}"), Text(marks, style=style),
            Text(_number(series.latest, spec.unit)), Text(_number(series.peak, spec.unit)),
            Text(_number(series.total) if spec.counter else "")]


def _now(snap: Snapshot) -> Text:
    """The queues as SQS reports them at this moment (metrics lag a minute or more)."""
    text = Text("Now, from SQS:", style="bold")
    for label, queue in (("queue", snap.queue), ("DLQ", snap.dlq)):
        if queue is None:
            text.append(f"\n  {label} missing (run pipelinectl up)", style="dim")
            continue
        style = "red" if label == "DLQ" and queue.visible + queue.in_flight else ""
        text.append(f"\n  {label} {queue.name}: {queue.visible} waiting, {queue.in_flight} "
                    "in flight", style=style)
    return text


def _alarms(snap: Snapshot, table_box: box.Box) -> Table:
    table = Table(box=table_box, title="Alarms", title_justify="left", pad_edge=False)
    table.add_column("alarm", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("watches", overflow="fold")  # what gives way on a narrow terminal
    for alarm in snap.alarms:
        table.add_row(alarm.name, Text(alarm.state, style=ALARM_STYLE.get(alarm.state, "")),
                      Text(alarm.watches, style="dim"))
    return table


def show_once(out: Console, snap: Snapshot) -> None:
    out.print(view(snap, interval=None, unicode=_unicode(out), width=out.width))


def _unicode(out: Console) -> bool:
    return out.encoding.lower().startswith("utf")


def run(out: Console, collect: Callable[[], Snapshot], interval: float, *,
        as_json: bool = False) -> None:
    """Refresh every `interval` seconds until Ctrl-C (KeyboardInterrupt, left to the caller,
    which exits cleanly). JSON: one object per line and refresh. Plain: one snapshot after
    another, nothing redrawn."""
    if as_json:
        while True:
            sys.stdout.write(json.dumps(collect().as_dict(), sort_keys=True) + "\n")
            sys.stdout.flush()
            time.sleep(interval)
    if plain_wanted(out):
        while True:
            out.print(view(collect(), interval=interval, unicode=_unicode(out),
                           width=out.width))
            out.print()
            time.sleep(interval)
    unicode = _unicode(out)
    with Live(view(collect(), interval=interval, unicode=unicode, width=out.width),
              console=out,
              auto_refresh=False, screen=False) as live:
        while True:
            time.sleep(interval)
            live.update(view(collect(), interval=interval, unicode=unicode, width=out.width),
                        refresh=True)
