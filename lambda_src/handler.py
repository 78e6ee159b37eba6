"""Lambda entry point: ``lambda_src.handler.lambda_handler`` (SQS event source mapping with
``ReportBatchItemFailures``).

Clients and settings are created lazily, once per container, on the first invocation - not
at import - so the environment (including ``AWS_ENDPOINT_URL`` from the local AWS, which
botocore honours natively) can be set before anything talks to AWS, and so a bad
configuration fails the invocation with one clear error instead of failing the import.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from botocore.config import Config as BotoConfig

from .alerts import Alerter
from .batch import BatchRun, Stats
from .config import Settings
from .fileruns import FileRuns
from .files import FileProcessor
from .observability import logger
from .persist import Persister
from .rejects import DeadLetters
from .storage import TransactionStore

#: Lambda's maximum timeout: the claim lease when no context tells us the real deadline.
MAX_INVOCATION_MS = 900_000
BOTO_CONFIG = BotoConfig(
    retries={"mode": "standard", "max_attempts": 4},  # throttling/5xx retried with backoff
    connect_timeout=3,
    read_timeout=15,
    user_agent_extra="pipelinectl-processor",
)


@dataclass
class Runtime:
    """Everything that lives for the container's lifetime."""

    settings: Settings
    persister: Persister
    files: FileProcessor
    dead_letters: DeadLetters
    metrics: Metrics
    clock: Callable[[], float]

    @classmethod
    def from_env(cls, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 session: boto3.session.Session | None = None) -> Runtime:
        """Build clients from the environment (region, credentials, endpoint: botocore's)."""
        settings = Settings.from_env()
        session = session or boto3.session.Session()
        store = TransactionStore(session.client("dynamodb", config=BOTO_CONFIG),
                                 settings.table_name, sleep=sleep)
        alerter = Alerter(session.client("sns", config=BOTO_CONFIG), settings.alerts_topic_arn,
                          settings.alert_threshold, settings.pipeline_name)
        persister = Persister(store, alerter, settings.alert_threshold, clock,
                              last_wins=settings.conflicting_duplicates == "last_wins")
        sqs = session.client("sqs", config=BOTO_CONFIG)
        runs = FileRuns(store.client, settings.table_name, clock)
        return cls(
            settings=settings,
            persister=persister,
            files=FileProcessor(session.client("s3", config=BOTO_CONFIG), persister, settings,
                                sqs=sqs, runs=runs, clock=clock),
            dead_letters=DeadLetters(sqs, settings.dlq_url, settings.pipeline_name,
                                     settings.dlq_max_message_bytes),
            metrics=Metrics(
                namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "pipelinectl",
                service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "processor",
            ),
            clock=clock,
        )


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The container's runtime, built on first use."""
    global _runtime  # noqa: PLW0603 - one per container is the point
    if _runtime is None:
        _runtime = Runtime.from_env()
    return _runtime


def reset_runtime(runtime: Runtime | None = None) -> None:
    """Drop (or replace) the cached runtime; tests use it after changing the environment."""
    global _runtime  # noqa: PLW0603
    _runtime = runtime


def _init_phase() -> None:
    """Build the runtime (configuration, SDK clients) while Lambda imports the module: the
    init phase, which is not part of the function timeout. Lambda Developer Guide, "Best
    practices for working with AWS Lambda functions": "Initialize SDK clients and database
    connections outside of the function handler". Built in the first invocation instead, a
    new execution environment's first slice of a large file had a second less of its 3 s
    and timed out after handing on (seen on `pipelinectl local` after killed workers). A
    configuration error is left to the invocation, which reports it as before."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and _runtime is None:
        try:
            reset_runtime(Runtime.from_env())
        except Exception:  # reported by get_runtime() in the invocation
            logger.warning("could not prepare the runtime at init; retried per invocation",
                           exc_info=True)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS batch in, ``{"batchItemFailures": [...]}`` out."""
    return handle(event, context, get_runtime())


def handle(event: dict[str, Any], context: Any, runtime: Runtime) -> dict[str, Any]:
    """Process one SQS batch with an explicit runtime (the seam tests and the bench use)."""
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        logger.append_keys(request_id=request_id)
    runtime.persister.store.request_id = request_id  # stored on the items this one writes
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise ValueError("expected an SQS event with a Records list")
    run = BatchRun(runtime.settings, runtime.persister, runtime.files, runtime.dead_letters,
                   _deadline_ms(context, runtime.clock))
    run.prepare(records)
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=run.handle_record, processor=processor, context=context
    )
    failures = len(response.get("batchItemFailures", []))
    _publish_metrics(runtime.metrics, run.stats, failures)
    logger.info("batch processed", extra={"records": len(records), "failures": failures,
                                          "stored": run.stats.stored,
                                          "rejected": run.stats.rejected,
                                          "alerts_sent": run.stats.alerts_sent})
    return dict(response)


def _deadline_ms(context: Any, clock: Callable[[], float]) -> int:
    """When this invocation is killed at the latest: the end of any alert claim it takes."""
    now_ms = int(clock() * 1000)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return now_ms + (int(remaining()) if callable(remaining) else MAX_INVOCATION_MS)


def _publish_metrics(metrics: Metrics, stats: Stats, failures: int) -> None:
    """One EMF blob per invocation (CloudWatch extracts the metrics from the log line)."""
    values = {
        "TransactionsStored": stats.stored,
        "TransactionsUnchanged": stats.unchanged,
        "TransactionsRejected": stats.rejected,
        "AlertsSent": stats.alerts_sent,
        "AlertsUnrecorded": stats.alerts_unrecorded,
        "MessagesDeadLettered": stats.dead_lettered,
        "BatchItemFailures": failures,
        "FileRows": stats.file_rows,
        "FilesProcessed": stats.files,
    }
    for name, value in values.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.flush_metrics()


_init_phase()
