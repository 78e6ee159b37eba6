"""AWS's eventual consistency, emulated in moto: the states and refusals AWS shows for a while
after a change, so the waits and retries `pipelinectl` needs on AWS run locally too.

moto applies every change at once. AWS does not, and `pipelinectl` copes (resources/queues.py,
table.py, subscriptions.py, function.py); without this module those code paths only ever ran
against injected answers. ``apply(mode)`` installs the patches below (``off`` removes them):

- ``aws``: AWS's documented durations where AWS documents one, else a typical one (said so);
- ``fast``: every state transition kept, each shortened so tests and demos stay quick;
- ``off``: moto's instant behaviour.

Each behaviour: its AWS source, what moto does, what the patch does.

1. SQS DeleteQueue (API reference): "you must wait at least 60 seconds before creating a queue
   with the same name". moto reuses the name at once; here CreateQueue answers
   ``AWS.SimpleQueueService.QueueDeletedRecently`` during the window.
2. DynamoDB DeleteTable (API reference): "the specified table is in the DELETING state until
   DynamoDB completes the deletion" (no duration documented). moto forgets the table at once;
   here DescribeTable shows it DELETING and CreateTable of its name is ResourceInUseException.
3. Lambda function states (Developer Guide, "Lambda function states"): a new function is
   ``Pending`` before ``Active``; an update leaves ``LastUpdateStatus`` ``InProgress`` for a
   while; "Any invocations or other API actions that operate on the function will fail" while
   Pending, and a second update during one in progress is refused with
   ResourceConflictException. moto is Active/Successful at once.
4. Lambda event source mappings (API reference, CreateEventSourceMapping/DeleteEventSourceMapping;
   states Creating, Enabling, Enabled, Disabling, Disabled, Updating, Deleting): "When you delete
   an event source mapping, it enters a Deleting state and might not be completely deleted for
   several seconds." moto has Enabled/Disabled only; here a new mapping is ``Creating`` (not
   polled) and a deleted one stays listed ``Deleting`` (a new mapping for the same queue and
   function is refused with ResourceConflictException until it is gone).
5. IAM is eventually consistent (IAM User Guide, "Troubleshoot IAM", "Changes that I make are
   not always immediately visible"; no duration documented): Lambda refuses a role it cannot
   assume yet with InvalidParameterValueException "The role defined for the function cannot be
   assumed by Lambda.", and a mapping whose function's role policy has not propagated with
   "The function execution role does not have permissions to call ReceiveMessage on SQS".
   moto accepts at once.
6. S3 EventBridge notifications (S3 User Guide, "Enabling Amazon EventBridge"): "After you
   enable EventBridge, it takes around five minutes for the changes to take effect". moto
   sends at once; here events of objects created in the window are not sent (a warning says
   so), and the window is stated at ``GET /_pipelinectl/info`` (``s3_eventbridge_delay_seconds``).
7. KMS (Developer Guide, "Use aliases to control access to KMS keys"): "It might take up to
   five minutes for tag and alias changes to affect KMS key authorization." moto evaluates no
   key authorization at all; :func:`authorizing_aliases` gives the aliases authorization sees
   (``kms:ResourceAliases``), lagging CreateAlias/UpdateAlias/DeleteAlias by the window, for a
   policy evaluator to use. The pipeline grants its key by ARN for exactly this reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from pipelinectl.localaws.motocompat import _Patch, install, uninstall

log = logging.getLogger(__name__)

MODES = ("aws", "fast", "off")
DEFAULT_MODE = "aws"  # `pipelinectl local`; LocalAws itself defaults to "off"


@dataclass(frozen=True)
class Durations:
    """Seconds each transitional state lasts."""

    queue_name_reuse: float = 0.0
    table_deleting: float = 0.0
    function_pending: float = 0.0
    function_updating: float = 0.0
    mapping_creating: float = 0.0
    mapping_deleting: float = 0.0
    role_propagation: float = 0.0
    s3_eventbridge: float = 0.0
    kms_alias: float = 0.0


DURATIONS = {
    # Documented: queue name 60 s, S3 EventBridge "around five minutes", KMS alias "up to five
    # minutes". Typical (AWS documents none): a table's deletion and a mapping's, a function's
    # Pending and InProgress, IAM role propagation ("seconds" in practice).
    "aws": Durations(queue_name_reuse=60, table_deleting=10, function_pending=3,
                     function_updating=3, mapping_creating=5, mapping_deleting=5,
                     role_propagation=10, s3_eventbridge=300, kms_alias=300),
    # Long enough to be seen by the next call (a queue name refused across `teardown` and the
    # `up` that follows it), short enough for a test suite.
    "fast": Durations(queue_name_reuse=10, table_deleting=2, function_pending=1,
                      function_updating=1, mapping_creating=1, mapping_deleting=2,
                      role_propagation=2, s3_eventbridge=1, kms_alias=2),
    "off": Durations(),
}

clock: Callable[[], float] = time.monotonic


class _State:
    """When each change was made, and what the current mode makes of it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.durations = DURATIONS["off"]
        self.mode = "off"
        self.reset()

    def reset(self) -> None:
        self.queues: dict[tuple[str, str, str], float] = {}  # (account, region, name) -> at
        self.tables: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
        self.roles: dict[str, float] = {}  # role ARN -> created/trust changed at
        self.role_policies: dict[str, float] = {}  # role ARN -> inline policy put at
        self.mappings: dict[int, list[tuple[float, Any]]] = {}  # id(backend) -> deleted
        self.buckets: dict[str, float] = {}  # bucket name -> EventBridge enabled at
        self.aliases: dict[tuple[str, str, str], list[tuple[float, str | None]]] = {}

    def within(self, at: float | None, duration: float) -> bool:
        return at is not None and clock() < at + duration


