"""CloudWatch alarms on the processor and the queues, acting on the alerts topic.

Missing data is "not breaching": an idle pipeline is healthy, not in alarm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelinectl.resources.base import (
    Context,
    Health,
    HealthLevel,
    Observed,
    Resource,
    tag_list,
)

OLDEST_MESSAGE_SECONDS = 900


@dataclass(frozen=True)
class AlarmSpec:
    suffix: str
    description: str
    namespace: str
    metric: str
    statistic: str
    dimension: tuple[str, str]
    threshold: float
    period: int = 60
    evaluation_periods: int = 1


def alarm_specs(ctx: Context) -> list[AlarmSpec]:
    names = ctx.names
    fn = ("FunctionName", names.function)
    return [
        AlarmSpec("processor-errors", "The processor raised errors", "AWS/Lambda", "Errors",
                  "Sum", fn, 0),
        AlarmSpec("processor-throttles", "The processor was throttled", "AWS/Lambda",
                  "Throttles", "Sum", fn, 0),
        AlarmSpec("dlq-not-empty", "Messages are waiting in the dead-letter queue", "AWS/SQS",
                  "ApproximateNumberOfMessagesVisible", "Maximum", ("QueueName", names.dlq), 0),
        # EventBridge user guide, "Monitoring Amazon EventBridge": FailedInvocations (AWS/Events,
        # dimension RuleName for a rule on the default bus) counts invocations that failed
        # permanently, and is only sent when not zero, hence TreatMissingData notBreaching.
        AlarmSpec("rule-failed-invocations",
                  "EventBridge could not deliver new files to the ingest topic (see dlq list)",
                  "AWS/Events", "FailedInvocations", "Sum", ("RuleName", names.rule), 0),
        AlarmSpec("queue-oldest-message",
                  f"A message has waited over {OLDEST_MESSAGE_SECONDS}s in the queue",
                  "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum",
                  ("QueueName", names.queue), OLDEST_MESSAGE_SECONDS, period=300),
    ]


def alarm_name(ctx: Context, spec: AlarmSpec) -> str:
    return f"{ctx.names.alarm_prefix}-{spec.suffix}"


def alarm_arns(ctx: Context) -> list[str]:
    """The exact ARNs of this pipeline's alarms, from the same specs the alarms step uses, so
    the alerts topic's policy admits every alarm of ours and no one else's."""
    return [ctx.arn("cloudwatch", f"alarm:{alarm_name(ctx, spec)}") for spec in alarm_specs(ctx)]


class Alarm(Resource):
    step = "alarms"
    kind = "CloudWatch alarm"

    def __init__(self, ctx: Context, spec: AlarmSpec) -> None:
        super().__init__(ctx)
        self.spec = spec

    @property
    def name(self) -> str:
        return alarm_name(self.ctx, self.spec)

    @property
    def arn(self) -> str:
        return self.ctx.arn("cloudwatch", f"alarm:{self.name}")

    def _definition(self) -> dict[str, Any]:
        spec, topic = self.spec, self.ctx.arn("sns", self.ctx.names.alerts_topic)
        return {
            "AlarmDescription": f"pipelinectl: {spec.description}",
            "Namespace": spec.namespace, "MetricName": spec.metric,
            "Statistic": spec.statistic,
            "Dimensions": [{"Name": spec.dimension[0], "Value": spec.dimension[1]}],
            "Period": spec.period, "EvaluationPeriods": spec.evaluation_periods,
            "Threshold": float(spec.threshold),
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "ActionsEnabled": True, "AlarmActions": [topic], "OKActions": [topic],
        }

    def desired(self) -> Observed:
        return {"definition": self._definition(), "tags": self.ctx.tags}

    def read(self) -> Observed | None:
        cloudwatch = self.ctx.client("cloudwatch")
        alarms = cloudwatch.describe_alarms(AlarmNames=[self.name]).get("MetricAlarms", [])
        if not alarms:
            return None
        alarm = alarms[0]
        definition = {key: alarm.get(key) for key in self._definition()}
        tags = cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags", [])
        return {"definition": definition, "tags": {t["Key"]: t["Value"] for t in tags},
                "state": alarm.get("StateValue"), "reason": alarm.get("StateReason", "")}

    def create(self) -> None:
        self.ctx.client("cloudwatch").put_metric_alarm(
            AlarmName=self.name, Tags=tag_list(self.ctx.tags), **self._definition())

    def update(self, fields: set[str], observed: Observed) -> None:
        cloudwatch = self.ctx.client("cloudwatch")
        if "definition" in fields:
            cloudwatch.put_metric_alarm(AlarmName=self.name, **self._definition())
        if "tags" in fields:
            cloudwatch.tag_resource(ResourceARN=self.arn, Tags=tag_list(self.ctx.tags))

    def delete(self, observed: Observed) -> None:
        self.ctx.client("cloudwatch").delete_alarms(AlarmNames=[self.name])

    def health(self, observed: Observed) -> Health:
        state = str(observed["state"])
        level: HealthLevel = "error" if state == "ALARM" else "ok"
        return state, level, {"state": state, "reason": observed["reason"]}
