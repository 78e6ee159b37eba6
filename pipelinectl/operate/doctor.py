"""`doctor`: read-only checks against the failure modes that lose or delay data on AWS.

Each check answers ok / warn / fail with the reason and the fix (most often a config key and
`pipelinectl up`). `fail` means data is being lost or not processed now; `warn` means it
would be under load, or is being delayed. Only read calls are made. AWS sources:

- Visibility timeout at least 6x the function timeout, "The extra time allows Lambda to
  retry if your function is throttled" (Lambda Developer Guide, "Creating and configuring
  an Amazon SQS event source mapping"); a timeout shorter than the function's is refused.
- maxReceiveCount at least 5 so throttled batches are not dead-lettered unprocessed: AWS's
  Lambda/SQS guidance as restated in AWS's own MDAA docs ("AWS recommends at least 5"); we
  could not find the sentence verbatim in the Lambda Developer Guide.
- DLQ retention longer than the queue's: "the expiration of a message is always based on
  its original enqueue timestamp ... it is a best practice to always set the retention
  period of a dead-letter queue to be longer" (SQS Developer Guide, "Setting-up dead-letter
  queue retention").
- Reserved concurrency 0 stops the function; below the mapping's MaximumConcurrency Lambda
  may throttle (Lambda Developer Guide, "Configuring scaling behavior for SQS event source
  mappings").
- S3 takes about five minutes to send events after enabling EventBridge (bucket_events);
  alias changes take up to five minutes to affect KMS authorization (KMS Developer Guide,
  "Using aliases to control access").
- EventBridge delivering to an encrypted topic sends no aws:SourceArn/SourceAccount to KMS,
  and a topic under the AWS managed key (alias/aws/sns) cannot admit EventBridge at all (its
  policy cannot be edited) (SNS Developer Guide, "Enable compatibility between event sources
  from AWS services and encrypted topics").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pipelinectl.operate.targets import Targets
from pipelinectl.resources import bucket_events
from pipelinectl.resources.alarms import Alarm, alarm_specs
from pipelinectl.resources.base import Context, error_code, parse_policy
from pipelinectl.resources.kms import PipelineKey
from pipelinectl.resources.rule import INCOMING_PREFIX, TARGET_ID
from pipelinectl.resources.subscriptions import EmailSubscription

Level = Literal["ok", "warn", "fail"]
MIN_RECEIVE_COUNT = 5
VISIBILITY_FACTOR = 6
KMS_ALIAS_SECONDS = 300.0
SOURCE_KEYS = ("aws:sourcearn", "aws:sourceaccount", "aws:sourceorgid")
#: How many minutes a file may wait under incoming/ past the processor's last run.
STALE_MINUTES = 15
MAX_LISTED_PAGES = 10  # 10,000 objects: enough to find a recent unprocessed file


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    reason: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "level": self.level, "reason": self.reason,
                "fix": self.fix}


class Facts:
    """The pipeline as AWS describes it, each read once and shared by the checks."""

    def __init__(self, ctx: Context, clock: Callable[[], float] = time.time) -> None:
        self.ctx, self.targets, self.now = ctx, Targets(ctx), clock
        self._seen: dict[str, Any] = {}

    def _once(self, key: str, read: Callable[[], Any]) -> Any:
        if key not in self._seen:
            self._seen[key] = read()
        return self._seen[key]

    def queue(self, dlq: bool = False) -> dict[str, str]:
        url = self.targets.dlq_url() if dlq else self.targets.queue_url()
        return dict(self._once(f"queue{dlq}", lambda: self.ctx.client(
            "sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]))

    def function(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            lam = self.ctx.client("lambda")
            try:
                return dict(lam.get_function(FunctionName=self.ctx.names.function))
            except lam.exceptions.ResourceNotFoundException as exc:
                raise self.targets.missing("Lambda function", self.ctx.names.function) from exc
        return dict(self._once("function", read))

    def mapping(self) -> dict[str, Any] | None:
        found = self._once("mapping", lambda: self.ctx.client(
            "lambda").list_event_source_mappings(EventSourceArn=self.targets.queue_arn).get(
            "EventSourceMappings", []))
        return dict(found[0]) if found else None


Check = Callable[[Facts], Iterator[Finding]]


def queue_settings(facts: Facts) -> Iterator[Finding]:
    queue, timeout = facts.queue(), int(facts.function()["Configuration"]["Timeout"])
    visibility = int(queue["VisibilityTimeout"])
    level: Level = "ok" if visibility >= VISIBILITY_FACTOR * timeout else (
        "warn" if visibility >= timeout else "fail")
    yield Finding("visibility timeout", level,
                  f"{visibility}s for a {timeout}s function (AWS advises at least "
                  f"{VISIBILITY_FACTOR}x: {VISIBILITY_FACTOR * timeout}s)",
                  "" if level == "ok" else "raise visibility_timeout (or lower "
                  "function_timeout) in pipeline.toml, then `pipelinectl up`")
    redrive = parse_policy(queue.get("RedrivePolicy")) or {}
    count = int(redrive.get("maxReceiveCount", 0))
    yield Finding("max receive count", "ok" if count >= MIN_RECEIVE_COUNT else "warn",
                  f"maxReceiveCount {count or 'unset'} (at least {MIN_RECEIVE_COUNT} lets "
                  "throttled batches be retried before they are dead-lettered)",
                  "" if count >= MIN_RECEIVE_COUNT else
                  f"max_receive_count = {MIN_RECEIVE_COUNT} in pipeline.toml, then "
                  "`pipelinectl up`")
    kept, dlq_kept = int(queue["MessageRetentionPeriod"]), int(
        facts.queue(dlq=True)["MessageRetentionPeriod"])
    yield Finding("DLQ retention", "ok" if dlq_kept > kept else "warn",
                  f"DLQ keeps {dlq_kept}s, the queue {kept}s; SQS keeps a message's original "
                  "enqueue time, so it expires from the DLQ that much earlier",
                  "" if dlq_kept > kept else "lower message_retention_days in pipeline.toml "
                  "(or run `pipelinectl up` to restore the DLQ's 14 days)")


def concurrency(facts: Facts) -> Iterator[Finding]:
    reserved = facts.ctx.client("lambda").get_function_concurrency(
        FunctionName=facts.ctx.names.function).get("ReservedConcurrentExecutions")
    mapping = facts.mapping() or {}
    maximum = mapping.get("ScalingConfig", {}).get("MaximumConcurrency")
    if reserved == 0:
        yield Finding("reserved concurrency", "fail", "reserved concurrency is 0: the "
                      "function never runs and messages wait, then go to the DLQ",
                      "`pipelinectl up` removes it (unless reserved_concurrency = 0 is "
                      "set in pipeline.toml: raise it)")
    elif reserved is not None and maximum is not None and reserved < maximum:
        yield Finding("reserved concurrency", "warn", f"reserved {reserved} is below the "
                      f"mapping's maximum concurrency {maximum}: Lambda throttles batches",
                      "raise reserved_concurrency or lower maximum_concurrency, then up")
    else:
        yield Finding("reserved concurrency", "ok",
                      f"reserved {'none' if reserved is None else reserved}, mapping "
                      f"maximum {'none' if maximum is None else maximum}")


def mapping_state(facts: Facts) -> Iterator[Finding]:
    mapping = facts.mapping()
    if mapping is None:
        yield Finding("event source mapping", "fail", "the queue has no event source "
                      "mapping: nothing reads it", "`pipelinectl up`")
        return
    state, result = str(mapping.get("State")), str(mapping.get("LastProcessingResult", ""))
    if state not in {"Enabled", "Enabling", "Creating", "Updating"}:
        yield Finding("event source mapping", "fail", f"the mapping is {state}: messages "
                      "wait in the queue and expire", "`pipelinectl up` enables it")
    elif result.startswith("PROBLEM"):
        yield Finding("event source mapping", "fail", f"last processing result: {result}",
                      "fix what it names (often the role), then `pipelinectl up`")
    else:
        yield Finding("event source mapping", "ok", f"{state}; last result {result or '-'}")


def function_state(facts: Facts) -> Iterator[Finding]:
    conf = facts.function()["Configuration"]
    state, update = conf.get("State", "Active"), conf.get("LastUpdateStatus", "Successful")
    if "Failed" in (state, update):
        reason = conf.get("StateReason") or conf.get("LastUpdateStatusReason") or "no reason"
        yield Finding("function state", "fail", f"state {state}, last update {update} "
                      f"({reason})", "`pipelinectl up` recreates or re-applies it")
    else:
        level: Level = "ok" if (state, update) == ("Active", "Successful") else "warn"
        yield Finding("function state", level, f"state {state}, last update {update}")


def propagation(facts: Facts) -> Iterator[Finding]:
    window = bucket_events.current(facts.ctx)
    yield Finding("S3 EventBridge window", "warn" if window else "ok",
                  window.warning() if window else "notifications are in effect",
                  "wait, then `pipelinectl replay --since` the window" if window else "")
    if facts.ctx.config.topic_kms_key != "pipeline":
        return
    kms = facts.ctx.client("kms")
    aliases = kms.list_aliases().get("Aliases", [])  # no filter by name: one page suffices
    alias = next((a for a in aliases if a["AliasName"] == facts.ctx.names.kms_alias), None)
    created = alias.get("CreationDate") if alias else None
    age = facts.now() - created.timestamp() if created else None
    young = age is not None and age < KMS_ALIAS_SECONDS
    yield Finding("KMS alias age", "warn" if young else "ok",
                  f"alias {facts.ctx.names.kms_alias} is {age:.0f}s old; KMS takes up to "
                  "5 minutes to apply alias changes" if young else (
                      "settled" if created else "its creation time is not reported"),
                  "wait a few minutes" if young else "")


def rule_and_topic(facts: Facts) -> Iterator[Finding]:
    events, names = facts.ctx.client("events"), facts.ctx.names
    try:
        rule = events.describe_rule(Name=names.rule)
    except events.exceptions.ResourceNotFoundException:
        yield Finding("rule", "fail", f"rule {names.rule} does not exist: no file is "
                      "processed", "`pipelinectl up`, then `pipelinectl replay`")
        rule = None
    if rule is not None:
        targets = events.list_targets_by_rule(Rule=names.rule).get("Targets", [])
        ours = [t for t in targets if t["Id"] == TARGET_ID and
                t["Arn"] == facts.targets.ingest_topic_arn]
        if rule.get("State") != "ENABLED" or not ours:
            why = "disabled" if rule.get("State") != "ENABLED" else "without its target"
            yield Finding("rule", "fail", f"rule {names.rule} is {why}: files are not "
                          "processed", "`pipelinectl up`, then `pipelinectl replay`")
        else:
            yield Finding("rule", "ok", "enabled, targets the ingest topic")
    key = facts.ctx.client("sns").get_topic_attributes(
        TopicArn=facts.targets.ingest_topic_arn)["Attributes"].get("KmsMasterKeyId", "")
    managed = key in {"alias/aws/sns"} or key.endswith(":alias/aws/sns")
    yield Finding("topic key", "fail" if managed else "ok",
                  "the ingest topic uses the AWS managed key, whose policy cannot admit "
                  "EventBridge: every event is dropped" if managed else (key or "unencrypted"),
                  "topic_kms_key = \"pipeline\" in pipeline.toml, then up" if managed else "")
    yield from _key_statement(facts)


def _key_statement(facts: Facts) -> Iterator[Finding]:
    if facts.ctx.config.topic_kms_key != "pipeline":
        return
    seen = PipelineKey(facts.ctx).read()
    for statement in (seen or {}).get("policy", {}).get("Statement", []):
        if statement.get("Principal", {}).get("Service") != "events.amazonaws.com":
            continue
        keys = {k.lower() for cond in statement.get("Condition", {}).values() for k in cond}
        bad = sorted(keys & set(SOURCE_KEYS))
        yield Finding("EventBridge key statement", "fail" if bad else "ok",
                      f"conditions on {', '.join(bad)}, which EventBridge does not send to "
                      "KMS: every delivery fails" if bad else "no source conditions",
                      "`pipelinectl up` restores the key policy" if bad else "")


def notifications(facts: Facts) -> Iterator[Finding]:
    if facts.ctx.config.alert_email:
        sub = EmailSubscription(facts.ctx).read()
        pending = sub is None or not str(sub["arn"]).startswith("arn:")
        yield Finding("e-mail subscription", "warn" if pending else "ok",
                      f"{facts.ctx.config.alert_email}: "
                      f"{'pending confirmation' if pending else 'confirmed'}",
                      "confirm the e-mail AWS sent (or `pipelinectl up` to resend)"
                      if pending else "")
    names = [Alarm(facts.ctx, spec).name for spec in alarm_specs(facts.ctx)]
    found = facts.ctx.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
    for alarm in found:
        name = alarm["AlarmName"]
        if alarm.get("StateValue") == "ALARM":
            yield Finding(f"alarm {name}", "fail", f"in ALARM: {alarm.get('StateReason')}",
                          "see `pipelinectl logs` and `pipelinectl dlq list`")
        elif not alarm.get("ActionsEnabled", True) or not alarm.get("AlarmActions"):
            yield Finding(f"alarm {name}", "warn", "has no enabled action: nobody is told",
                          "`pipelinectl up` restores its action")
        else:
            yield Finding(f"alarm {name}", "ok", str(alarm.get("StateValue")))
    for missing in sorted(set(names) - {a["AlarmName"] for a in found}):
        yield Finding(f"alarm {missing}", "fail", "does not exist", "`pipelinectl up`")


def backlog(facts: Facts) -> Iterator[Finding]:
    waiting = sum(facts.targets.queue_depth(facts.targets.dlq_url()))
    yield Finding("DLQ", "fail" if waiting else "ok",
                  f"{waiting} message(s) were not processed" if waiting else "empty",
                  "`pipelinectl dlq list`, fix, then `pipelinectl dlq redrive`"
                  if waiting else "")
    yield _unprocessed(facts)


def _unprocessed(facts: Facts) -> Finding:
    """Files newer than the processor's last run by more than STALE_MINUTES: never
    processed (the processor logs every run; its log group's last event says when)."""
    s3, logs, names = facts.ctx.client("s3"), facts.ctx.client("logs"), facts.ctx.names
    newest = None
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=names.bucket, Prefix=INCOMING_PREFIX,
        PaginationConfig={"MaxItems": MAX_LISTED_PAGES * 1000})
    for page in pages:
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):
                moment = item["LastModified"].timestamp()
                newest = moment if newest is None else max(newest, moment)
    if newest is None:
        return Finding("unprocessed files", "ok", f"nothing under {INCOMING_PREFIX}")
    try:
        streams = logs.describe_log_streams(logGroupName=names.log_group, orderBy=
                                            "LastEventTime", descending=True, limit=1)
        last_ms = max((s.get("lastEventTimestamp", 0) for s in streams["logStreams"]),
                      default=0)
    except Exception as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        last_ms = 0
    gap = newest - last_ms / 1000
    stale = gap > STALE_MINUTES * 60 and facts.now() - newest > STALE_MINUTES * 60
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last_ms / 1000))
    return Finding("unprocessed files", "warn" if stale else "ok",
                   f"a file under {INCOMING_PREFIX} is {gap / 60:.0f} min newer than the "
                   "processor's last run" if stale else "the processor ran after the newest "
                   "file", f"`pipelinectl replay --since {since}`" if stale else "")


CHECKS: tuple[Check, ...] = (queue_settings, concurrency, mapping_state, function_state,
                             propagation, rule_and_topic, notifications, backlog)


def run(ctx: Context, clock: Callable[[], float] = time.time) -> list[Finding]:
    facts = Facts(ctx, clock)
    return [finding for check in CHECKS for finding in check(facts)]
