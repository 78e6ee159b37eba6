"""The processor function and its log group.

The log group is created before the function so retention and tags apply from the first log
line (if Lambda created it, it would keep logs forever and carry no tag). Code is uploaded
only when CodeSha256 differs; configuration is updated only for the fields that differ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pipelinectl import packaging
from pipelinectl.resources.base import (
    KNOWN_AFTER_APPLY,
    Change,
    Context,
    Health,
    HealthLevel,
    Observed,
    Resource,
    error_code,
    retry_while,
)
from pipelinectl.resources.queues import MAX_MESSAGE_BYTES

# What Lambda says while a new role or its policy is still propagating through IAM.
ROLE_NOT_READY = ("cannot be assumed by Lambda",
                  "execution role does not have permissions to call")
WAIT = {"Delay": 1, "MaxAttempts": 120}
# Lambda Developer Guide, "Lambda function states": while LastUpdateStatus is InProgress,
# UpdateFunctionCode and UpdateFunctionConfiguration fail (ResourceConflictException "An
# update is in progress"), so every update waits for the previous one first; "When function
# creation fails, Lambda sets the function state to Failed, and you must delete and recreate
# the function"; a failed update (LastUpdateStatus Failed) leaves the previous code and
# configuration in place, so the update is made again.
CONFIG_FIELDS = ("runtime", "handler", "role", "timeout", "memory", "environment")


def metrics_namespace(ctx: Context) -> str:
    """The CloudWatch namespace of the processor's EMF metrics (its
    POWERTOOLS_METRICS_NAMESPACE), which `top` reads back."""
    return f"pipelinectl/{ctx.config.name}"


class LogGroup(Resource):
    step = "lambda"
    kind = "log group"

    @property
    def name(self) -> str:
        return self.ctx.names.log_group

    @property
    def arn(self) -> str:
        return self.ctx.arn("logs", f"log-group:{self.name}")

    def desired(self) -> Observed:
        return {"retention_days": self.ctx.config.log_retention_days, "tags": self.ctx.tags}

    def read(self) -> Observed | None:
        logs = self.ctx.client("logs")
        groups = logs.describe_log_groups(logGroupNamePrefix=self.name).get("logGroups", [])
        group = next((g for g in groups if g["logGroupName"] == self.name), None)
        if group is None:
            return None
        tags = logs.list_tags_for_resource(resourceArn=self.arn).get("tags", {})
        return {"retention_days": group.get("retentionInDays"), "tags": tags,
                "stored_bytes": group.get("storedBytes", 0)}

    def create(self) -> None:
        self.ctx.client("logs").create_log_group(logGroupName=self.name, tags=self.ctx.tags)
        self._put_retention()

    def _put_retention(self) -> None:
        self.ctx.client("logs").put_retention_policy(
            logGroupName=self.name, retentionInDays=self.ctx.config.log_retention_days)

    def update(self, fields: set[str], observed: Observed) -> None:
        if "retention_days" in fields:
            self._put_retention()
        if "tags" in fields:
            self.ctx.client("logs").tag_resource(resourceArn=self.arn, tags=self.ctx.tags)

    def delete(self, observed: Observed) -> None:
        logs = self.ctx.client("logs")
        with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
            logs.delete_log_group(logGroupName=self.name)

    def health(self, observed: Observed) -> Health:
        return f"retention {observed['retention_days']} days", "ok", {
            "retention_days": observed["retention_days"]}


class Function(Resource):
    step = "lambda"
    kind = "Lambda function"
    secret_fields = frozenset({"environment"})

    @property
    def name(self) -> str:
        return self.ctx.names.function

    @property
    def arn(self) -> str:
        return self.ctx.arn("lambda", f"function:{self.name}")

    def artifact(self) -> packaging.Artifact:
        artifact: packaging.Artifact = self.ctx.artifact()
        return artifact

    def environment(self) -> dict[str, str]:
        """No call: the queues' URLs are what the queue step read or created (ctx.learned)."""
        ctx, names = self.ctx, self.ctx.names
        dlq_url, queue_url = ctx.learned.dlq_url, ctx.learned.queue_url
        return {
            "PIPELINE_NAME": ctx.config.name,
            "TABLE_NAME": names.table,
            "ALERTS_TOPIC_ARN": ctx.arn("sns", names.alerts_topic),
            "DLQ_URL": dlq_url or KNOWN_AFTER_APPLY,
            "DLQ_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),  # the queue step sets it on the DLQ
            "ALERT_THRESHOLD": str(ctx.config.alert_threshold),
            "REJECTS_PREFIX": "rejected/",
            "CONFLICTING_DUPLICATES": ctx.config.conflicting_duplicates,
            # Large files: parts and continuations go to the pipeline's own queue.
            "QUEUE_URL": queue_url or KNOWN_AFTER_APPLY,
            "PART_BYTES": str(ctx.config.part_bytes),
            "SPLIT_THRESHOLD_BYTES": str(ctx.config.split_threshold_bytes),
            "POWERTOOLS_SERVICE_NAME": names.function,
            "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace(ctx),
        }

    def desired(self) -> Observed:
        return {
            "code_sha256": self.artifact().sha256,
            "runtime": packaging.RUNTIME,
            "handler": packaging.HANDLER,
            "role": self.ctx.arn("iam", f"role/{self.ctx.names.role}", region=False),
            "timeout": self.ctx.config.function_timeout,
            "memory": self.ctx.config.function_memory,
            "environment": self.environment(),
            "tags": self.ctx.tags,
            "reserved_concurrency": self.ctx.config.reserved_concurrency,
        }

    def read(self) -> Observed | None:
        lam = self.ctx.client("lambda")
        try:
            function = lam.get_function(FunctionName=self.name)
        except lam.exceptions.ResourceNotFoundException:
            return None
        conf = function["Configuration"]
        return {
            "code_sha256": conf.get("CodeSha256"),
            "runtime": conf.get("Runtime"),
            "handler": conf.get("Handler"),
            "role": conf.get("Role"),
            "timeout": conf.get("Timeout"),
            "memory": conf.get("MemorySize"),
            "environment": conf.get("Environment", {}).get("Variables", {}),
            "tags": function.get("Tags", {}),
            "state": conf.get("State", "Active"),
            "state_reason": conf.get("StateReason", ""),
            "last_update": conf.get("LastUpdateStatus", "Successful"),
            "last_update_reason": conf.get("LastUpdateStatusReason", ""),
            "code_size": conf.get("CodeSize", 0),
            # Its own read: moto's GetFunction leaves out a reserved concurrency of 0.
            "reserved_concurrency": lam.get_function_concurrency(
                FunctionName=self.name).get("ReservedConcurrentExecutions"),
        }

    def _configuration(self) -> dict[str, Any]:
        wanted = self.desired()
        return {"Runtime": wanted["runtime"], "Handler": wanted["handler"],
                "Role": wanted["role"], "Timeout": wanted["timeout"],
                "MemorySize": wanted["memory"],
                "Environment": {"Variables": wanted["environment"]}}

    def plan(self, observed: Observed | None = None, *, read: bool = True) -> Change:
        """A function Lambda left Failed is not "unchanged", whatever its fields say."""
        if read:
            observed = self.read()
        planned = super().plan(observed, read=False)
        if observed is None or planned.action not in {"update", "unchanged"}:
            return planned
        if observed["state"] == "Failed":
            return self.change("replace", detail=(
                f"Lambda left it in state Failed ({observed['state_reason'] or 'no reason'})"
                ": a function whose creation failed is deleted and created again"))
        if observed["last_update"] == "Failed":
            fields = ("code_sha256", *CONFIG_FIELDS, *(
                f for f in planned.fields if f not in {"code_sha256", *CONFIG_FIELDS}))
            return replace(self.change("update", fields, detail=(
                f"its last update failed ({observed['last_update_reason'] or 'no reason'})"
                ": code and configuration are applied again")), drift=planned.drift)
        return planned

    def create(self) -> None:
        artifact = self.artifact()
        retry_while_role_propagates(self.ctx, lambda: self.ctx.client("lambda").create_function(
            FunctionName=self.name, Code={"ZipFile": artifact.data}, PackageType="Zip",
            Description=f"pipelinectl: processor of pipeline {self.ctx.config.name}",
            Tags=self.ctx.tags, Publish=False, **self._configuration()))
        self._wait("function_active_v2")
        if self.ctx.config.reserved_concurrency is not None:
            self._put_concurrency()

    def update(self, fields: set[str], observed: Observed) -> None:
        lam = self.ctx.client("lambda")
        if observed.get("state") == "Pending":
            self._wait("function_active_v2")
        if observed.get("last_update") == "InProgress":
            self.waiting("Lambda is still applying a previous update; waiting for it")
            self._wait("function_updated_v2")
        if "code_sha256" in fields:
            lam.update_function_code(FunctionName=self.name, ZipFile=self.artifact().data)
            self._wait("function_updated_v2")
        keys = dict(zip(CONFIG_FIELDS, ("Runtime", "Handler", "Role", "Timeout", "MemorySize",
                                        "Environment"), strict=True))
        configuration = self._configuration()
        changed = {keys[f]: configuration[keys[f]] for f in sorted(fields) if f in keys}
        if changed:
            retry_while_role_propagates(self.ctx, lambda: lam.update_function_configuration(
                FunctionName=self.name, **changed))
            self._wait("function_updated_v2")
        if "tags" in fields:
            lam.tag_resource(Resource=self.arn, Tags=self.ctx.tags)
        if "reserved_concurrency" in fields:
            self._put_concurrency()

    def _put_concurrency(self) -> None:
        """PutFunctionConcurrency, or DeleteFunctionConcurrency when the key is unset (Lambda
        API reference: 0 stops the function; without a reservation it shares the account's
        unreserved pool). Not a configuration update: no InProgress to wait for."""
        lam, reserved = self.ctx.client("lambda"), self.ctx.config.reserved_concurrency
        if reserved is None:
            lam.delete_function_concurrency(FunctionName=self.name)
        else:
            lam.put_function_concurrency(FunctionName=self.name,
                                         ReservedConcurrentExecutions=reserved)

    def _wait(self, waiter: str) -> None:
        self.ctx.client("lambda").get_waiter(waiter).wait(FunctionName=self.name,
                                                           WaiterConfig=WAIT)

    def delete(self, observed: Observed) -> None:
        lam = self.ctx.client("lambda")
        with contextlib.suppress(lam.exceptions.ResourceNotFoundException):
            lam.delete_function(FunctionName=self.name)

    def health(self, observed: Observed) -> Health:
        state, update = observed["state"], observed["last_update"]
        level: HealthLevel = "ok" if state == "Active" and update == "Successful" else (
            "error" if "Failed" in (state, update) else "warn")
        return f"{state} ({update})", level, {
            "state": state, "last_update": update, "code_size": observed["code_size"],
            "runtime": observed["runtime"]}


def retry_while_role_propagates(ctx: Context, call: Callable[[], Any]) -> Any:
    """A new role (or a policy change) takes seconds to reach Lambda, which refuses it until
    then; retry those refusals, boundedly, and nothing else."""
    def not_ready(exc: Exception) -> bool:
        return error_code(exc) == "InvalidParameterValueException" and any(
            marker in str(exc) for marker in ROLE_NOT_READY)

    return retry_while(not_ready, call, lambda exc: (
        f"Lambda still cannot use role {ctx.names.role} after about a minute ({exc}); "
        "check it with `pipelinectl roles` and re-run."))