state = _State()
_applied: list[_Patch] = []


def apply(mode: str) -> None:
    """Emulate AWS's consistency with ``mode``'s durations (``off``: moto's own behaviour)."""
    if mode not in MODES:
        raise ValueError(f"consistency must be one of {', '.join(MODES)}, not {mode!r}")
    with state.lock:
        state.mode, state.durations = mode, DURATIONS[mode]
        state.reset()
    if mode == "off":
        revert()
        return
    install(_applied, _patches)


def revert() -> None:
    uninstall(_applied)


def describe() -> dict[str, Any]:
    """The mode and its durations, for ``GET /_pipelinectl/info``."""
    return {"consistency": state.mode,
            "consistency_seconds": {f.name: getattr(state.durations, f.name)
                                    for f in fields(Durations)},
            "s3_eventbridge_delay_seconds": state.durations.s3_eventbridge}


def _patches() -> list[_Patch]:
    from moto.awslambda.models import EventSourceMapping, LambdaBackend, LambdaFunction
    from moto.dynamodb.models import DynamoDBBackend
    from moto.iam.models import IAMBackend
    from moto.kms.models import KmsBackend
    from moto.s3 import notifications
    from moto.s3.models import S3Backend
    from moto.sqs.models import SQSBackend

    from pipelinectl.localaws import consistency_lambda as lam

    return [
        _Patch(SQSBackend, "delete_queue", _delete_queue),
        _Patch(SQSBackend, "create_queue", _create_queue),
        _Patch(DynamoDBBackend, "delete_table", _delete_table),
        _Patch(DynamoDBBackend, "describe_table", _describe_table),
        _Patch(DynamoDBBackend, "create_table", _create_table),
        _Patch(IAMBackend, "create_role", _role_changed),
        _Patch(IAMBackend, "update_assume_role_policy", _role_changed),
        _Patch(IAMBackend, "put_role_policy", _role_policy_put),
        _Patch(LambdaFunction, "get_configuration", lam.function_configuration),
        _Patch(LambdaBackend, "create_function", lam.create_function),
        _Patch(LambdaBackend, "update_function_code", lam.update_function),
        _Patch(LambdaBackend, "update_function_configuration", lam.update_function),
        _Patch(EventSourceMapping, "get_configuration", lam.mapping_configuration),
        _Patch(LambdaBackend, "create_event_source_mapping", lam.create_mapping),
        _Patch(LambdaBackend, "delete_event_source_mapping", lam.delete_mapping),
        _Patch(LambdaBackend, "get_event_source_mapping", lam.get_mapping),
        _Patch(LambdaBackend, "list_event_source_mappings", lam.list_mappings),
        _Patch(S3Backend, "put_bucket_notification_configuration", _bucket_notifications),
        _Patch(notifications, "_send_event_bridge_message", _hold_back_s3_events),
        _Patch(KmsBackend, "create_alias", _alias_changed),
        _Patch(KmsBackend, "update_alias", _alias_changed),
        _Patch(KmsBackend, "delete_alias", _alias_deleted),
    ]


# -- 1. SQS ---------------------------------------------------------------------------------

QUEUE_DELETED_RECENTLY = ("You must wait 60 seconds after deleting a queue before you can "
                          "create another with the same name.")


def _delete_queue(original: Callable[..., None]) -> Callable[..., None]:
    def delete_queue(self: Any, queue_name: str) -> None:
        original(self, queue_name)
        state.queues[(self.account_id, self.region_name, queue_name)] = clock()

    return delete_queue


def _create_queue(original: Callable[..., Any]) -> Callable[..., Any]:
    from moto.sqs.exceptions import SQSException

    def create_queue(self: Any, name: str, tags: Any = None, **kwargs: Any) -> Any:
        deleted = state.queues.get((self.account_id, self.region_name, name))
        if name not in self.queues and state.within(deleted, state.durations.queue_name_reuse):
            raise SQSException("AWS.SimpleQueueService.QueueDeletedRecently",
                               QUEUE_DELETED_RECENTLY)
        return original(self, name, tags, **kwargs)

    return create_queue


# -- 2. DynamoDB ----------------------------------------------------------------------------


