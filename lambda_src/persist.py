"""Store validated transactions and alert on the large ones - exactly once in effect.

The guarantee, precisely (also in the README):

* **Rows**: the table is keyed by ``transaction_id``; reprocessing a row never adds a row.
  A row whose content is unchanged is not rewritten (its ``processed_at`` is the first
  processing time).
* **Conflicting duplicates** (same id, different content), by default: the version stored
  first is kept and every other version is rejected with ``conflicting_duplicate`` (both
  values in the reason) - within one file, one list message, one batch, or against the
  table. Every write is conditional on the item being absent or holding the same content
  (a transaction of conditional creates for plain rows, the conditional claim for alert
  candidates), so two invocations racing on one id cannot overwrite each other either: the
  loser's condition fails and its version is rejected. With ``last_wins`` (for producers that
  send corrections) a changed row replaces the old content instead, as BatchWriteItem puts.
* **No lost alert**: an alert candidate (amount > threshold) is stored *and* claimed in one
  conditional ``UpdateItem`` (``alerted_at`` absent and no live claim). The claim expires at
  the end of the claiming invocation (its Lambda deadline), because no code of that
  invocation can still be running afterwards; SQS redelivers a failed or crashed record only
  after the visibility timeout (>= 6 x function timeout), so a retry always finds the claim
  of a crashed attempt expired and claims again. A crash between storing and alerting
  therefore delays the alert, it never loses it.
* **No repeated alert**: once SNS accepted the alert, ``alerted_at`` (and the SNS message id)
  is recorded and the claim dropped; any later attempt sees ``alerted_at`` and stays silent.
  Puts of changed rows carry ``alerted_at`` over, candidates are only ever *updated*.
* **Residual windows** (at-least-once there, with the same ``AlertId`` so subscribers can
  deduplicate): (1) the function dies, or DynamoDB keeps failing, between SNS accepting the
  alert and ``alerted_at`` being recorded - a later redelivery of the same transaction
  alerts again; (2) the publish call's outcome is unknown (timeout after SNS accepted it)
  and the retry publishes again; (3) two invocations race on the *same* transaction id with
  *different* content, one of them at or below the threshold: its whole-item put can land
  between the other's read and its ``alerted_at`` write. SNS standard topics offer no
  deduplication to close these. Window (3) exists only with ``last_wins``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from botocore.exceptions import BotoCoreError, ClientError

from .alerts import Alerter
from .errors import Rejected, error_code
from .observability import logger
from .storage import (
    BATCH_GET_LIMIT,
    CONTENT_FIELDS,
    Existing,
    TransactionStore,
    UnprocessedError,
    chunked,
)
from .storage import new_item as build_item
from .validation import CENT, Transaction

#: Added to the invocation deadline for the claim lease: clocks of Lambda hosts may differ.
CLOCK_SKEW_MS = 2_000
RECORD_ATTEMPTS = 3
AWS_ERRORS = (ClientError, BotoCoreError, UnprocessedError)
#: The version of a transaction the table holds: read from it, or the one we just stored.
Kept = Existing | Transaction


@dataclass
class PersistCounts:
    """What storing and alerting did, summed per file and per invocation for metrics."""

    stored: int = 0
    unchanged: int = 0
    alerts_sent: int = 0
    alerts_unrecorded: int = 0

    def add_counts(self, other: PersistCounts) -> None:
        self.stored += other.stored
        self.unchanged += other.unchanged
        self.alerts_sent += other.alerts_sent
        self.alerts_unrecorded += other.alerts_unrecorded


@dataclass
class Outcome(PersistCounts):
    """Counts for metrics, transaction ids that must be retried (id -> reason), and the
    conflicting duplicates refused: position in the ``persist()`` input -> why. Positions
    only mean something to the caller of that one call, so ``add`` does not merge them."""

    failed: dict[str, str] = field(default_factory=dict)
    conflicts: dict[int, Rejected] = field(default_factory=dict)

    def add(self, other: Outcome) -> None:
        self.add_counts(other)
        self.failed.update(other.failed)


@dataclass
class Persister:
    """Ties storage and alerts together; one instance per container."""

    store: TransactionStore
    alerter: Alerter
    threshold: Decimal
    clock: Callable[[], float]
    #: ``conflicting_duplicates = "last_wins"``: a changed row replaces the stored one.
    last_wins: bool = False
    #: Test seam: called after candidates are stored and claimed, before they are published.
    before_publish: Callable[[Sequence[Transaction]], None] | None = None
    #: Test seam: called after the table was read, before anything is written.
    after_read: Callable[[Sequence[Transaction]], None] | None = None

    def persist(self, txns: Sequence[Transaction], deadline_ms: int) -> Outcome:
        """Store ``txns`` and send their alerts. A repeated id: the first version is kept and
        the others refused (``outcome.conflicts``), or with ``last_wins`` the last one wins."""
        unique: dict[str, Transaction] = {}
        for txn in txns:
            if self.last_wins or txn.transaction_id not in unique:
                unique[txn.transaction_id] = txn
        outcome = Outcome()
        kept: dict[str, Kept] = {}  # id -> the version the table holds after this call
        for chunk in chunked(list(unique.values()), BATCH_GET_LIMIT):
            outcome.add(self._persist_chunk(chunk, deadline_ms, kept))
        for position, txn in enumerate(txns):
            stored = kept.get(txn.transaction_id)
            if stored is not None and stored.fingerprint != txn.fingerprint:
                outcome.conflicts[position] = conflict(txn, stored)
        return outcome

    def _persist_chunk(self, chunk: Sequence[Transaction], deadline_ms: int,
                       kept: dict[str, Kept]) -> Outcome:
        try:
            existing = self.store.read(t.transaction_id for t in chunk)
        except AWS_ERRORS as exc:
            return _all_failed(chunk, f"DynamoDB BatchGetItem failed: {error_code(exc)}")
        if self.after_read is not None:
            self.after_read(chunk)
        now = self.clock()
        processed_at = _iso(now)
        if not self.last_wins:  # a different stored version is kept: write nothing for it
            for txn in chunk:
                old = existing.get(txn.transaction_id)
                if old is not None and old.fingerprint != txn.fingerprint:
                    kept[txn.transaction_id] = old
            chunk = [t for t in chunk if t.transaction_id not in kept]
        plain = [t for t in chunk if t.amount <= self.threshold]
        candidates = [t for t in chunk if t.amount > self.threshold]
        if self.last_wins:
            outcome = self._put_plain(plain, existing, processed_at)
        else:
            outcome = self._create_plain(plain, existing, processed_at, kept)
        outcome.add(self._alert(candidates, existing, processed_at, now, deadline_ms, kept))
        return outcome

    def _create_plain(self, plain: Sequence[Transaction], existing: dict[str, Existing],
                      processed_at: str, kept: dict[str, Kept]) -> Outcome:
        """Create the rows the table lacks, conditionally; a row someone else created since
        our read is read again and kept if it differs (a race between two invocations)."""
        outcome = Outcome()
        new = [t for t in plain if t.transaction_id not in existing]
        outcome.unchanged += len(plain) - len(new)
        for txn in plain:
            if txn.transaction_id in existing:
                kept[txn.transaction_id] = existing[txn.transaction_id]
        try:
            raced, unwritten = self.store.create(new, processed_at)
            current = self.store.read(raced) if raced else {}
        except AWS_ERRORS as exc:
            return _all_failed(new, f"DynamoDB TransactWriteItems failed: {error_code(exc)}")
        for txn in new:
            if txn.transaction_id in unwritten:
                outcome.failed[txn.transaction_id] = (
                    "DynamoDB kept cancelling the write (throttled or contended)")
            elif txn.transaction_id not in raced:
                kept[txn.transaction_id] = txn
                outcome.stored += 1
            elif txn.transaction_id in current:
                kept[txn.transaction_id] = current[txn.transaction_id]
                outcome.unchanged += 1
            else:  # created and deleted again since: try the whole record later
                outcome.failed[txn.transaction_id] = "the item changed while being stored"
        return outcome

    def _put_plain(self, plain: Sequence[Transaction], existing: dict[str, Existing],
                   processed_at: str) -> Outcome:
        """``last_wins``: put changed rows (BatchWriteItem), carrying ``alerted_at`` over."""
        outcome = Outcome()
        changed = [t for t in plain if _changed(t, existing.get(t.transaction_id))]
        outcome.unchanged += len(plain) - len(changed)
        items = [build_item(t, processed_at, existing.get(t.transaction_id), self.store.request_id)
                 for t in changed]
        try:
            unwritten = self.store.put(items)
        except AWS_ERRORS as exc:
            outcome.failed.update(_all_failed(changed, f"DynamoDB BatchWriteItem failed: "
                                                       f"{error_code(exc)}").failed)
        else:
            for txn_id in unwritten:
                outcome.failed[txn_id] = "DynamoDB left the item unprocessed (throttled)"
            outcome.stored += len(changed) - len(unwritten)
        return outcome

    def _alert(self, candidates: Sequence[Transaction], existing: dict[str, Existing],
               processed_at: str, now: float, deadline_ms: int,
               kept: dict[str, Kept]) -> Outcome:
        """Store and claim each candidate, publish the claimed ones, record what went out."""
        outcome = Outcome()
        claimed: dict[str, tuple[Transaction, str]] = {}
        for txn in candidates:
            old = existing.get(txn.transaction_id)
            try:
                token = self._claim_or_update(txn, old, processed_at, now, deadline_ms, outcome,
                                              kept)
            except AWS_ERRORS as exc:
                reason = f"DynamoDB UpdateItem failed: {error_code(exc)}"
                outcome.failed[txn.transaction_id] = reason
                continue
            if token is not None:
                claimed[txn.transaction_id] = (txn, token)
        if not claimed:
            return outcome
        if self.before_publish is not None:
            self.before_publish([t for t, _ in claimed.values()])
        result = self.alerter.publish([t for t, _ in claimed.values()])
        for txn_id, (_, token) in claimed.items():
            if txn_id in result.sent:
                outcome.alerts_sent += 1
                logger.info("alert sent", extra={"transaction_id": txn_id,
                                                  "sns_message_id": result.sent[txn_id],
                                                  **_file_of(claimed[txn_id][0])})
                if not self._record(txn_id, result.sent[txn_id]):
                    outcome.alerts_unrecorded += 1
            else:
                self.store.release(txn_id, token)
                outcome.failed[txn_id] = result.failed.get(txn_id, "SNS did not confirm the alert")
        return outcome

    def _claim_or_update(self, txn: Transaction, old: Existing | None, processed_at: str,
                         now: float, deadline_ms: int, outcome: Outcome,
                         kept: dict[str, Kept]) -> str | None:
        """Returns the claim token when this invocation must publish the alert."""
        changed = _changed(txn, old)
        token: str | None = None
        if old is None or old.alerted_at is None:
            token = uuid.uuid4().hex
            state = self.store.claim(txn, processed_at if changed else None,
                                     until_ms=deadline_ms + CLOCK_SKEW_MS, token=token,
                                     now_ms=int(now * 1000), keep_stored=not self.last_wins)
            if state is not None:  # refused: already alerted, or claimed by someone else
                token = None
                if not self.last_wins and state.fingerprint != txn.fingerprint:
                    kept[txn.transaction_id] = state  # another invocation stored another version
                    return None
                changed = changed and self.last_wins  # same content is stored already
                if state.alerted_at is None:
                    outcome.failed[txn.transaction_id] = (
                        "another invocation is sending this alert (claim held); retrying later")
        if changed and token is None:  # the content is not stored by a claim: store it now
            self.store.update_fields(txn, processed_at)
        outcome.stored += changed
        outcome.unchanged += not changed
        kept[txn.transaction_id] = txn
        return token

    def _record(self, txn_id: str, message_id: str) -> bool:
        """Record ``alerted_at``; failing that is logged, not retried via SQS (see window 1)."""
        last = ""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                self.store.record_alert(txn_id, _iso(self.clock()), message_id)
                return True
            except AWS_ERRORS as exc:
                last = error_code(exc)
                self.store.sleep(0.1 * 2**attempt)
        logger.error("alert sent but alerted_at not recorded; a redelivery would repeat it",
                     extra={"transaction_id": txn_id, "sns_message_id": message_id,
                            "error": last})
        return False


def conflict(txn: Transaction, stored: Kept) -> Rejected:
    """``conflicting_duplicate``, naming every field that differs with both values."""
    received = txn.content()
    kept = stored.content() if isinstance(stored, Transaction) else stored.content
    diffs = [f"{name}: kept {_shown(kept.get(name))}, received {_shown(received.get(name))}"
             for name in CONTENT_FIELDS if _shown(kept.get(name)) != _shown(received.get(name))]
    return Rejected("conflicting_duplicate", (
        f"transaction {txn.transaction_id!r} was already received with different content "
        f"({'; '.join(diffs) or 'fields differ'}); the first version is kept - set "
        f'conflicting_duplicates = "last_wins" in pipeline.toml if later versions are '
        f"corrections"))


def _shown(value: object) -> str:
    if isinstance(value, Decimal):
        return f"{value.quantize(CENT)}" if value == value.quantize(CENT) else str(value)
    return "(none)" if value is None else repr(value)


def _file_of(txn: Transaction) -> dict[str, str]:
    """``file`` (``s3://bucket/key``) for a file row's log lines, so `pipelinectl trace` finds
    a file's alerts with one exact-match filter pattern; nothing for a message's."""
    file, _, row = txn.source.rpartition("#")
    return {"file": file, "row": row} if file.startswith("s3://") else {}


def _changed(txn: Transaction, old: Existing | None) -> bool:
    return old is None or old.fingerprint != txn.fingerprint


def _all_failed(txns: Sequence[Transaction], reason: str) -> Outcome:
    return Outcome(failed={t.transaction_id: reason for t in txns})


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

