"""What `pipelinectl top` shows: the pipeline's throughput, backlog, errors and alarms.

Every time series comes from ONE CloudWatch GetMetricData call per refresh (the processor's
EMF metrics, AWS/Lambda and AWS/SQS); the queues' current depth comes from SQS itself
(GetQueueAttributes, one call per queue: SQS's metrics reach CloudWatch a minute or more
late) and the alarms' states from one DescribeAlarms call. So a refresh is four calls.

AWS rules this follows (CloudWatch API Reference, GetMetricData and MetricStat):
- at most 500 MetricDataQuery structures per call (we make 14);
- StartTime is inclusive and rounded down to the minute, EndTime exclusive; both are put on
  minute boundaries here, as the reference advises for speed;
- a standard-resolution metric's Period is a multiple of 60 (one-minute data is kept for
  15 days, so a one-hour window of 60-second periods is always available);
- an empty period has no datapoint; results come newest first by default (ScanBy
  TimestampDescending), so each datapoint is placed by its timestamp, never by position;
- at most MaxDatapoints (default 100,800) per response, more behind NextToken: the boto3
  paginator follows it (60 x 14 = 840 datapoints here, one page).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelinectl.operate.targets import Targets
from pipelinectl.resources.alarms import alarm_name, alarm_specs
from pipelinectl.resources.base import Context
from pipelinectl.resources.function import metrics_namespace

MAX_QUERIES_PER_CALL = 500  # GetMetricData API Reference, MetricDataQueries
PERIOD_SECONDS = 60  # a multiple of 60 for standard-resolution metrics (MetricStat, Period)
WINDOW_MINUTES = 60


@dataclass(frozen=True)
class MetricSpec:
    """One series: which metric, which statistic, and how to read a missing period."""

    key: str
    label: str
    namespace: str
    metric: str
    dimension: tuple[str, str]
    stat: str
    #: A count with no datapoint in a period counted nothing (the processor sends its
    #: counters on every invocation, Lambda its Errors with every invocation); a level
    #: (queue depth, duration) with none is unknown, shown as a gap.
    counter: bool
    unit: str = ""

    def query(self) -> dict[str, Any]:
        """MetricDataQuery Id: letters, digits, underscore, a lowercase letter first, unique
        in the call (CloudWatch API Reference, MetricDataQuery)."""
        return {"Id": self.key, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": self.namespace, "MetricName": self.metric,
                       "Dimensions": [{"Name": self.dimension[0],
                                       "Value": self.dimension[1]}]},
            "Period": PERIOD_SECONDS, "Stat": self.stat}}


def metric_specs(ctx: Context) -> list[MetricSpec]:
    """The series `top` draws. The processor's EMF metrics live in the namespace
    POWERTOOLS_METRICS_NAMESPACE (function.metrics_namespace) with Powertools' `service`
    dimension (POWERTOOLS_SERVICE_NAME, the function's name); names from handler.py."""
    names = ctx.names
    namespace, service = metrics_namespace(ctx), ("service", names.function)
    fn = ("FunctionName", names.function)
    queue, dlq = ("QueueName", names.queue), ("QueueName", names.dlq)

    def emf(key: str, label: str, metric: str) -> MetricSpec:
        return MetricSpec(key, label, namespace, metric, service, "Sum", True)

    return [
        emf("stored", "stored", "TransactionsStored"),
        emf("rejected", "rejected", "TransactionsRejected"),
        emf("alerted", "alerted", "AlertsSent"),
        emf("dead_lettered", "dead-lettered", "MessagesDeadLettered"),
        # Lambda Developer Guide, "Types of metrics for Lambda functions": Invocations,
        # Errors, Throttles (Sum), Duration (ms; Average, Maximum), ConcurrentExecutions (view
        # it with Maximum, "Monitoring concurrency").
        MetricSpec("invocations", "invocations", "AWS/Lambda", "Invocations", fn, "Sum", True),
        MetricSpec("errors", "errors", "AWS/Lambda", "Errors", fn, "Sum", True),
        MetricSpec("throttles", "throttles", "AWS/Lambda", "Throttles", fn, "Sum", True),
        MetricSpec("duration_avg", "duration avg", "AWS/Lambda", "Duration", fn, "Average",
                   False, "ms"),
        MetricSpec("duration_max", "duration max", "AWS/Lambda", "Duration", fn, "Maximum",
                   False, "ms"),
        MetricSpec("concurrency", "concurrency", "AWS/Lambda", "ConcurrentExecutions", fn,
                   "Maximum", False),
        # SQS Developer Guide, "Available CloudWatch metrics for Amazon SQS" (Maximum for
        # depths and age, as the pipeline's own alarms use).
        MetricSpec("queue_visible", "queue depth", "AWS/SQS",
                   "ApproximateNumberOfMessagesVisible", queue, "Maximum", False),
        MetricSpec("queue_in_flight", "in flight", "AWS/SQS",
                   "ApproximateNumberOfMessagesNotVisible", queue, "Maximum", False),
        MetricSpec("queue_oldest_age", "oldest message age", "AWS/SQS",
                   "ApproximateAgeOfOldestMessage", queue, "Maximum", False, "s"),
        MetricSpec("dlq_visible", "DLQ depth", "AWS/SQS",
                   "ApproximateNumberOfMessagesVisible", dlq, "Maximum", False),
    ]


@dataclass(frozen=True)
class Series:
    spec: MetricSpec
    #: One value per minute of the window, oldest first; None where a level had no data.
    points: tuple[float | None, ...]

    @property
    def total(self) -> float:
        return sum(p for p in self.points if p is not None)

    @property
    def latest(self) -> float | None:
        return next((p for p in reversed(self.points) if p is not None), None)

    @property
    def peak(self) -> float | None:
        known = [p for p in self.points if p is not None]
        return max(known) if known else None

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.spec.label, "namespace": self.spec.namespace,
                "metric": self.spec.metric, "stat": self.spec.stat, "unit": self.spec.unit,
                "points": list(self.points), "total": self.total if self.spec.counter else None,
                "latest": self.latest, "peak": self.peak}


