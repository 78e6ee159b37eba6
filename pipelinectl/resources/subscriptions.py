"""What connects the pieces: topic -> queue subscription, queue -> function mapping, and the
optional alert e-mail subscription. None of these carry tags: they are ours because they hang
off our topic, queue and function, and are only ever found through them."""

from __future__ import annotations

import contextlib
from typing import Any

from pipelinectl.errors import PipelineError
from pipelinectl.resources.base import (
    Health,
    HealthLevel,
    Observed,
    Resource,
    error_code,
    wait_until,
)
from pipelinectl.resources.function import Function, retry_while_role_propagates
from pipelinectl.resources.queues import Queue
from pipelinectl.resources.topics import AlertsTopic, IngestTopic

BATCH_FAILURES = ["ReportBatchItemFailures"]
# Lambda API reference, DeleteEventSourceMapping: "When you delete an event source mapping, it
# enters a Deleting state and might not be completely deleted for several seconds." Until it
# is gone Lambda may still deliver batches (teardown waits before deleting what the function
# writes into) and a new mapping for the same queue and function conflicts with it (`up`
# waits). Lambda has no waiter for this, so we poll GetEventSourceMapping.
MAPPING_GONE_DELAYS = (1.0, 2.0, 3.0) + (5.0,) * 23


class _Subscription(Resource):
    step = "subscribe"
    taggable = False

    def topic_arn(self) -> str:
        raise NotImplementedError

    def protocol_endpoint(self) -> tuple[str, str]:
        raise NotImplementedError

    @property
    def arn(self) -> str:
        """SNS assigns a subscription's ARN: `arn_of` has it once read or created."""
        return f"{self.topic_arn()}:*"

    def arn_of(self, observed: Observed) -> str:
        arn = str(observed.get("arn", ""))
        return arn if arn.startswith("arn:") else self.arn  # a pending e-mail has none yet

    def find(self) -> dict[str, Any] | None:
        sns = self.ctx.client("sns")
        protocol, endpoint = self.protocol_endpoint()
        try:
            for page in sns.get_paginator("list_subscriptions_by_topic").paginate(
                    TopicArn=self.topic_arn()):
                for sub in page.get("Subscriptions", []):
                    if sub["Protocol"] == protocol and sub["Endpoint"] == endpoint:
                        return dict(sub)
        except Exception as exc:
            if error_code(exc) in {"NotFound", "NotFoundException"}:
                return None
            raise
        return None

    def delete(self, observed: Observed) -> None:
        arn = observed["arn"]
        if arn.startswith("arn:"):  # a pending e-mail confirmation cannot be unsubscribed
            self.ctx.client("sns").unsubscribe(SubscriptionArn=arn)


