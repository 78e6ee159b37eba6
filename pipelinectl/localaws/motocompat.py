"""Small, pinned patches to moto internals so it behaves like AWS where the pipeline relies on it.

Every patch here fixes one measured difference between moto and AWS (DESIGN.md §5), replaces
one attribute of one moto class, and has tests in ``tests/localaws/test_motocompat.py``: one
proving that unpatched moto still has the defect (when moto fixes it, that test fails and the
patch can go) and one proving the patched behaviour.

Usage, in-process or before starting moto's server in this process::

    with moto.mock_aws():
        motocompat.apply()
        ...

:func:`apply` is idempotent and cheap after the first call. The patches are process-wide (they
replace class attributes), so they also hold for ``moto.server.ThreadedMotoServer``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelinectl.localaws import enforce
from pipelinectl.localaws.iamconditions import conditions_met

log = logging.getLogger(__name__)

#: moto versions these patches were written against and tested with: [low, high).
TESTED_MOTO_RANGE: tuple[tuple[int, int, int], tuple[int, int, int]] = ((5, 2, 1), (5, 3, 0))
#: Set to 1 to apply the patches to an untested moto version anyway (at your own risk).
SKIP_VERSION_CHECK_ENV = "PIPELINECTL_MOTO_ANY_VERSION"


class MotoVersionError(RuntimeError):
    """The installed moto is outside the range the compatibility patches were tested with."""


def _version_tuple(version: str) -> tuple[int, int, int]:
    parts = [int(m.group()) for m in (re.match(r"\d+", p) for p in version.split(".")[:3]) if m]
    parts += [0] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def _dotted(version: tuple[int, int, int]) -> str:
    text = ".".join(map(str, version))
    return text.removesuffix(".0") if version[2] == 0 else text


def check_moto_version(version: str | None = None) -> None:
    """Raise :class:`MotoVersionError` unless moto (or ``version``) is in the tested range."""
    if version is None:
        import moto

        version = str(moto.__version__)
    low, high = TESTED_MOTO_RANGE
    if low <= _version_tuple(version) < high:
        return
    if os.environ.get(SKIP_VERSION_CHECK_ENV) == "1":
        log.warning("moto %s is outside the tested range; patching anyway", version)
        return
    want = f">={_dotted(low)},<{_dotted(high)}"
    raise MotoVersionError(
        f"moto {version} is installed but the local AWS is tested with moto{want}; "
        f"run `pip install 'moto[server]{want}'` (or set {SKIP_VERSION_CHECK_ENV}=1 to try anyway)."
    )


# --------------------------------------------------------------------------------------------
# Patch bookkeeping


@dataclass
class _Patch:
    owner: Any
    name: str
    build: Callable[[Any], Any]  # original attribute -> replacement
    original: Any = None
    installed: Any = None

    @property
    def in_place(self) -> bool:
        return self.installed is not None and self.owner.__dict__.get(self.name) is self.installed


_lock = threading.Lock()
_MISSING = object()  # the patched name was an instance attribute, not a class attribute
_applied: list[_Patch] = []


def _patches() -> list[_Patch]:
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.events.models import Rule
    from moto.logs import models as logs_models
    from moto.s3.models import FakeBucket
    from moto.s3.responses import S3Response
    from moto.sns.models import Subscription
    from moto.sqs.models import Queue

    from pipelinectl.localaws import (
        enforce,
        motocompat_cloudwatch,
        motocompat_dynamodb,
        motocompat_logs,
        motocompat_models,
        motocompat_server,
        motocompat_sqs,
        rolecalls,
    )

    return [
        _Patch(S3Response, "get_bucket_notification", _bucket_notification_with_eventbridge),
        _Patch(S3Response, "_bucket_response_put", _create_bucket_with_tags),
        _Patch(FakeBucket, "get_permission", lambda _orig: _bucket_get_permission),
        _Patch(Rule, "send_to_targets", _send_to_targets_with_sns),
        _Patch(Queue, "lambda_event_source_mappings", lambda _orig: _NO_SYNC_ESM),
        _Patch(CloudWatchBackend, "put_metric_alarm", _put_metric_alarm_with_aws_state),
        _Patch(CloudWatchBackend, "get_metric_data",  # k. in its own module
               motocompat_cloudwatch.get_metric_data_as_aws),
        *motocompat_sqs.patches(_Patch),
        *motocompat_dynamodb.patches(_Patch),  # h, j, n, o, q
        *motocompat_models.patches(_Patch),  # m
        *motocompat_server.patches(_Patch),  # p
        # Policy enforcement (enforce.py, rolecalls.py): hooks, inert until enabled.
        _Patch(ActionAuthenticatorMixin, "_authenticate_and_authorize_action",
               rolecalls.authenticate_and_authorize),
        _Patch(Subscription, "publish", enforce.subscription_publish),
        # l. FilterLogEvents patterns evaluated as AWS does (motocompat_logs.py).
        _Patch(logs_models, "EventMessageFilter", motocompat_logs.filter_with_aws_patterns),
    ]


def apply() -> None:
    """Check moto's version and install every patch (idempotent, thread-safe).

    A patch that something else has since replaced (a test's monkeypatch undo, say) is
    installed again; otherwise a repeated call only checks that the patches are in place.
    """
    if _applied and all(patch.in_place for patch in _applied):
        return
    with _lock:
        if not _applied:
            check_moto_version()
        install(_applied, _patches)


def install(applied: list[_Patch], make: Callable[[], list[_Patch]]) -> None:
    """Install a set of patches (made by ``make`` the first time, their originals recorded)
    into ``applied``; one that something else replaced since is installed again. Shared by
    these patches and the consistency emulation's (consistency.py)."""
    if not applied:
        applied.extend(make())
        for patch in applied:
            patch.original = patch.owner.__dict__.get(patch.name, _MISSING)
    for patch in applied:
        if not patch.in_place:
            patch.installed = patch.build(patch.original)
            setattr(patch.owner, patch.name, patch.installed)


def uninstall(applied: list[_Patch]) -> None:
    """Put back what ``install`` replaced, newest first, and empty ``applied``."""
    while applied:
        patch = applied.pop()
        if patch.original is _MISSING:
            delattr(patch.owner, patch.name)
        else:
            setattr(patch.owner, patch.name, patch.original)


def revert() -> None:
    """Restore moto's own behaviour (for the tests that prove moto still needs the patches)."""
    with _lock:
        uninstall(_applied)


def is_applied() -> bool:
    return bool(_applied)


@contextmanager
def unpatched() -> Iterator[None]:
    """Run a block against plain moto, re-applying the patches afterwards if they were on."""
    was_applied = is_applied()
    revert()
    try:
        yield
    finally:
        if was_applied:
            apply()


# --------------------------------------------------------------------------------------------
# a. GetBucketNotificationConfiguration omits EventBridgeConfiguration


def _bucket_notification_with_eventbridge(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """moto stores a bucket's ``EventBridgeConfiguration`` but never returns it.

    AWS returns ``EventBridgeConfiguration: {}`` when EventBridge notifications are on; without it
    an idempotent ``up`` that reads state the AWS way re-applies the setting on every run. We let
    moto build its response and add the element when the stored configuration has it.
    """
    from moto.core.responses import ActionResult

    def get_bucket_notification(self: Any) -> Any:
        config = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if config is None or config.event_bridge is None:
            return original(self)
        serialize = self.serialized  # a response object serves one request only

        def serialized(result: Any) -> Any:
            body = result.result if isinstance(result.result, dict) else {}
            return serialize(ActionResult({**body, "EventBridgeConfiguration": {}}))

        self.serialized = serialized
        try:
            return original(self)
        finally:
            del self.serialized

    return get_bucket_notification


# --------------------------------------------------------------------------------------------
# a2. CreateBucket ignores CreateBucketConfiguration.Tags


def _create_bucket_with_tags(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto creates the bucket but drops the ``Tags`` of ``CreateBucketConfiguration``.

    AWS applies them in the same call (S3 API Reference, CreateBucketConfiguration: "An array
    of tags that you can apply to the bucket that you're creating"; it needs
    ``s3:TagResource``), which is what lets ``up`` create a bucket that is never, even for an
    instant, without its ownership tag. Here the tags of a successful CreateBucket are stored
    before the response is returned.
    """
    import xmltodict

    def bucket_response_put(self: Any, request: Any, bucket_name: str,
                            querystring: dict[str, Any]) -> Any:
        response = original(self, request, bucket_name, querystring)
        if querystring or not self.body:
            return response  # a subresource (?tagging, ?policy ...), not CreateBucket
        config = xmltodict.parse(self.body).get("CreateBucketConfiguration") or {}
        tags = (config.get("Tags") or {}).get("Tag") or []
        if isinstance(tags, dict):
            tags = [tags]
        if tags:
            self.backend.put_bucket_tagging(
                bucket_name, {t["Key"]: t.get("Value") or "" for t in tags})
        return response

    return bucket_response_put


# --------------------------------------------------------------------------------------------
# b. Bucket policy conditions


def _bucket_request_context(bucket: Any) -> dict[str, list[str]]:
    """Condition keys known for a request to the local S3 (lower-cased key -> values).

    ``aws:SecureTransport`` is ``true``: the local AWS stands in for AWS's HTTPS endpoints, and a
    TLS-only bucket policy (deny when it is ``false``) must not lock out every client. The caller
    is local, so ``aws:SourceIp`` is the loopback address.
    """
    now = datetime.now(UTC)
    return {
        "aws:securetransport": ["true"],
        "aws:sourceip": ["127.0.0.1"],
        "aws:currenttime": [now.strftime("%Y-%m-%dT%H:%M:%SZ")],
        "aws:epochtime": [str(int(now.timestamp()))],
        "s3:resourceaccount": [str(bucket.account_id)],
        "aws:resourceaccount": [str(bucket.account_id)],
    }


def _bucket_get_permission(self: Any, action: str, resource: str) -> Any:
    """moto evaluates only ``StringEquals`` and treats every other condition operator as met.

    So ``Deny s3:* if Bool aws:SecureTransport = false`` denies everything and every object
    operation gets 403 (and moto even answers DENIED for an Allow whose condition fails). Here
    each statement's condition block is evaluated properly (see ``iamconditions``); a
    statement whose conditions are not met does not apply. Action, resource and principal
    matching stay moto's.
    """
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    if self.policy is None:
        return PermissionResult.NEUTRAL
    statements = json.loads(self.policy.decode())["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    context = _bucket_request_context(self)
    permitted = False
    for statement in statements:
        if not conditions_met(statement.get("Condition") or {}, context):
            continue
        bare = {k: v for k, v in statement.items() if k != "Condition"}
        result = IAMPolicyStatement(bare).is_action_permitted(action, resource)
        if result == PermissionResult.DENIED:
            return result
        permitted = permitted or result == PermissionResult.PERMITTED
    return PermissionResult.PERMITTED if permitted else PermissionResult.NEUTRAL


# --------------------------------------------------------------------------------------------
# c. EventBridge rules with SNS targets


def _send_to_targets_with_sns(original: Callable[..., None]) -> Callable[..., None]:
    """moto has no SNS target: it raises NotImplementedError for it.

    For S3 events moto swallows that error, so nothing is delivered, and the loop over rules
    stops, so later rules receive nothing either. Here SNS targets publish the event JSON as
    the message (what AWS does without an input transformation; ``Input``, ``InputPath`` and
    ``InputTransformer`` are honoured), every other target goes to moto one at a time, and a
    failing target is logged without stopping the others. S3 events, which moto stamps with
    one constant id, get a fresh id per event, as on AWS. An SNS delivery that fails goes, as
    on AWS, to the target's dead-letter queue when it has one (``_dead_letter``), and counts
    in ``AWS/Events`` ``FailedInvocations``.

    c2. moto ignores the rule's state on every path (S3 events and PutEvents): a DISABLED rule
    still delivers. AWS, DisableRule: "A disabled rule won't match any events"; so here only
    an ENABLED rule sends anything. (AWS adds that "incoming events might continue to match to
    the disabled rule" for "a short period of time"; we disable at once.)
    """
    from moto.events.utils import _BASE_EVENT_MESSAGE

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if getattr(self, "state", "ENABLED") != "ENABLED":
            return
        if not self.event_pattern.matches_event(original_event):
            return
        if original_event.get("id") == _BASE_EVENT_MESSAGE["id"]:
            original_event["id"] = str(uuid.uuid4())  # shared by the rules of one S3 event
        for target in list(self.targets):
            try:
                if target["Arn"].split(":")[2] == "sns":
                    try:
                        _publish_event_to_sns(target, original_event, transform_input,
                                              self.arn)
                    except Exception as exc:
                        _failed_delivery(self, target, original_event, exc)
                        continue
                    log.info(
                        "EventBridge rule %s → %s: %s",
                        self.name,
                        target["Arn"].rsplit(":", 1)[-1],
                        original_event.get("detail-type"),
                        extra={"activity": "deliver"},
                    )
                else:
                    single = copy.copy(self)
                    single.targets = [target]
                    original(single, original_event, transform_input)
            except Exception:
                log.exception("rule %s could not deliver to %s", self.name, target.get("Arn"))

    return send_to_targets


def _failed_delivery(rule: Any, target: dict[str, Any], event: dict[str, Any],
                     exc: Exception) -> None:
    """What EventBridge does with an event it cannot deliver (user guide, "Using dead-letter
    queues to process undelivered events"): a permanent error (a missing target, missing
    permissions) is not retried; the event goes to the target's DLQ, when it has one, with
    the attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE and RETRY_ATTEMPTS, and
    FailedInvocations (dimension RuleName) counts it ("Monitoring Amazon EventBridge").
    The guide lists sample ERROR_CODE values without saying which one each target error
    gets: a topic that does not exist is given NO_RESOURCE here, anything else
    SDK_CLIENT_ERROR. Retries of transient errors are not emulated.
    """
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.sqs.models import sqs_backends

    _, _, _, region, account, _ = rule.arn.split(":", 5)
    cloudwatch_backends[account][region].put_metric_data("AWS/Events", [{
        "MetricName": "FailedInvocations", "Value": 1.0, "Unit": "Count",
        "Dimensions": [{"Name": "RuleName", "Value": rule.name}]}])
    dlq_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
    if not dlq_arn:
        log.warning("EventBridge rule %s could not deliver to %s and has no DLQ: event "
                    "dropped (%s)", rule.name, target["Arn"], exc)
        return
    code = "NO_RESOURCE" if getattr(exc, "code", "") == "NotFound" else "SDK_CLIENT_ERROR"
    if isinstance(exc, enforce.DeliveryRefused):  # the topic's or its key's policy refused
        code = exc.code
    attributes = {"RULE_ARN": rule.arn, "TARGET_ARN": target["Arn"], "ERROR_CODE": code,
                  "ERROR_MESSAGE": str(getattr(exc, "message", "") or exc)[:1000],
                  "RETRY_ATTEMPTS": "0"}
    _, _, _, dlq_region, dlq_account, dlq_name = dlq_arn.split(":", 5)
    sqs_backends[dlq_account][dlq_region].send_message(
        dlq_name, json.dumps(_event_as_delivered(event)),
        message_attributes={k: {"DataType": "String", "StringValue": v}
                            for k, v in attributes.items()})
    log.info("EventBridge rule %s could not deliver to %s (%s): dead-lettered to %s",
             rule.name, target["Arn"].rsplit(":", 1)[-1], code, dlq_name,
             extra={"activity": "deliver"})


def _event_as_delivered(event: dict[str, Any]) -> dict[str, Any]:
    """The event as AWS hands it to a target: no moto-internal ingestion time, ISO time."""
    body = {k: v for k, v in event.items() if k != "ingestion-time"}
    if isinstance(body.get("time"), int | float):
        body["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(body["time"])))
    return body


def _publish_event_to_sns(target: dict[str, Any], event: dict[str, Any], transform: bool,
                          rule_arn: str) -> None:
    from moto.events.utils import EventTemplateParser
    from moto.sns.models import sns_backends

    enforce.authorize_publish("events.amazonaws.com", rule_arn, target["Arn"])
    body = _event_as_delivered(event)
    message: str
    if transform and "Input" in target:
        message = str(target["Input"])
    elif transform and "InputPath" in target:
        from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

        found = parse(target["InputPath"]).find(body)
        message = json.dumps(found[0].value if found else None)
    elif transform and "InputTransformer" in target:
        transformer = target["InputTransformer"]
        with_time: Any = {"ingestion-time": event.get("ingestion-time", time.time()), **body}
        result = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=with_time,
        )
        message = result if isinstance(result, str) else json.dumps(result)
    else:
        message = json.dumps(body)
    _, _, _, region, account, _ = target["Arn"].split(":", 5)
    sns_backends[account][region].publish(message=message, arn=target["Arn"])


# --------------------------------------------------------------------------------------------
# d. Event source mappings invoked inside SendMessage


class _NoSyncEventSourceMappings:
    """moto runs a queue's event source mappings synchronously inside SendMessage.

    It receives a batch, "invokes" the function and, without Docker, deletes the messages
    without running any code (and ignores ReportBatchItemFailures). On AWS the Lambda service
    polls the queue; our local AWS does that with its own poller. Replacing the queue's
    ``lambda_event_source_mappings`` with an always-empty view stops the inline invocation;
    the mappings themselves stay in the Lambda backend (``ListEventSourceMappings``).
    """

    def __get__(self, instance: Any, owner: Any = None) -> dict[str, Any]:
        return {}  # a fresh dict: writes into it go nowhere

    def __set__(self, instance: Any, value: Any) -> None:
        # moto's Queue.__init__ assigns it; keep it where moto would, for after revert()
        instance.__dict__["lambda_event_source_mappings"] = value


_NO_SYNC_ESM = _NoSyncEventSourceMappings()


# --------------------------------------------------------------------------------------------
# f. A new alarm starts in OK; an updated alarm loses its state


_ALARM_STATE_FIELDS = (
    "state_value",
    "state_reason",
    "state_reason_data",
    "state_updated_timestamp",
)


def _put_metric_alarm_with_aws_state(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto creates every alarm in ``OK`` and rebuilds it, state included, on each update.

    AWS sets a new alarm to ``INSUFFICIENT_DATA`` until it is evaluated, and leaves the state
    of an existing alarm unchanged when PutMetricAlarm updates its configuration. Without this
    ``status`` would report a never-evaluated alarm as healthy, and a second ``up`` that changes
    a threshold would silently reset an alarm that is firing.
    """

    def put_metric_alarm(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        before = self.alarms.get(name)
        alarm = original(self, name, *args, **kwargs)
        if before is not None:
            for attr in _ALARM_STATE_FIELDS:
                setattr(alarm, attr, getattr(before, attr))
        else:
            alarm.state_value = "INSUFFICIENT_DATA"
        return alarm

    return put_metric_alarm
