"""`pipelinectl top` against moto in-process: the calls a refresh makes (one GetMetricData
within AWS's limits), series placed by timestamp, pages followed, and Ctrl-C as a clean
exit. The figures against real traffic are in test_see_e2e.py."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from pipelinectl.cli import main
from pipelinectl.operate.top import MAX_QUERIES_PER_CALL, Top, window
from pipelinectl.render_top import sparkline
from pipelinectl.resources.base import Context

NOW = datetime(2026, 3, 2, 10, 30, 25, tzinfo=UTC)  # mid-minute on purpose


def _calls(ctx: Context) -> list[tuple[str, str]]:
    return [(c.service, c.operation) for c in ctx.factory.calls]


def test_a_refresh_is_one_get_metric_data_call_within_aws_limits(ctx: Context) -> None:
    Top(ctx).snapshot(NOW.timestamp())
    metric_calls = [c for c in ctx.factory.calls if c.operation == "GetMetricData"]
    assert len(metric_calls) == 1
    params = metric_calls[0].params
    queries = params["MetricDataQueries"]
    assert 0 < len(queries) <= MAX_QUERIES_PER_CALL  # GetMetricData API Reference
    assert all(q["MetricStat"]["Period"] % 60 == 0 for q in queries)  # MetricStat, Period
    assert all(q["Id"][0].islower() for q in queries)  # MetricDataQuery Id: lowercase first
    start, end = params["StartTime"], params["EndTime"]
    assert (start.second, end.second) == (0, 0)  # on minute boundaries
    assert end - start == timedelta(hours=1)
    assert start <= NOW < end  # the minute in progress is the newest point
    assert sorted(_calls(ctx)) == sorted([
        ("sqs", "GetQueueUrl"), ("sqs", "GetQueueUrl"), ("cloudwatch", "GetMetricData"),
        ("sqs", "GetQueueAttributes"), ("sqs", "GetQueueAttributes"),
        ("cloudwatch", "DescribeAlarms")])


def test_a_second_refresh_does_not_look_the_queues_up_again(ctx: Context) -> None:
    top = Top(ctx)
    top.snapshot(NOW.timestamp())
    ctx.factory.calls.clear()
    top.snapshot(NOW.timestamp() + 5)
    assert ("sqs", "GetQueueUrl") not in _calls(ctx)
    assert len(_calls(ctx)) == 4


def _put(ctx: Context, namespace: str, metric: str, dims: tuple[str, str], value: float,
         minutes_ago: int) -> None:
    ctx.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[{
        "MetricName": metric, "Value": value, "Dimensions": [{"Name": dims[0],
                                                               "Value": dims[1]}],
        "Timestamp": NOW - timedelta(minutes=minutes_ago)}])


def test_points_are_placed_by_their_minute_and_gaps_are_honest(ctx: Context) -> None:
    names = ctx.names
    emf = ("service", names.function)
    _put(ctx, "pipelinectl/ecommerce", "TransactionsStored", emf, 3, 5)
    _put(ctx, "pipelinectl/ecommerce", "TransactionsStored", emf, 4, 5)
    _put(ctx, "pipelinectl/ecommerce", "TransactionsStored", emf, 2, 0)
    _put(ctx, "pipelinectl/other", "TransactionsStored", emf, 100, 0)  # not ours
    _put(ctx, "AWS/SQS", "ApproximateNumberOfMessagesVisible", ("QueueName", names.queue), 7,
         3)
    _put(ctx, "AWS/SQS", "ApproximateNumberOfMessagesVisible", ("QueueName", names.queue), 9,
         3)
    series = Top(ctx).snapshot(NOW.timestamp()).series
    stored = series["stored"].points
    assert len(stored) == 60
    assert (stored[-6], stored[-1], series["stored"].total) == (7.0, 2.0, 9.0)
    assert sum(stored[:-6]) + sum(stored[-5:-1]) == 0  # a counter's empty minute counted 0
    depth = series["queue_visible"]
    assert depth.points[-4] == 9.0  # Maximum
    assert depth.points.count(None) == 59  # a level's empty minute is unknown, not 0
    assert series["errors"].total == 0 and series["duration_avg"].latest is None


def test_every_page_is_read(ctx: Context) -> None:
    """GetMetricData pages past MaxDatapoints with NextToken (API Reference); both pages'
    datapoints count."""
    start, end = window(NOW.timestamp())
    minute = start + timedelta(minutes=10)
    cloudwatch = ctx.client("cloudwatch")
    with Stubber(cloudwatch) as stub:
        stub.add_response("get_metric_data", {"NextToken": "page-2", "MetricDataResults": [
            {"Id": "stored", "Timestamps": [minute], "Values": [4.0],
             "StatusCode": "PartialData"}]})
        stub.add_response("get_metric_data", {"MetricDataResults": [
            {"Id": "stored", "Timestamps": [minute + timedelta(minutes=1)], "Values": [1.0],
             "StatusCode": "Complete"}]}, {"MetricDataQueries": stub_any(),
                                           "StartTime": start, "EndTime": end,
                                           "NextToken": "page-2"})
        series = Top(ctx).series(start, end)
        stub.assert_no_pending_responses()
    assert series["stored"].points[10:12] == (4.0, 1.0)


def stub_any() -> Any:
    from botocore.stub import ANY

    return ANY


def test_sparkline_scales_to_the_peak_and_leaves_gaps() -> None:
    assert sparkline([0, 4, 8, None]) == "▁▅█ "
    assert sparkline([0, 4, 8, None], unicode=False) == "_+@ "
    assert sparkline([0, 0]) == "▁▁"


@pytest.mark.parametrize("env", [{}, {"FORCE_COLOR": "1"}], ids=["plain", "live"])
def test_ctrl_c_ends_top_cleanly(ctx: Context, env: dict[str, str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two refreshes, then Ctrl-C during the wait: exit 0, no traceback, no 'Interrupted'."""
    from pipelinectl import render_top

    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(render_top, "time", types.SimpleNamespace(sleep=sleep))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["top", "--interval", "2"])
    assert result.exit_code == 0, result.output
    assert slept == [2, 2]
    assert "Traceback" not in result.output and "Interrupted" not in result.output
    assert "pipelinectl top" in result.output
    if not env:  # plain: one snapshot printed after the other
        assert result.output.count("pipelinectl top  pipeline ecommerce") == 2