class QueueSubscription(_Subscription):
    kind = "SNS subscription"

    @property
    def name(self) -> str:
        return f"{self.ctx.names.ingest_topic} -> {self.ctx.names.queue}"

    def topic_arn(self) -> str:
        return self.ctx.arn("sns", self.ctx.names.ingest_topic)

    def protocol_endpoint(self) -> tuple[str, str]:
        return "sqs", self.ctx.arn("sqs", self.ctx.names.queue)

    def parents(self) -> list[Resource]:
        return [IngestTopic(self.ctx), Queue(self.ctx)]

    def desired(self) -> Observed:
        return {"raw_delivery": False}

    def read(self) -> Observed | None:
        sub = self.find()
        if sub is None:
            return None
        attrs = self.ctx.client("sns").get_subscription_attributes(
            SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        return {"arn": sub["SubscriptionArn"],
                "raw_delivery": attrs.get("RawMessageDelivery", "false") == "true"}

    def create(self) -> str:
        protocol, endpoint = self.protocol_endpoint()
        created = self.ctx.client("sns").subscribe(
            TopicArn=self.topic_arn(), Protocol=protocol, Endpoint=endpoint,
            ReturnSubscriptionArn=True, Attributes={"RawMessageDelivery": "false"})
        return str(created["SubscriptionArn"])

    def update(self, fields: set[str], observed: Observed) -> None:
        self.ctx.client("sns").set_subscription_attributes(
            SubscriptionArn=observed["arn"], AttributeName="RawMessageDelivery",
            AttributeValue="false")

    def health(self, observed: Observed) -> Health:
        return "confirmed", "ok", {"arn": observed["arn"]}


class EmailSubscription(_Subscription):
    kind = "SNS e-mail subscription"

    @property
    def name(self) -> str:
        return f"{self.ctx.names.alerts_topic} -> {self.ctx.config.alert_email}"

    def topic_arn(self) -> str:
        return self.ctx.arn("sns", self.ctx.names.alerts_topic)

    def protocol_endpoint(self) -> tuple[str, str]:
        return "email", str(self.ctx.config.alert_email)

    def parents(self) -> list[Resource]:
        return [AlertsTopic(self.ctx)]

    def desired(self) -> Observed:
        return {}

    def read(self) -> Observed | None:
        sub = self.find()
        return None if sub is None else {"arn": sub["SubscriptionArn"]}

    def create(self) -> None:
        protocol, endpoint = self.protocol_endpoint()
        self.ctx.client("sns").subscribe(TopicArn=self.topic_arn(), Protocol=protocol,
                                         Endpoint=endpoint)

    def update(self, fields: set[str], observed: Observed) -> None:
        """Nothing to update: an e-mail subscription has no settings we manage."""

    def health(self, observed: Observed) -> Health:
        if observed["arn"].startswith("arn:"):
            return "confirmed", "ok", {}
        return "pending confirmation (check the inbox)", "warn", {}


class EventSourceMapping(Resource):
    step = "subscribe"
    kind = "event source mapping"
    taggable = False

    @property
    def name(self) -> str:
        return f"{self.ctx.names.queue} -> {self.ctx.names.function}"

    @property
    def arn(self) -> str:
        """Lambda assigns the mapping's UUID: `arn_of` has it once read or created."""
        return self.ctx.arn("lambda", "event-source-mapping:*")

    def arn_of(self, observed: Observed) -> str:
        uuid = observed.get("uuid")
        return self.ctx.arn("lambda", f"event-source-mapping:{uuid}") if uuid else self.arn

    def parents(self) -> list[Resource]:
        return [Function(self.ctx), Queue(self.ctx)]

    def desired(self) -> Observed:
        config = self.ctx.config
        return {"batch_size": config.batch_size,
                "batching_window": config.batching_window_seconds,
                "response_types": BATCH_FAILURES, "enabled": True,
                "maximum_concurrency": config.maximum_concurrency}

    def read(self) -> Observed | None:
        lam = self.ctx.client("lambda")
        queue = self.ctx.arn("sqs", self.ctx.names.queue)
        try:
            mappings = lam.list_event_source_mappings(
                FunctionName=self.ctx.names.function, EventSourceArn=queue
            ).get("EventSourceMappings", [])
        except lam.exceptions.ResourceNotFoundException:
            return None
        live = [m for m in mappings if m.get("State") != "Deleting"]
        if not live:
            return {"deleting": True, "uuids": [m["UUID"] for m in mappings]} if mappings \
                else None
        mapping = live[0]
        return {"uuid": mapping["UUID"],
                "batch_size": mapping.get("BatchSize"),
                "batching_window": mapping.get("MaximumBatchingWindowInSeconds", 0),
                "response_types": mapping.get("FunctionResponseTypes", []),
                "enabled": mapping.get("State") in {"Enabled", "Enabling", "Creating",
                                                    "Updating"},
                "maximum_concurrency": (mapping.get("ScalingConfig") or {}).get(
                    "MaximumConcurrency"),
                "state": mapping.get("State"),
                "last_result": mapping.get("LastProcessingResult")}

    def create(self) -> str:
        wanted = self.desired()
        mapping = retry_while_role_propagates(
            self.ctx, lambda: self.ctx.client("lambda").create_event_source_mapping(
                EventSourceArn=self.ctx.arn("sqs", self.ctx.names.queue),
                FunctionName=self.ctx.names.function, Enabled=True,
                BatchSize=wanted["batch_size"],
                MaximumBatchingWindowInSeconds=wanted["batching_window"],
                FunctionResponseTypes=BATCH_FAILURES, **self._scaling(wanted)))
        return self.arn_of({"uuid": mapping["UUID"]})

    def update(self, fields: set[str], observed: Observed) -> None:
        wanted = self.desired()
        keys = {"batch_size": ("BatchSize", wanted["batch_size"]),
                "batching_window": ("MaximumBatchingWindowInSeconds",
                                    wanted["batching_window"]),
                "response_types": ("FunctionResponseTypes", BATCH_FAILURES),
                "enabled": ("Enabled", True),
                "maximum_concurrency": ("ScalingConfig",
                                        self._scaling(wanted).get("ScalingConfig", {}))}
        changes = dict(keys[f] for f in sorted(fields) if f in keys)
        self.ctx.client("lambda").update_event_source_mapping(UUID=observed["uuid"], **changes)

    @staticmethod
    def _scaling(wanted: Observed) -> dict[str, Any]:
        """ScalingConfig when maximum_concurrency is set. Lambda API reference,
        ScalingConfig: "To remove the configuration, pass an empty value" (so an update
        that unsets it sends {})."""
        maximum = wanted["maximum_concurrency"]
        return {} if maximum is None else {"ScalingConfig": {"MaximumConcurrency": maximum}}

    def delete(self, observed: Observed) -> None:
        lam = self.ctx.client("lambda")
        with contextlib.suppress(lam.exceptions.ResourceNotFoundException):
            lam.delete_event_source_mapping(UUID=observed["uuid"])
        self.wait_deleted({"uuids": [observed["uuid"]]})

    def wait_deleted(self, observed: Observed) -> None:
        lam = self.ctx.client("lambda")

        def gone(uuid: str) -> bool:
            try:
                lam.get_event_source_mapping(UUID=uuid)
            except lam.exceptions.ResourceNotFoundException:
                return True
            return False

        uuids = [u for u in observed["uuids"] if not gone(u)]
        if not uuids:
            return
        self.waiting("Lambda is deleting the event source mapping; waiting until it is gone")
        if not wait_until(lambda: all(gone(u) for u in uuids), MAPPING_GONE_DELAYS):
            raise PipelineError(
                f"The event source mapping {self.name} is still being deleted after "
                f"{sum(MAPPING_GONE_DELAYS):.0f}s; re-run the command in a minute.")

    def health(self, observed: Observed) -> Health:
        state = str(observed["state"])
        level: HealthLevel = "ok" if state == "Enabled" else "warn"
        text = state + (f", last: {observed['last_result']}" if observed["last_result"] else "")
        return text, level, {"uuid": observed["uuid"], "state": state,
                             "batch_size": observed["batch_size"]}
