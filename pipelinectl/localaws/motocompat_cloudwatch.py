"""Patch k: CloudWatch GetMetricData answers as AWS does (registered in motocompat._patches).

Measured on moto 5.2.5 with the queries `pipelinectl top` makes:

- a query that names dimensions is matched on metric name and dimensions only, not on its
  namespace: the same metric name and dimensions in two namespaces are summed together, and a
  namespace holding nothing still returns the other namespace's data. AWS identifies a metric
  by namespace, name and dimensions (CloudWatch User Guide, "Metrics concepts": "A metric is
  uniquely defined by a name, a namespace, and zero or more dimensions"); dimensions are
  compared as a set (moto sorts them with a broken ``Dimension.__lt__``);
- StartTime is used as given, so with a start of 12:32:34 the one-minute buckets run from
  :34 to :34. AWS rounds it down first (CloudWatch API Reference, GetMetricData, StartTime:
  less than 15 days ago to the whole minute, 15 to 63 days ago to 5 minutes, older to the
  hour; with a Period of 1, 5, 10, 20 or 30 seconds to that division of a minute), so the
  datapoints' timestamps are clock-aligned. EndTime is exclusive (same page).

Queries with a math expression or a Metrics Insights query keep moto's own evaluation (the
pipeline makes none); the start time is rounded for them as well.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

_MINUTE = 60
_SUB_MINUTE_PERIODS = (1, 5, 10, 20, 30)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def rounded_start(start: datetime, periods: list[int], now: datetime) -> datetime:
    """StartTime as AWS rounds it (GetMetricData API Reference, StartTime)."""
    start = _utc(start).replace(microsecond=0)
    age = _utc(now) - start
    if periods and max(periods) in _SUB_MINUTE_PERIODS:
        step = max(periods)
    elif age < timedelta(days=15):
        step = _MINUTE
    elif age < timedelta(days=63):
        step = 5 * _MINUTE
    else:
        step = 60 * _MINUTE
    epoch = int(start.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step, UTC)


def get_metric_data_as_aws(original: Callable[..., Any]) -> Callable[..., Any]:
    """Replacement for CloudWatchBackend.get_metric_data (see the module docstring)."""

    def get_metric_data(self: Any, queries: list[dict[str, Any]], start_time: datetime,
                        end_time: datetime, scan_by: str = "TimestampAscending") -> Any:
        periods = [int(q["MetricStat"]["Period"]) for q in queries if "MetricStat" in q]
        start = rounded_start(start_time, periods, datetime.now(UTC))
        end = _utc(end_time).replace(microsecond=0)
        if any("MetricStat" not in q for q in queries) or start >= end:
            return original(self, queries, start, end, scan_by)  # moto's checks and math
        data = [md for md in self.get_all_metrics() if start <= _utc(md.timestamp) < end]
        results = [_stat_result(q, data, start, end) for q in queries]
        if scan_by == "TimestampDescending":
            for result in results:
                result["timestamps"].reverse()
                result["values"].reverse()
        return [r for r, q in zip(results, queries, strict=True) if q.get("ReturnData", True)]

    return get_metric_data


def _stat_result(query: dict[str, Any], data: list[Any], start: datetime,
                 end: datetime) -> dict[str, Any]:
    """One MetricStat query: clock-aligned buckets of Period seconds in [start, end), only
    those holding data (AWS returns no datapoint for an empty period)."""
    from moto.cloudwatch.models import Statistics

    stat = query["MetricStat"]
    metric = stat["Metric"]
    wanted = {(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])}
    unit = stat.get("Unit")
    matching = [md for md in data
                if md.namespace == metric["Namespace"] and md.name == metric["MetricName"]
                and {(d.name, d.value) for d in md.dimensions} == wanted
                and (not unit or md.unit == unit)]
    period = int(stat["Period"])
    buckets: dict[int, list[Any]] = {}
    for md in matching:
        index = int((_utc(md.timestamp) - start).total_seconds()) // period
        buckets.setdefault(index, []).append(md)
    timestamps, values = [], []
    for index in sorted(buckets):
        moment = start + timedelta(seconds=index * period)
        statistics = Statistics([stat["Stat"]], moment)
        statistics.metric_data = buckets[index]
        value = statistics.get_statistics_for_type(stat["Stat"])
        if value is not None and moment < end:
            timestamps.append(moment)
            values.append(value)
    label = query.get("Label") or f"{metric['MetricName']} {stat['Stat']}"
    return {"id": query["Id"], "label": label, "values": values, "timestamps": timestamps,
            "status_code": "Complete"}
