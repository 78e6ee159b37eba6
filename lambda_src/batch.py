"""One SQS batch: unwrap and validate every record, store across records, report per record.

Why two phases: single transactions usually arrive one per SQS message, so storing them
record by record would cost one DynamoDB call per transaction. Instead :meth:`BatchRun.prepare`
unwraps and validates all records first, stores every valid transaction of the batch
together (25 per BatchWriteItem), sends invalid messages to the DLQ together, and remembers
the outcome per record. Powertools' batch processor then walks the records
(:meth:`BatchRun.handle_record`): it re-raises a remembered transient failure, streams the
files that S3 events point to, and builds the partial batch response from what raised.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from .config import Settings
from .envelopes import Payload, unwrap
from .errors import Rejected, TransientError, is_transient
from .files import FileProcessor, FileStats
from .observability import logger
from .persist import PersistCounts, Persister
from .rejects import DeadLetter, DeadLetters
from .validation import Origin, Transaction, validate


@dataclass
class Stats(PersistCounts):
    """Per-invocation counters, published as EMF metrics by the handler."""

    rejected: int = 0
    dead_lettered: int = 0
    file_rows: int = 0
    files: int = 0


@dataclass
class RecordPlan:
    """What phase one decided for one SQS record."""

    message_id: str
    body: str
    attributes: Mapping[str, Any]
    payload: Payload | None = None
    problem: Rejected | None = None  # the whole message is unusable
    item_problems: list[tuple[int, Rejected]] = field(default_factory=list)
    txns: list[Transaction] = field(default_factory=list)
    txn_items: list[int] = field(default_factory=list)  # 1-based item index of each txn
    failure: str | None = None  # transient: becomes a batch item failure
    origin: Origin = field(default_factory=Origin)

    def transaction_id(self) -> str | None:
        """The id of a one-transaction message, valid or not, for the DLQ log line (so
        `pipelinectl trace ID` finds a dead-lettered transaction in the logs)."""
        items = self.payload.items if self.payload else []
        value = items[0].get("transaction_id") if len(items) == 1 and isinstance(
            items[0], dict) else None
        return str(value)[:256] if isinstance(value, str | int) else None
    retry: bool = False  # SQS delivered it before (ApproximateReceiveCount > 1)

    def dead_letter(self) -> DeadLetter | None:
        """The DLQ entry if any part of the message was invalid."""
        if self.problem is not None:
            return DeadLetter(self.message_id, self.body, self.problem, self.attributes)
        if not self.item_problems:
            return None
        if len(self.item_problems) == 1 and self.payload and len(self.payload.items) == 1:
            problem = self.item_problems[0][1]
        else:
            shown = "; ".join(f"item {i}: {p.reason}" for i, p in self.item_problems[:5])
            more = len(self.item_problems) - 5
            reason = shown + (f"; and {more} more invalid item(s)" if more > 0 else "")
            problem = Rejected(self.item_problems[0][1].code, reason)
        return DeadLetter(self.message_id, self.body, problem, self.attributes)


class BatchRun:
    """The work of one invocation."""

    def __init__(self, settings: Settings, persister: Persister, files: FileProcessor,
                 dead_letters: DeadLetters, deadline_ms: int) -> None:
        self.settings = settings
        self.persister = persister
        self.files = files
        self.dead_letters = dead_letters
        self.deadline_ms = deadline_ms
        self.plans: dict[str, RecordPlan] = {}
        self.stats = Stats()

    def prepare(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Phase one: plan every record, then store and dead-letter across records."""
        for record in records:
            try:
                plan = self._plan(record)
            except Exception as exc:  # a bug with one record fails that record
                logger.exception("could not prepare the record; it will be retried")
                message_id = record.get("messageId") if isinstance(record, Mapping) else None
                plan = RecordPlan(str(message_id), "", {},
                                  failure=f"unexpected error preparing the record: {exc!r}")
            self.plans[plan.message_id] = plan
        try:
            self._store_inline()
        except Exception as exc:  # fail the records that carry transactions
            logger.exception("storing the batch's transactions failed")
            for plan in self.plans.values():
                if plan.txns:
                    plan.failure = plan.failure or f"unexpected error storing: {exc!r}"
        pending = [p for p in self.plans.values() if p.failure is None]
        try:
            self._dead_letter(pending)
        except Exception as exc:  # fail only the records that needed the DLQ
            logger.exception("dead-lettering failed")
            for plan in pending:
                if plan.dead_letter() is not None:
                    plan.failure = plan.failure or f"unexpected error dead-lettering: {exc!r}"

    def handle_record(self, record: SQSRecord) -> str:
        """Phase two, called by Powertools for each record; raising makes it a batch failure."""
        plan = self.plans[record.message_id]
        logger.append_keys(message_id=record.message_id)
        try:
            if plan.failure is not None:
                raise TransientError(plan.failure)
            if plan.payload is not None and plan.payload.work is not None:
                self._add_file(self.files.resume(plan.payload.work, self.deadline_ms,
                                                 plan.origin))
            elif plan.payload is not None and plan.payload.files:
                self._process_files(plan)
            return "ok"
        except Exception as exc:
            if isinstance(exc, TransientError) or is_transient(exc):
                logger.warning("record will be retried", exc_info=True)
            else:  # retrying will not help until someone fixes permissions or configuration
                logger.error("record failed and will be retried; not a transient error",
                             exc_info=True)
            raise
        finally:
            logger.remove_keys(["message_id"])

    def _plan(self, record: Mapping[str, Any]) -> RecordPlan:
        body = record.get("body")
        plan = RecordPlan(str(record.get("messageId")), body if isinstance(body, str) else "",
                          record.get("messageAttributes") or {})
        plan.origin = Origin(plan.message_id, queued_at=_queued_at(record))
        plan.retry = str((record.get("attributes") or {}).get("ApproximateReceiveCount",
                                                             "1")) not in ("", "1")
        try:
            plan.payload = unwrap(plan.body, plan.attributes)
        except Rejected as problem:
            plan.problem = problem
            self.stats.rejected += 1
            return plan
        if plan.payload.sns_message_id:
            plan.origin = Origin(plan.message_id, plan.payload.sns_message_id,
                                 plan.origin.queued_at)
        for index, item in enumerate(plan.payload.items, start=1):
            try:
                plan.txns.append(self._validate_item(item, plan.payload, plan.origin))
                plan.txn_items.append(index)
            except Rejected as problem:
                plan.item_problems.append((index, problem))
        self.stats.rejected += len(plan.item_problems)
        return plan

    def _validate_item(self, item: Any, payload: Payload, origin: Origin) -> Transaction:
        try:
            size = len(json.dumps(item, default=str).encode())
        except (RecursionError, ValueError):
            raise Rejected("invalid_json", "the transaction is nested too deeply") from None
        if size > self.settings.max_row_bytes:
            raise Rejected("oversized_row", f"the transaction is larger than "
                                            f"{self.settings.max_row_bytes} bytes")
        return validate(item, source=payload.via, type_attribute=payload.type_attribute,
                        unknown_fields=self.settings.unknown_fields, origin=origin)

    def _store_inline(self) -> None:
        owners: dict[str, list[RecordPlan]] = defaultdict(list)
        txns = []
        origins: list[tuple[RecordPlan, int]] = []
        for plan in self.plans.values():
            for txn, index in zip(plan.txns, plan.txn_items, strict=True):
                owners[txn.transaction_id].append(plan)
                txns.append(txn)
                origins.append((plan, index))
        if not txns:
            return
        outcome = self.persister.persist(txns, self.deadline_ms)
        self.stats.add_counts(outcome)
        for position, problem in outcome.conflicts.items():  # dead-lettered with the message
            plan, index = origins[position]
            plan.item_problems.append((index, problem))
            plan.item_problems.sort(key=lambda p: p[0])
            self.stats.rejected += 1
        for txn_id, reason in outcome.failed.items():
            for plan in owners[txn_id]:
                plan.failure = plan.failure or f"transaction {txn_id}: {reason}"

    def _dead_letter(self, plans: Sequence[RecordPlan]) -> None:
        letters = [d for d in (p.dead_letter() for p in plans) if d is not None]
        if not letters:
            return
        failed = self.dead_letters.send(letters)
        for letter in letters:
            if letter.message_id in failed:
                self.plans[letter.message_id].failure = failed[letter.message_id]
            else:
                self.stats.dead_lettered += 1
                txn_id = self.plans[letter.message_id].transaction_id()
                logger.warning("message sent to the DLQ", extra={
                    "message_id": letter.message_id, "error_code": letter.problem.code,
                    "error_reason": letter.problem.reason,
                    **({"transaction_id": txn_id} if txn_id is not None else {})})

    def _add_file(self, stats: FileStats) -> None:
        self.stats.files += 1
        self.stats.file_rows += stats.rows
        self.stats.rejected += stats.rejected
        self.stats.add_counts(stats.outcome)

    def _process_files(self, plan: RecordPlan) -> None:
        """Every file of the event; a missing object dead-letters the message, once, after
        the other files are done (a transient failure before that retries the record)."""
        missing: Rejected | None = None
        for ref in plan.payload.files if plan.payload else []:
            try:
                stats = self.files.process(ref, self.deadline_ms, plan.message_id,
                                           plan.origin, retry=plan.retry)
            except Rejected as problem:
                missing = missing or problem
                self.stats.rejected += 1
                continue
            self._add_file(stats)
        if missing is not None:
            plan.problem = missing
            self._dead_letter([plan])
            if plan.failure is not None:
                raise TransientError(plan.failure)


def _queued_at(record: Mapping[str, Any]) -> str | None:
    """When SQS received the message: the record's ``SentTimestamp`` (epoch ms), as ISO 8601.
    Lambda's SQS event carries it in each record's ``attributes`` (Lambda Developer Guide,
    "Using Lambda with Amazon SQS", example standard queue message event)."""
    attributes = record.get("attributes")
    sent = attributes.get("SentTimestamp") if isinstance(attributes, Mapping) else None
    try:
        moment = datetime.fromtimestamp(int(str(sent)) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
