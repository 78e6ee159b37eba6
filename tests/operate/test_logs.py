"""logs: --since parsing, --filter patterns, fetching and following the log group."""

from __future__ import annotations

import time

import pytest

from pipelinectl.errors import PipelineError, UsageError
from pipelinectl.operate import logs
from pipelinectl.resources.base import Context

NOW = 1_700_000_000.0


@pytest.mark.parametrize(("text", "seconds_ago"), [
    ("10m", 600), ("30s", 30), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1w", 604800),
])
def test_since_durations(text: str, seconds_ago: int) -> None:
    assert logs.parse_since(text, NOW) == int((NOW - seconds_ago) * 1000)


def test_since_iso_time() -> None:
    assert logs.parse_since("2023-11-14T22:13:20Z", NOW) == 1_700_000_000_000


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "", "5x"])
def test_since_nonsense_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--since"):
        logs.parse_since(text, NOW)


def test_filter_text_becomes_an_exact_phrase_and_patterns_pass_through() -> None:
    assert logs.filter_pattern(None) is None
    assert logs.filter_pattern("batch processed") == '"batch processed"'
    assert logs.filter_pattern('say "hi"') == '"say \\"hi\\""'
    assert logs.filter_pattern('{ $.level = "ERROR" }') == '{ $.level = "ERROR" }'


def _group(ctx: Context) -> None:
    client = ctx.client("logs")
    client.create_log_group(logGroupName=ctx.names.log_group)
    client.create_log_stream(logGroupName=ctx.names.log_group, logStreamName="a")
    client.create_log_stream(logGroupName=ctx.names.log_group, logStreamName="b")


def _put(ctx: Context, stream: str, at_ms: int, message: str) -> None:
    ctx.client("logs").put_log_events(logGroupName=ctx.names.log_group, logStreamName=stream,
                                      logEvents=[{"timestamp": at_ms, "message": message}])


def test_fetch_interleaves_streams_oldest_first_and_filters(ctx: Context) -> None:
    _group(ctx)
    now = int(time.time() * 1000)
    _put(ctx, "b", now - 2000, "START RequestId: 2")
    _put(ctx, "a", now - 3000, "START RequestId: 1")
    _put(ctx, "a", now - 1000, '{"level":"INFO","message":"batch processed"}')
    _put(ctx, "a", now - 900_000, "too old")
    events = logs.fetch(ctx, now - 600_000)
    assert [e.message for e in events] == ["START RequestId: 1", "START RequestId: 2",
                                           '{"level":"INFO","message":"batch processed"}']
    assert [e.stream for e in events] == ["a", "b", "a"]
    only = logs.fetch(ctx, now - 600_000, logs.filter_pattern("batch processed"))
    assert len(only) == 1


def test_follow_yields_each_event_once_including_late_shipped_ones(ctx: Context) -> None:
    _group(ctx)
    now = int(time.time() * 1000)
    _put(ctx, "a", now - 5000, "first")

    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            _put(ctx, "b", now - 6000, "shipped late")  # older than what was already shown
            _put(ctx, "a", now - 1000, "second")

    events = list(logs.follow(ctx, now - 60_000, sleep=sleep, polls=3))
    assert sorted(e.message for e in events) == ["first", "second", "shipped late"]
    assert sleeps == [logs.FOLLOW_INTERVAL] * 2


def test_missing_log_group_says_run_up(ctx: Context) -> None:
    with pytest.raises(PipelineError, match="does not exist: run `pipelinectl up`"):
        logs.fetch(ctx, 0)
