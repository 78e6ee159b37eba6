"""CloudWatch metric alarm evaluation over the metric data moto holds (moto never evaluates).

Each evaluation looks at the last EvaluationPeriods periods ending now (rolling windows rather
than AWS's aligned ones, so tests need not wait for a minute boundary), computes the statistic
per period, applies DatapointsToAlarm and TreatMissingData, and when the state changes calls
SetAlarmState and publishes AWS's alarm notification JSON to the SNS actions of the new state.
Metric math alarms, anomaly detection and extended statistics (percentiles) are not evaluated.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipelinectl.localaws import enforce
from pipelinectl.localaws._aws import Clients, regional_backends

log = logging.getLogger(__name__)

INSUFFICIENT = "INSUFFICIENT_DATA"
_RETENTION_S = 24 * 3600
_UNCHECKED = "Unchecked"  # moto's reason for a new alarm, which it leaves in OK

_COMPARE: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
_REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-central-1": "EU (Frankfurt)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
}


@dataclass
class _Point:
    at: float  # epoch seconds
    count: float
    total: float
    low: float
    high: float


@dataclass
class _Series:
    points: list[_Point] = field(default_factory=list)

    def window(self, start: float, end: float) -> list[_Point]:
        return [p for p in self.points if start <= p.at < end]


def statistic(points: list[_Point], name: str) -> float | None:
    if not points:
        return None
    count = sum(p.count for p in points)
    total = sum(p.total for p in points)
    values = {
        "SampleCount": count,
        "Sum": total,
        "Average": total / count if count else 0.0,
        "Minimum": min(p.low for p in points),
        "Maximum": max(p.high for p in points),
    }
    return values.get(name)


def _epoch(ts: datetime) -> float:
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def _series_key(namespace: str, name: str, dims: Any, unit: Any) -> tuple[Any, ...]:
    return (namespace, name, frozenset((d.name, d.value) for d in dims), unit)


def decide(alarm: Any, values: list[float | None]) -> tuple[str | None, list[float | None]]:
    """New state (None = keep the current one) from per-period values, newest first."""
    compare, _ = _COMPARE[alarm.comparison_operator]
    needed = int(alarm.datapoints_to_alarm or alarm.evaluation_periods)
    treat = alarm.treat_missing_data or "missing"
    if all(v is None for v in values):
        if treat == "breaching":
            return ("ALARM" if len(values) >= needed else "OK"), values
        return {"notBreaching": "OK", "ignore": None}.get(treat, INSUFFICIENT), values
    breaching = 0
    for v in values:
        if v is None:
            breaching += treat == "breaching"
        else:
            breaching += compare(v, float(alarm.threshold))
    return ("ALARM" if breaching >= needed else "OK"), values


class AlarmEvaluator:
    """Evaluates every metric alarm of every account/region moto holds."""

    def __init__(self, clients: Clients) -> None:
        self._clients = clients
        self._series: dict[tuple[str, str], dict[tuple[Any, ...], _Series]] = {}
        self._ingested: dict[tuple[str, str], int] = {}

    def evaluate_all(self, now: float | None = None) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        now = time.time() if now is None else now
        for account, region, backend in regional_backends(cloudwatch_backends):
            series = self._ingest((account, region), backend, now)
            for alarm in list(backend.alarms.values()):
                if alarm.metric_data_queries or not alarm.metric_name:
                    continue
                if alarm.comparison_operator not in _COMPARE or alarm.extended_statistic:
                    continue
                try:
                    self._evaluate(alarm, series, region, account, now)
                except Exception:
                    log.exception("evaluating alarm %s failed", alarm.name)

    def _ingest(self, key: tuple[str, str], backend: Any, now: float) -> dict[Any, _Series]:
        data = backend.metric_data
        start = self._ingested.get(key, 0)
        if len(data) < start:  # moto was reset
            start = 0
            self._series.pop(key, None)
        series = self._series.setdefault(key, {})
        new = data[start:]
        self._ingested[key] = start + len(new)
        for d in new:
            if hasattr(d, "value"):
                v = float(d.value)
                point = _Point(_epoch(d.timestamp), 1.0, v, v, v)
            else:
                point = _Point(_epoch(d.timestamp), d.sample_count, d.sum, d.min, d.max)
            for unit in {None, d.unit}:
                skey = _series_key(d.namespace, d.name, d.dimensions, unit)
                series.setdefault(skey, _Series()).points.append(point)
        if new:
            for s in series.values():
                if s.points and s.points[0].at < now - _RETENTION_S:
                    s.points = [p for p in s.points if p.at >= now - _RETENTION_S]
        return series

    def _evaluate(
        self, alarm: Any, series: dict[Any, _Series], region: str, account: str, now: float
    ) -> None:
        skey = _series_key(alarm.namespace, alarm.metric_name, alarm.dimensions, alarm.unit)
        s = series.get(skey, _Series())
        period = int(alarm.period)
        values = [
            statistic(s.window(now - (i + 1) * period, now - i * period), alarm.statistic)
            for i in range(int(alarm.evaluation_periods))
        ]
        new_state, _ = decide(alarm, values)
        unchecked = alarm.state_reason.startswith(_UNCHECKED)
        old_state = INSUFFICIENT if unchecked else alarm.state_value
        if new_state is None or (new_state == old_state and not unchecked):
            return
        reason, reason_data = self._reason(alarm, values, new_state, now)
        self._clients("cloudwatch", region).set_alarm_state(
            AlarmName=alarm.name,
            StateValue=new_state,
            StateReason=reason,
            StateReasonData=json.dumps(reason_data),
        )
        if new_state == old_state:
            return
        log.info("alarm %s: %s → %s", alarm.name, old_state, new_state, extra={"activity": "alarm"})
        if alarm.actions_enabled:
            self._notify(alarm, old_state, new_state, reason, region, account, now)

    @staticmethod
    def _reason(
        alarm: Any, values: list[float | None], state: str, now: float
    ) -> tuple[str, dict[str, Any]]:
        present = [v for v in values if v is not None]
        _, words = _COMPARE[alarm.comparison_operator]
        stamp = datetime.fromtimestamp(now, UTC)
        if not present:
            reason = (
                f"Insufficient Data: {len(values)} datapoint(s) were unknown."
                if state == INSUFFICIENT
                else f"Missing data treated as {alarm.treat_missing_data}."
            )
        else:
            shown = ", ".join(f"{v} ({stamp:%d/%m/%y %H:%M:%S})" for v in present)
            verb = "was" if state == "ALARM" else "was not"
            reason = (
                f"Threshold Crossed: {len(present)} out of the last {len(values)} datapoints "
                f"[{shown}] {verb} {words} the threshold ({float(alarm.threshold)})."
            )
        data = {
            "version": "1.0",
            "queryDate": stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
            "statistic": alarm.statistic,
            "period": int(alarm.period),
            "recentDatapoints": present,
            "threshold": float(alarm.threshold),
            "evaluatedDatapoints": [{"value": v} for v in present],
        }
        return reason, data

    def _notify(
        self, alarm: Any, old: str, new: str, reason: str, region: str, account: str, now: float
    ) -> None:
        actions = {"ALARM": alarm.alarm_actions, "OK": alarm.ok_actions}.get(
            new, alarm.insufficient_data_actions
        )
        topics = [a for a in actions or [] if a.split(":")[2:3] == ["sns"]]
        if not topics:
            return
        region_name = _REGION_NAMES.get(region, region)
        message = _notification(alarm, old, new, reason, region_name, account, now)
        subject = f'{new}: "{alarm.name}" in {region_name}'
        if len(subject) > 100:
            subject = subject[:97] + "..."
        for topic in topics:
            topic_region = topic.split(":")[3]
            try:
                enforce.authorize_publish("cloudwatch.amazonaws.com", alarm.alarm_arn, topic)
            except enforce.DeliveryRefused as refused:
                _record_failed_action(alarm, topic, refused.message)
                continue
            try:
                self._clients("sns", topic_region).publish(
                    TopicArn=topic, Subject=subject, Message=json.dumps(message)
                )
            except Exception as exc:
                log.warning("alarm %s: could not notify %s: %s", alarm.name, topic, exc)


def _record_failed_action(alarm: Any, topic: str, error: str) -> None:
    """An alarm action the topic refused, in the alarm's history as CloudWatch records it
    (AWS re:Post knowledge center, "Why didn't I receive an SNS notification for my CloudWatch
    alarm trigger?": ``Failed to execute action <topic>. Received error: "<error>"``). moto
    keeps the history in ``alarm.history`` but serves no DescribeAlarmHistory."""
    summary = f'Failed to execute action {topic}. Received error: "{error}"'
    alarm.history.append(("Action", summary, json.dumps({"actionState": "Failed",
                                                         "notificationResource": topic,
                                                         "error": error}),
                          alarm.state_value, datetime.now(UTC)))


def _notification(alarm: Any, old: str, new: str, reason: str, region_name: str,
                  account: str, now: float) -> dict[str, Any]:
    """The JSON CloudWatch publishes to an alarm action's topic, in AWS's field names."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description or None,
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": alarm.configuration_updated_timestamp.strftime(
            "%Y-%m-%dT%H:%M:%S.%f"
        )[:-3]
        + "+0000",
        "NewStateValue": new,
        "NewStateReason": reason,
        "StateChangeTime": stamp,
        "Region": region_name,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old,
        "OKActions": list(alarm.ok_actions or []),
        "AlarmActions": list(alarm.alarm_actions or []),
        "InsufficientDataActions": list(alarm.insufficient_data_actions or []),
        "Trigger": {
            "MetricName": alarm.metric_name,
            "Namespace": alarm.namespace,
            "StatisticType": "Statistic",
            "Statistic": str(alarm.statistic).upper(),
            "Unit": alarm.unit,
            "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
            "Period": int(alarm.period),
            "EvaluationPeriods": int(alarm.evaluation_periods),
            "DatapointsToAlarm": int(alarm.datapoints_to_alarm or alarm.evaluation_periods),
            "ComparisonOperator": alarm.comparison_operator,
            "Threshold": float(alarm.threshold),
            "TreatMissingData": alarm.treat_missing_data or "missing",
            "EvaluateLowSampleCountPercentile": "",
        },
    }