@dataclass(frozen=True)
class QueueNow:
    name: str
    visible: int
    in_flight: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "visible": self.visible, "in_flight": self.in_flight}


@dataclass(frozen=True)
class AlarmNow:
    name: str
    state: str
    watches: str  # "AWS/SQS ApproximateNumberOfMessagesVisible QueueName=..."

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "watches": self.watches}


@dataclass(frozen=True)
class Snapshot:
    pipeline: str
    region: str
    start: datetime
    end: datetime
    series: dict[str, Series]
    queue: QueueNow | None
    dlq: QueueNow | None
    alarms: list[AlarmNow] = field(default_factory=list)
    taken_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "region": self.region,
                "window": {"start": _iso(self.start), "end": _iso(self.end),
                           "period_seconds": PERIOD_SECONDS},
                "metrics": {key: s.as_dict() for key, s in self.series.items()},
                "queue": self.queue.as_dict() if self.queue else None,
                "dlq": self.dlq.as_dict() if self.dlq else None,
                "alarms": [a.as_dict() for a in self.alarms]}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(now: float) -> tuple[datetime, datetime]:
    """The last hour on minute boundaries; EndTime (exclusive) after the current minute, so
    the minute in progress is the newest point."""
    end_epoch = (int(now) // PERIOD_SECONDS + 1) * PERIOD_SECONDS
    end = datetime.fromtimestamp(end_epoch, UTC)
    return end - timedelta(minutes=WINDOW_MINUTES), end


class Top:
    """Collects snapshots for one pipeline; keeps the queue URLs between refreshes."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.targets = Targets(ctx)
        self.specs = metric_specs(ctx)
        if len(self.specs) > MAX_QUERIES_PER_CALL:  # cannot happen with 14; kept honest
            raise ValueError("more series than one GetMetricData call may carry")

    def snapshot(self, now: float | None = None) -> Snapshot:
        now = time.time() if now is None else now
        start, end = window(now)
        return Snapshot(
            pipeline=self.ctx.config.name, region=self.ctx.region, start=start, end=end,
            series=self.series(start, end), queue=self._queue(self.targets.queue_url,
                                                               self.ctx.names.queue),
            dlq=self._queue(self.targets.dlq_url, self.ctx.names.dlq),
            alarms=self._alarms(), taken_at=now)

    def series(self, start: datetime, end: datetime) -> dict[str, Series]:
        """Every series, one point per minute of [start, end), from one GetMetricData call
        (more only if AWS pages the answer)."""
        found: dict[str, dict[datetime, float]] = {s.key: {} for s in self.specs}
        paginator = self.ctx.client("cloudwatch").get_paginator("get_metric_data")
        for page in paginator.paginate(MetricDataQueries=[s.query() for s in self.specs],
                                       StartTime=start, EndTime=end):
            for result in page.get("MetricDataResults", []):
                points = found.setdefault(result["Id"], {})
                for stamp, value in zip(result.get("Timestamps", []),
                                        result.get("Values", []), strict=False):
                    points[stamp.astimezone(UTC)] = float(value)
        minutes = [start + timedelta(seconds=i * PERIOD_SECONDS)
                   for i in range(WINDOW_MINUTES * 60 // PERIOD_SECONDS)]
        return {spec.key: Series(spec, tuple(
            found[spec.key].get(m, 0.0 if spec.counter else None) for m in minutes))
            for spec in self.specs}

    def _queue(self, url_of: Any, name: str) -> QueueNow | None:
        """The depth SQS reports now; None when the queue does not exist."""
        from pipelinectl.errors import PipelineError

        try:
            visible, in_flight = self.targets.queue_depth(url_of())
        except PipelineError:
            return None
        return QueueNow(name, visible, in_flight)

    def _alarms(self) -> list[AlarmNow]:
        """The pipeline's five alarms by name: one DescribeAlarms call (the paginator
        follows a NextToken should AWS page the answer). The API Reference caps AlarmNames
        arrays at 100 items for EnableAlarmActions; we found no figure for DescribeAlarms."""
        specs = {alarm_name(self.ctx, spec): spec for spec in alarm_specs(self.ctx)}
        paginator = self.ctx.client("cloudwatch").get_paginator("describe_alarms")
        found = [alarm for page in paginator.paginate(AlarmNames=list(specs),
                                                      AlarmTypes=["MetricAlarm"])
                 for alarm in page.get("MetricAlarms", [])]
        states = {a["AlarmName"]: str(a.get("StateValue", "")) for a in found}
        return [AlarmNow(name, states.get(name, "missing"),
                         f"{spec.namespace} {spec.metric} {spec.dimension[0]}="
                         f"{spec.dimension[1]}")
                for name, spec in specs.items()]