def _delete_table(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_table(self: Any, name: str) -> Any:
        table = original(self, name)
        described = table.describe(base_key="Table")
        described["Table"]["TableStatus"] = "DELETING"
        state.tables[(self.account_id, self.region_name, name)] = (clock(), described)
        return table

    return delete_table


def _deleting_table(backend: Any, name: str) -> dict[str, Any] | None:
    at, described = state.tables.get((backend.account_id, backend.region_name, name),
                                     (None, None))
    if name in backend.tables or not state.within(at, state.durations.table_deleting):
        return None
    return described


def _describe_table(original: Callable[..., Any]) -> Callable[..., Any]:
    def describe_table(self: Any, name: str) -> Any:
        deleting = _deleting_table(self, name)
        return dict(deleting) if deleting is not None else original(self, name)

    return describe_table


def _create_table(original: Callable[..., Any]) -> Callable[..., Any]:
    from moto.dynamodb.exceptions import ResourceInUseException

    def create_table(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if _deleting_table(self, name) is not None:
            raise ResourceInUseException(f"Table already exists: {name}")
        return original(self, name, *args, **kwargs)

    return create_table


# -- 5. IAM ---------------------------------------------------------------------------------


def _role_changed(original: Callable[..., Any]) -> Callable[..., Any]:
    def changed(self: Any, role_name: str, *args: Any, **kwargs: Any) -> Any:
        result = original(self, role_name, *args, **kwargs)
        state.roles[self.get_role(role_name).arn] = clock()
        return result

    return changed


def _role_policy_put(original: Callable[..., Any]) -> Callable[..., Any]:
    def put_role_policy(self: Any, role_name: str, *args: Any, **kwargs: Any) -> Any:
        result = original(self, role_name, *args, **kwargs)
        state.role_policies[self.get_role(role_name).arn] = clock()
        return result

    return put_role_policy


def role_assumable(role_arn: str) -> bool:
    return not state.within(state.roles.get(role_arn), state.durations.role_propagation)


def role_policy_propagated(role_arn: str) -> bool:
    return not state.within(state.role_policies.get(role_arn),
                            state.durations.role_propagation)


# -- 6. S3 -> EventBridge -------------------------------------------------------------------


def _bucket_notifications(original: Callable[..., None]) -> Callable[..., None]:
    def put(self: Any, bucket_name: str, notification_config: dict[str, Any]) -> None:
        config = self.get_bucket(bucket_name).notification_configuration
        was_on = config is not None and config.event_bridge is not None
        original(self, bucket_name, notification_config)
        config = self.get_bucket(bucket_name).notification_configuration
        now_on = config is not None and config.event_bridge is not None
        if now_on and not was_on:
            state.buckets[bucket_name] = clock()

    return put


def _hold_back_s3_events(original: Callable[..., None]) -> Callable[..., None]:
    def send(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        enabled = state.buckets.get(bucket.name)
        delay = state.durations.s3_eventbridge
        if state.within(enabled, delay):
            log.warning(
                "S3 did not send %s for s3://%s/%s to EventBridge: the bucket's EventBridge "
                "notifications were enabled %.0fs ago and take about %gs to take effect "
                "(consistency %s)", event_name, bucket.name, key.name,
                clock() - (enabled or 0.0), delay, state.mode)
            return
        original(account_id, bucket, event_name, key)

    return send


# -- 7. KMS aliases -------------------------------------------------------------------------


def _alias_changed(original: Callable[..., Any]) -> Callable[..., Any]:
    def changed(self: Any, target_key_id: str, alias_name: str) -> Any:
        before = next((k.id for k in self.keys.values() if alias_name in k.aliases), None)
        alias = original(self, target_key_id, alias_name)
        _alias_history(self, alias_name, before).append((clock(), alias.target_key_id))
        return alias

    return changed


def _alias_deleted(original: Callable[..., None]) -> Callable[..., None]:
    def delete_alias(self: Any, alias_name: str) -> None:
        before = next((k.id for k in self.keys.values() if alias_name in k.aliases), None)
        original(self, alias_name)
        _alias_history(self, alias_name, before).append((clock(), None))

    return delete_alias


def _alias_history(backend: Any, alias: str, before: str | None
                   ) -> list[tuple[float, str | None]]:
    """(changed at, key id it named from then on); starts with what it named before."""
    return state.aliases.setdefault((backend.account_id, backend.region_name, alias),
                                    [(float("-inf"), before)])


def authorizing_aliases(account: str, region: str, key_id: str) -> set[str]:
    """The aliases KMS authorization associates with ``key_id`` now (``kms:ResourceAliases``):
    an alias change counts only once the window has passed since it was made."""
    from moto.kms.models import kms_backends

    backend = kms_backends[account][region]
    current = {name for name in backend.keys[key_id].aliases} if key_id in backend.keys else set()
    for (acct, reg, alias), history in list(state.aliases.items()):
        if (acct, reg) != (account, region):
            continue
        settled = [target for at, target in history
                   if not state.within(at, state.durations.kms_alias)]
        current.discard(alias)
        if settled and settled[-1] == key_id:
            current.add(alias)
    return current
