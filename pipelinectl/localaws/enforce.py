"""Policy enforcement for the local AWS: deliveries between services, decided by ``policy.py``.

On AWS a wrong topic, queue or key policy silently drops data; moto stores those policies and
never reads them. With enforcement on (``LocalAws(enforce=True)``, the default of ``pipelinectl
local`` and ``demo``) each delivery the pipeline relies on is authorized with the request
context AWS documents for it:

* EventBridge rule -> SNS topic: the topic policy for ``events.amazonaws.com`` with
  ``aws:SourceArn`` = the rule and ``aws:SourceAccount``; under a customer managed key, that
  key's policy for ``kms:GenerateDataKey``/``kms:Decrypt`` *without* the ``aws:Source*`` keys
  (SNS Developer Guide, "Managing Amazon SNS encryption keys and costs" > "Enable compatibility
  between event sources from AWS services and encrypted topics": those keys are not supported
  for EventBridge to encrypted topics). A refusal raises :class:`DeliveryRefused`, which the
  rule's delivery turns into ``FailedInvocations`` and the target's dead-letter queue.
* SNS topic -> SQS queue: the queue policy for ``sns.amazonaws.com`` with ``aws:SourceArn`` =
  the topic and ``aws:SourceAccount``; a customer managed queue key's policy for the same
  principal (SQS Developer Guide, "Enable compatibility between event sources from AWS services
  and encrypted queues"). A refused delivery is not retried (SNS Developer Guide, "Amazon SNS
  dead-letter queues": client-side errors are not retried), counts in ``AWS/SNS``
  ``NumberOfNotificationsFailed`` and goes to the subscription's dead-letter queue if it has one.
* CloudWatch alarm action -> SNS topic: topic and key policy for ``cloudwatch.amazonaws.com``
  with ``aws:SourceArn`` = the alarm and ``aws:SourceAccount``.

An AWS managed key (``alias/aws/sns``, ``alias/aws/sqs``) gets the policy AWS gives such keys
(KMS Developer Guide, "AWS managed keys": only principals of the account, through the service:
``kms:CallerAccount`` and ``kms:ViaService``), so service principals are refused, as on AWS.
The function's own calls are authorized in ``rolecalls.py``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pipelinectl.localaws.policy import Decision, Principal, Request, evaluate

log = logging.getLogger(__name__)

_state = {"enabled": False}
KEY_USE = ("kms:GenerateDataKey", "kms:Decrypt")


def set_enabled(on: bool) -> None:
    """Turn enforcement on or off for this process (moto's state is per process too)."""
    _state["enabled"] = on


def enabled() -> bool:
    return _state["enabled"]


class DeliveryRefused(Exception):
    """A service-to-service delivery its policies refuse. ``code`` is the EventBridge DLQ
    ERROR_CODE for it (EventBridge User Guide, "Using dead-letter queues to process undelivered
    events": NO_PERMISSIONS is listed, and missing permissions are not retried)."""

    code = "NO_PERMISSIONS"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Policies as moto holds them


def _arn(arn: str) -> tuple[str, str, str, str]:
    _, _, service, region, account, resource = arn.split(":", 5)
    return service, region, account, resource


def role_policies(role_arn: str) -> list[str]:
    """The role's identity policies: every inline policy and the default version of every
    attached managed policy (an unknown role has none)."""
    from moto.iam.models import iam_backends

    account = _arn(role_arn)[2]
    try:
        role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
    except Exception:
        return []
    documents = list(role.policies.values())
    for managed in role.managed_policies.values():
        documents += [v.document for v in managed.versions if v.is_default]
    return documents


def topic_of(arn: str) -> Any:
    from moto.sns.models import sns_backends

    _, region, account, _ = _arn(arn)
    return sns_backends[account][region].topics.get(arn)


def queue_of(arn: str) -> Any:
    from moto.sqs.models import sqs_backends

    _, region, account, name = _arn(arn)
    return sqs_backends[account][region].queues.get(name)


def aws_managed_key_policy(service: str, account: str, region: str) -> dict[str, Any]:
    """The policy of an AWS managed key (KMS Developer Guide, "AWS managed keys"; the key
    policy you see for aws/sns): use by principals of this account through the service only."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "Allow access through the service for all principals in the account",
         "Effect": "Allow", "Principal": {"AWS": "*"},
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                    "kms:CreateGrant", "kms:DescribeKey"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:CallerAccount": account,
                                        "kms:ViaService": f"{service}.{region}.amazonaws.com"}}},
        {"Sid": "Allow direct access to key metadata to the account", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": ["kms:Describe*", "kms:Get*", "kms:List*"], "Resource": "*"},
    ]}


def resolve_key(key_id: str, account: str, region: str) -> tuple[str, Any, list[str]]:
    """(key ARN, key policy, alias names) for a key id, key ARN, alias name or alias ARN."""
    from moto.kms.models import kms_backends

    alias = key_id if key_id.startswith("alias/") else (
        "alias/" + key_id.split(":alias/", 1)[1] if ":alias/" in key_id else "")
    if alias.startswith("alias/aws/"):
        service = alias.split("/")[2]
        arn = f"arn:aws:kms:{region}:{account}:alias/{alias[6:]}"
        return arn, aws_managed_key_policy(service, account, region), [alias]
    backend = kms_backends[account][region]
    try:
        key = backend.describe_key(key_id)
    except Exception:
        return f"arn:aws:kms:{region}:{account}:key/{key_id}", None, []
    return key.arn, key.policy, sorted(key.aliases)


# --------------------------------------------------------------------------------------------
# Deliveries


def _context(source_arn: str, source_account: str, *, sources: bool = True) -> dict[str, list[str]]:
    context = {"aws:securetransport": ["true"]}
    if sources:
        context.update({"aws:sourcearn": [source_arn], "aws:sourceaccount": [source_account]})
    return context


def _check(request: Request, policy: Any, *, key: bool = False) -> Decision:
    return evaluate(request, (), policy, key_policy=key)


def _refuse(service: str, decision: Decision, request: Request, what: str) -> DeliveryRefused:
    """The refusal in the wording CloudWatch records for an alarm action the topic refuses
    (AWS re:Post knowledge center, "Why didn't I receive an SNS notification for my CloudWatch
    alarm trigger?": ``Resource: <alarm ARN> is not authorized to perform: SNS:Publish on
    resource: <topic ARN>``), used for every delivery; the reason goes to the live view."""
    source = (request.context.get("aws:sourcearn") or [service])[0]
    prefix, _, name = request.action.partition(":")
    action = f"{prefix.upper() if prefix == 'sns' else prefix}:{name}"
    message = (f"Resource: {source} is not authorized to perform: {action} on resource: "
               f"{request.resource}")
    reason = decision.reason()
    log.warning("%s refused (%s, %s on %s): %s", what, service, request.action,
                request.resource, reason, extra={"activity": "refused"})
    return DeliveryRefused(message, reason)


def _key_check(service: str, source_arn: str, source_account: str, key_id: str | None,
               region: str, account: str, *, send_sources: bool, what: str) -> None:
    if not key_id:
        return
    key_arn, key_policy, _ = resolve_key(key_id, account, region)
    principal = Principal(account=source_account, service=service)
    for action in KEY_USE:
        request = Request(principal, action, key_arn,
                          _context(source_arn, source_account, sources=send_sources))
        decision = _check(request, key_policy, key=True)
        if not decision.allowed:
            raise _refuse(service, decision, request, what)


def authorize_publish(service: str, source_arn: str, topic_arn: str) -> None:
    """A service (EventBridge for a rule, CloudWatch for an alarm) publishing to a topic:
    the topic policy, then the topic's key. Raises DeliveryRefused."""
    if not enabled():
        return
    topic = topic_of(topic_arn)
    if topic is None:
        return  # moto answers NotFound itself
    _, region, account, _ = _arn(topic_arn)
    source_account = _arn(source_arn)[2]
    principal = Principal(account=source_account, service=service)
    what = f"{source_arn.rsplit(':', 1)[-1].rsplit('/', maxsplit=1)[-1]} delivery"
    request = Request(principal, "sns:Publish", topic_arn, _context(source_arn, source_account))
    decision = _check(request, topic.policy)
    if not decision.allowed:
        raise _refuse(service, decision, request, what)
    _key_check(service, source_arn, source_account, topic.kms_master_key_id or None, region,
               account, send_sources=service != "events.amazonaws.com", what=what)


def authorize_sns_to_sqs(topic_arn: str, queue_arn: str) -> None:
    """SNS delivering a topic's message to a subscribed queue. Raises DeliveryRefused."""
    if not enabled():
        return
    queue = queue_of(queue_arn)
    if queue is None:
        return
    _, region, account, _ = _arn(queue_arn)
    topic_account = _arn(topic_arn)[2]
    service = "sns.amazonaws.com"
    what = f"{topic_arn.rsplit(':', 1)[-1]} delivery"
    request = Request(Principal(account=topic_account, service=service), "sqs:SendMessage",
                      queue_arn, _context(topic_arn, topic_account))
    decision = _check(request, queue.policy)
    if not decision.allowed:
        raise _refuse(service, decision, request, what)
    key = getattr(queue, "kms_master_key_id", None)
    # Unverified: whether SNS sends aws:Source* to KMS for an encrypted queue; they are sent
    # (a key policy that requires them still works; one that forbids them is not modelled).
    _key_check(service, topic_arn, topic_account, key or None, region, account,
               send_sources=True, what=what)


def sns_delivery_failed(subscription: Any, message: str, refused: DeliveryRefused) -> None:
    """What SNS does with a delivery the endpoint refuses: count NumberOfNotificationsFailed
    (AWS/SNS, dimension TopicName) and move the message to the subscription's dead-letter
    queue when its RedrivePolicy names one (SNS Developer Guide, "Amazon SNS dead-letter
    queues"); otherwise it is discarded, as on AWS."""
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.sqs.models import sqs_backends

    topic_arn = subscription.topic.arn
    _, region, account, name = _arn(topic_arn)
    cloudwatch_backends[account][region].put_metric_data("AWS/SNS", [{
        "MetricName": "NumberOfNotificationsFailed", "Value": 1.0, "Unit": "Count",
        "Dimensions": [{"Name": "TopicName", "Value": name}]}])
    redrive = subscription.attributes.get("RedrivePolicy")
    dlq = json.loads(redrive).get("deadLetterTargetArn") if redrive else None
    if not dlq:
        log.warning("SNS %s could not deliver to %s and the subscription has no DLQ: message "
                    "discarded (%s)", name, subscription.endpoint, refused.reason)
        return
    _, dlq_region, dlq_account, dlq_name = _arn(dlq)
    sqs_backends[dlq_account][dlq_region].send_message(dlq_name, message)


def subscription_publish(original: Any) -> Any:
    """Patch of moto's ``Subscription.publish``: an SQS delivery is authorized first (after
    the subscription's filter policy, which decides whether SNS delivers at all); a refused one
    is counted and dead-lettered by :func:`sns_delivery_failed` instead of reaching the queue."""

    def publish(self: Any, message: str, message_id: str, subject: str | None = None,
                message_attributes: dict[str, Any] | None = None, *args: Any,
                **kwargs: Any) -> Any:
        matcher = getattr(self, "_filter_policy_matcher", None)
        if self.protocol == "sqs" and enabled() and (
                matcher is None or matcher.matches(message_attributes, message)):
            try:
                authorize_sns_to_sqs(self.topic.arn, self.endpoint)
            except DeliveryRefused as refused:
                sns_delivery_failed(self, message, refused)
                return None
        return original(self, message, message_id, subject, message_attributes, *args,
                        **kwargs)

    return publish
