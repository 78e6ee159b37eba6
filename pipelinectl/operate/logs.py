"""`logs`: the processor's log events, once or followed.

FilterLogEvents over the whole log group (every stream, interleaved by time) is what a user
wants from "show me the function's logs"; `--follow` polls it from the last timestamp seen,
de-duplicating by event id because consecutive polls deliberately overlap (lines can be
shipped after newer ones were already shown).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pipelinectl.engine import aws_errors
from pipelinectl.errors import PipelineError, UsageError
from pipelinectl.resources.base import Context

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)([smhdw])")
FOLLOW_INTERVAL = 1.0
FOLLOW_OVERLAP_MS = 10_000
PAGE_LIMIT = 10_000  # FilterLogEvents maximum


@dataclass(frozen=True)
class LogEvent:
    timestamp: int  # epoch milliseconds
    stream: str
    message: str
    event_id: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_since(text: str, now: float | None = None, option: str = "--since") -> int:
    """`10m`, `1h30m`, `2d`, `45s` ago, or an ISO 8601 time -> epoch milliseconds.

    CloudWatch Logs counts time from 1970-01-01 (FilterLogEvents startTime, milliseconds,
    minimum 0), so anything earlier means "from the start": 0, not botocore's parameter
    error. A time in the future finds nothing and is refused."""
    now = time.time() if now is None else now
    compact = text.strip().lower().replace(" ", "")
    if compact and _DURATION.sub("", compact) == "":
        seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(compact))
        return max(0, int((now - seconds) * 1000))
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is neither a duration (10m, 1h, 2d) nor an ISO "
                         "8601 time (2024-08-09T12:00:00Z).") from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()  # a naive time is the user's local time
        epoch_ms = int(moment.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):  # year 1 in a zone east of UTC, say
        epoch_ms = 0 if moment.year < 1970 else int(now * 1000) + 1
    if epoch_ms > now * 1000:
        raise UsageError(f"{option} {text!r} is in the future; give a past time or a duration "
                         "such as 10m.")
    return max(0, epoch_ms)


def filter_pattern(text: str | None) -> str | None:
    """Plain text becomes an exact-phrase pattern; `{...}`, `[...]`, `"..."`, `?a ?b` stay."""
    if not text:
        return None
    if text[0] in '{["?':
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fetch(ctx: Context, start_ms: int, pattern: str | None = None,
          end_ms: int | None = None) -> list[LogEvent]:
    """Every matching event from `start_ms` on, oldest first (all pages)."""
    group = ctx.names.log_group
    logs = ctx.client("logs")
    params: dict[str, Any] = {"logGroupName": group, "startTime": start_ms,
                              "limit": PAGE_LIMIT}
    if end_ms is not None:
        params["endTime"] = end_ms
    if pattern:
        params["filterPattern"] = pattern
    events: list[LogEvent] = []
    with aws_errors(ctx):
        try:
            for page in logs.get_paginator("filter_log_events").paginate(**params):
                events.extend(_event(e) for e in page.get("events", []))
        except logs.exceptions.ResourceNotFoundException as exc:
            raise PipelineError(
                f"The log group {group} does not exist: run `pipelinectl up` (or "
                "`pipelinectl lambda`) first."
            ) from exc
    return sorted(events, key=lambda e: (e.timestamp, e.event_id))


def follow(ctx: Context, start_ms: int, pattern: str | None = None, *,
           interval: float = FOLLOW_INTERVAL, sleep: Callable[[float], None] = time.sleep,
           polls: int | None = None) -> Iterator[LogEvent]:
    """Yield events as they arrive until interrupted (or after `polls` polls, for tests).

    Each poll looks back FOLLOW_OVERLAP_MS before the newest event seen: an invocation's log
    lines are shipped when it ends, so they can be older than lines already shown.
    """
    seen: dict[str, int] = {}
    newest = start_ms
    count = 0
    while polls is None or count < polls:
        count += 1
        since = max(start_ms, newest - FOLLOW_OVERLAP_MS)
        fresh = [e for e in fetch(ctx, since, pattern) if e.event_id not in seen]
        yield from fresh
        newest = max([newest, *(e.timestamp for e in fresh)])
        seen.update((e.event_id, e.timestamp) for e in fresh)
        seen = {k: t for k, t in seen.items() if t >= newest - FOLLOW_OVERLAP_MS}
        if polls is None or count < polls:
            sleep(interval)


def _event(raw: dict[str, Any]) -> LogEvent:
    timestamp = int(raw.get("timestamp", 0))
    event_id = str(raw.get("eventId") or f"{timestamp}:{raw.get('logStreamName')}:"
                   f"{hash(raw.get('message'))}")
    return LogEvent(timestamp, str(raw.get("logStreamName", "")),
                    str(raw.get("message", "")).rstrip("\n"), event_id)
