"""Patch k: GetMetricData matches a metric by namespace, name and dimensions, and buckets
from StartTime rounded down to the whole minute (CloudWatch API Reference, GetMetricData,
StartTime; CloudWatch User Guide, "Metrics concepts"). Measured before the patch: a query on
an empty namespace returned another namespace's datapoints, and one-minute buckets started
at the second StartTime carried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from pipelinectl.localaws.motocompat_cloudwatch import rounded_start

DIMS = [{"Name": "service", "Value": "fn"}]


def _query(key: str, namespace: str, stat: str) -> dict[str, Any]:
    return {"Id": key, "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "M",
                                                 "Dimensions": DIMS},
                                      "Period": 60, "Stat": stat}}


def _two_namespaces() -> dict[str, tuple[list[datetime], list[float]]]:
    """1 and 10 in namespaces a and b at hh:mm:30, then 3 in a two minutes later; query a
    (Sum, Maximum, Average) and the empty namespace c from a StartTime ending in :30."""
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    at = datetime.now(UTC).replace(second=30, microsecond=0) - timedelta(minutes=5)
    for namespace, value in (("a", 1.0), ("b", 10.0)):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=[
            {"MetricName": "M", "Dimensions": DIMS, "Value": value, "Timestamp": at}])
    cloudwatch.put_metric_data(Namespace="a", MetricData=[
        {"MetricName": "M", "Dimensions": DIMS, "Value": 3.0,
         "Timestamp": at + timedelta(minutes=2)}])
    queries = [_query("sum", "a", "Sum"), _query("max", "a", "Maximum"),
               _query("avg", "a", "Average"), _query("empty", "c", "Sum")]
    results = cloudwatch.get_metric_data(
        MetricDataQueries=queries, StartTime=at - timedelta(minutes=10),
        EndTime=at + timedelta(minutes=5), ScanBy="TimestampAscending")["MetricDataResults"]
    return {r["Id"]: ([t.astimezone(UTC) for t in r["Timestamps"]], r["Values"])
            for r in results}


def test_defect_k_moto_mixes_namespaces_and_keeps_the_start_seconds(plain_moto: None) -> None:
    series = _two_namespaces()
    assert series["sum"][1] == [11.0, 3.0]  # b's 10 counted in a
    assert series["empty"][1] == [11.0, 3.0]  # c holds nothing, yet answers
    assert {t.second for t in series["sum"][0]} == {30}  # buckets from hh:mm:30


def test_patch_k_one_namespace_and_clock_aligned_minutes(patched: None) -> None:
    series = _two_namespaces()
    assert series["sum"][1] == [1.0, 3.0]
    assert series["max"][1] == [1.0, 3.0]
    assert series["avg"][1] == [1.0, 3.0]
    assert series["empty"] == ([], [])  # no datapoint for a period without data
    stamps = series["sum"][0]
    assert {t.second for t in stamps} == {0}
    assert stamps[1] - stamps[0] == timedelta(minutes=2)


def test_start_time_rounding_follows_the_api_reference() -> None:
    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    at = datetime(2026, 1, 31, 1, 5, 23, 500, tzinfo=UTC)
    assert rounded_start(at, [60], now) == at.replace(second=0, microsecond=0)
    assert rounded_start(at, [10], now) == at.replace(second=20, microsecond=0)
    old = datetime(2025, 12, 31, 12, 32, 34, tzinfo=UTC)  # 31 days: 5-minute clock
    assert rounded_start(old, [300], now) == old.replace(minute=30, second=0)
    older = datetime(2025, 10, 1, 12, 32, 34, tzinfo=UTC)  # > 63 days: the hour
    assert rounded_start(older, [3600], now) == older.replace(minute=0, second=0)
