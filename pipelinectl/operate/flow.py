"""The pipeline as the flow it is, for `status --tree`: which resource feeds which.

The nodes are the rows `status` already collects (engine.status: each resource's health()),
arranged along the path a transaction takes - bucket, rule, ingest topic, subscription,
queue (its DLQ beside it), event source mapping, function, then the table and the alerts
topic - with each alarm beside what it watches (from the same AlarmSpecs the alarms step
creates) and what the function runs with (role, log group, key) as leaves. A row this
layout does not place is still shown, under the root, so nothing `status` knows is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipelinectl.resources.alarms import alarm_name, alarm_specs
from pipelinectl.resources.base import Context, StatusRow

#: How a node is reached from its parent: the transaction's path, an alarm watching it,
#: where its failures go, or something it uses.
Edge = Literal["flow", "alarm", "dead-letter", "uses"]


@dataclass
class FlowNode:
    row: StatusRow
    edge: Edge = "flow"
    note: str = ""  # what the edge means here ("amount > threshold", "after N receives")
    children: list[FlowNode] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.row.as_dict(), "edge": self.edge, "note": self.note,
                "children": [child.as_dict() for child in self.children]}

    def walk(self) -> list[FlowNode]:
        """This node and its descendants, depth first in drawing order."""
        return [self, *(node for child in self.children for node in child.walk())]


def flow(ctx: Context, rows: list[StatusRow]) -> list[FlowNode]:
    """The flow's roots: the landing bucket's path, then what no path holds (the key)."""
    names = ctx.names
    left = {(row.kind, row.name): row for row in rows}
    orphans: list[FlowNode] = []  # children of a resource status did not report

    def take(kind: str, name: str, edge: Edge = "flow", note: str = "",
             *children: FlowNode | None) -> FlowNode | None:
        row = left.pop((kind, name), None)
        found = [c for c in children if c is not None]
        if row is None:
            orphans.extend(found)
            return None
        return FlowNode(row, edge, note, found)

    alarms = _alarms_by_watched(ctx, take)
    email = f"{names.alerts_topic} -> {ctx.config.alert_email}"
    function = take(
        "Lambda function", names.function, "flow", "invoked with batches", *alarms.get(
            names.function, []),
        take("IAM role", names.role, "uses", "runs as"),
        take("log group", names.log_group, "uses", "writes its logs to"),
        take("DynamoDB table", names.table, "flow", "stores each transaction"),
        take("SNS topic", names.alerts_topic, "flow", "alerts: amount > "
             f"{ctx.config.alert_threshold}; the alarms act on it too",
             take("SNS e-mail subscription", email)))
    dlq = take("SQS dead-letter queue", names.dlq, "dead-letter",
               f"after {ctx.config.max_receive_count} receives", *alarms.get(names.dlq, []))
    queue = take("SQS queue", names.queue, "flow", "", *alarms.get(names.queue, []), dlq,
                 take("event source mapping", f"{names.queue} -> {names.function}", "flow",
                      "polls", function))
    subscription = take("SNS subscription", f"{names.ingest_topic} -> {names.queue}", "flow",
                        "", queue)
    topic = take("SNS topic", names.ingest_topic, "flow", "the rule's target; send-test and "
                 "other producers publish here too", subscription)
    rule = take("EventBridge rule", names.rule, "flow", "Object Created under incoming/",
                *alarms.get(names.rule, []), topic)
    bucket = take("S3 bucket", names.bucket, "flow", "", rule)
    roots = [node for node in (bucket, take("KMS key", names.kms_alias, "uses",
                                            "encrypts both topics")) if node is not None]
    # Whatever the layout missed (a part missing above it, a kind added later): still shown.
    roots += orphans + [FlowNode(row, "uses") for row in rows if (row.kind, row.name) in left]
    return roots


def _alarms_by_watched(ctx: Context, take: Any) -> dict[str, list[FlowNode]]:
    """Each alarm node keyed by the resource name its metric's dimension names."""
    watched: dict[str, list[FlowNode]] = {}
    for spec in alarm_specs(ctx):
        node = take("CloudWatch alarm", alarm_name(ctx, spec), "alarm",
                    f"{spec.metric} {spec.statistic} > {spec.threshold:g}")
        if node is not None:
            watched.setdefault(spec.dimension[1], []).append(node)
    return watched
