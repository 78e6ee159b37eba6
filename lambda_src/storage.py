"""DynamoDB access: batched, idempotent writes and the alert claim on the item.

Only these table actions are used, matching the role's inline policy: ``BatchGetItem``,
``BatchWriteItem``, ``UpdateItem`` and ``TransactWriteItems`` of ``Update`` actions (which IAM
authorises as ``dynamodb:UpdateItem``: "Permissions for Put, Update, Delete, and Get actions
are governed by the permissions used for the underlying PutItem, UpdateItem, DeleteItem, and
GetItem operations", DynamoDB Developer Guide, "Using IAM with DynamoDB transactions").
Limits AWS enforces and moto does not are respected here by construction: at most 100 keys
per BatchGetItem, at most 25 items per BatchWriteItem, at most 100 actions per
TransactWriteItems, no duplicate keys within one request.

Why the extra read: BatchWriteItem puts a whole item and cannot be conditional, so a blind
re-put of a redelivered row would erase ``alerted_at`` and re-arm the alert. Reading the few
attributes that matter first (one call per 100 rows) lets us skip unchanged rows entirely,
carry ``alerted_at`` over when a row really changed, and send alert candidates through a
conditional ``UpdateItem`` instead.

Why transactions for new rows (the default, "a stored transaction is never overwritten"):
BatchWriteItem cannot carry a condition, so two invocations that both read "absent" for one
id would both put and the later one would silently replace the earlier one. A
``TransactWriteItems`` of ``Update`` actions conditioned on ``attribute_not_exists``
creates up to 25 rows per call (AWS allows 100) and refuses any row that exists by then. The
price: DynamoDB does two underlying writes per transactional item, one to prepare and one to
commit (Developer Guide, "Amazon DynamoDB Transactions: How it works", capacity management).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from .errors import error_code
from .validation import Transaction

BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
#: "TransactWriteItems is a synchronous write operation that groups up to 100 action
#: requests" (API Reference, TransactWriteItems) and at most 4 MB. We send 25 (rows are
#: <= 16 KiB): the same calls and memory as BatchWriteItem before, and a smaller blast radius
#: when one contended row cancels the whole transaction.
TRANSACT_WRITE_LIMIT = 25
#: Cancellation reasons a later attempt can clear (API Reference, CancellationReason):
#: capacity, or another transaction on the same item.
RETRYABLE_CANCELLATIONS = frozenset({"TransactionConflict", "ThrottlingError",
                                     "ProvisionedThroughputExceeded", "None"})
RETRY_ATTEMPTS = 6
ALERTED_AT = "alerted_at"
ALERT_MESSAGE_ID = "alert_message_id"
CLAIM_UNTIL = "alert_claim_until"
CLAIM_TOKEN = "alert_claim_token"
FINGERPRINT = "fingerprint"
OPTIONAL_FIELDS = ("customer_id", "type")
#: Where the stored version came from (:func:`origin_fields`); removed when a new version
#: lacks one, so an item never mixes two versions' origins.
ORIGIN_FIELDS = ("message_id", "sns_message_id", "queued_at", "request_id")
#: The business fields read back, to name what differs in a conflicting duplicate.
CONTENT_FIELDS = ("amount", "timestamp", "currency", "customer_id", "type")

_CONTENT = {f"#c{i}": name for i, name in enumerate(CONTENT_FIELDS)}
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
T = TypeVar("T")


@dataclass(frozen=True)
class Existing:
    """What the table already knows about a transaction id."""

    fingerprint: str | None
    alerted_at: str | None
    alert_message_id: str | None
    claim_until: int | None
    content: dict[str, Any] = field(default_factory=dict)


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def to_attributes(item: dict[str, Any]) -> dict[str, Any]:
    """Plain values (Decimal for numbers, never float) to DynamoDB attribute values.

    Strings and numbers - all a transaction item holds - are converted inline; boto3's
    TypeSerializer is ~10x slower per value and dominated file throughput.
    """
    out: dict[str, Any] = {}
    for key, value in item.items():
        kind = type(value)
        if kind is str:
            out[key] = {"S": value}
        elif kind is Decimal or kind is int:
            out[key] = {"N": str(value)}
        elif value is not None:
            out[key] = _SERIALIZER.serialize(value)
    return out


def from_attributes(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _DESERIALIZER.deserialize(v) for k, v in item.items()}


def origin_fields(txn: Transaction, request_id: str | None) -> dict[str, str]:
    """Where the stored version came from - SQS (and SNS) message ids, when it was queued,
    the Lambda request id - so `pipelinectl trace` finds its message and invocation logs.
    Written with the content, so an unchanged redelivery keeps the first ones."""
    fields = txn.origin.fields() if txn.origin is not None else {}
    if request_id:
        fields["request_id"] = request_id
    return fields


def new_item(txn: Transaction, processed_at: str, old: Existing | None,
             request_id: str | None = None) -> dict[str, Any]:
    """The whole item for a put; keeps a previous ``alerted_at`` so a put never re-arms it."""
    item: dict[str, Any] = {**txn.content(), "source": txn.source,
                            "processed_at": processed_at, FINGERPRINT: txn.fingerprint,
                            **origin_fields(txn, request_id)}
    if old is not None and old.alerted_at is not None:
        item[ALERTED_AT] = old.alerted_at
        item[ALERT_MESSAGE_ID] = old.alert_message_id
    return item


class TransactionStore:
    """The transactions table, through the low-level client (fewer layers, exact limits)."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        base_delay: float = 0.05,
    ) -> None:
        self.client = client
        self.table = table_name
        self.sleep = sleep
        self.base_delay = base_delay
        #: The running invocation's Lambda request id (set by the handler per invocation;
        #: a container runs one invocation at a time), stored on what it writes.
        self.request_id: str | None = None

    def read(self, ids: Iterable[str]) -> dict[str, Existing]:
        """The alert/fingerprint state of ``ids`` that exist (BatchGetItem, 100 keys a call)."""
        found: dict[str, Existing] = {}
        for chunk in chunked(sorted(set(ids)), BATCH_GET_LIMIT):
            request = {self.table: {
                "Keys": [{"transaction_id": {"S": i}} for i in chunk],
                "ProjectionExpression": "#id, #fp, #at, #mid, #cu, " + ", ".join(_CONTENT),
                "ExpressionAttributeNames": {"#id": "transaction_id", "#fp": FINGERPRINT,
                                             "#at": ALERTED_AT, "#mid": ALERT_MESSAGE_ID,
                                             "#cu": CLAIM_UNTIL, **_CONTENT},
                "ConsistentRead": True,
            }}
            for attempt in range(RETRY_ATTEMPTS):
                response = self.client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self.table, []):
                    item = from_attributes(raw)
                    found[item["transaction_id"]] = _existing(item)
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._backoff(attempt)
            if request:
                raise UnprocessedError("BatchGetItem left keys unprocessed after retries")
        return found

    def put(self, items: Sequence[dict[str, Any]]) -> set[str]:
        """Write items 25 at a time; return the ids DynamoDB still refused after retries."""
        unwritten: set[str] = set()
        for chunk in chunked(items, BATCH_WRITE_LIMIT):
            pending = [{"PutRequest": {"Item": to_attributes(i)}} for i in chunk]
            for attempt in range(RETRY_ATTEMPTS):
                response = self.client.batch_write_item(RequestItems={self.table: pending})
                pending = (response.get("UnprocessedItems") or {}).get(self.table, [])
                if not pending:
                    break
                self._backoff(attempt)
            unwritten.update(r["PutRequest"]["Item"]["transaction_id"]["S"] for r in pending)
        return unwritten

    def create(self, txns: Sequence[Transaction],
               processed_at: str) -> tuple[set[str], set[str]]:
        """Create rows that do not exist yet, 25 per TransactWriteItems. Returns the ids that
        exist by now (someone else stored them since our read; not written) and the ids
        DynamoDB kept refusing for capacity or contention after retries (not written)."""
        exists: set[str] = set()
        unwritten: set[str] = set()
        for chunk in chunked(txns, TRANSACT_WRITE_LIMIT):
            refused, blocked = self._create_chunk(list(chunk), processed_at)
            exists |= refused
            unwritten |= blocked
        return exists, unwritten

    def _create_chunk(self, pending: list[Transaction],
                      processed_at: str) -> tuple[set[str], set[str]]:
        """A cancelled transaction writes nothing; its ``CancellationReasons`` list one code
        per action, in order ("None" for an action that was fine; API Reference,
        TransactWriteItems). Refused rows are dropped and the rest sent again; rows blocked by
        capacity or another transaction back off, and after the retries are given up on
        alone, so they fail only their own records. Any other cancellation is raised."""
        exists: set[str] = set()
        unwritten: set[str] = set()
        attempt = 0
        while pending:
            try:
                self.client.transact_write_items(
                    TransactItems=[self._create_action(t, processed_at) for t in pending])
                break
            except ClientError as exc:
                codes = _cancellation_codes(exc, len(pending))
            exists |= {t.transaction_id for t, c in zip(pending, codes, strict=True)
                       if c == "ConditionalCheckFailed"}
            blocked = {t.transaction_id for t, c in zip(pending, codes, strict=True)
                       if c not in ("None", "ConditionalCheckFailed")}
            pending = [t for t in pending if t.transaction_id not in exists]
            if not blocked:
                continue
            attempt += 1
            if attempt < RETRY_ATTEMPTS:
                self._backoff(attempt)
                continue
            unwritten |= blocked
            pending = [t for t in pending if t.transaction_id not in blocked]
            attempt = 0
        return exists, unwritten

    def _create_action(self, txn: Transaction, processed_at: str) -> dict[str, Any]:
        sets, removes, names, values = _field_updates(txn, processed_at, self.request_id)
        for alias in removes:  # nothing to remove on a new item; AWS refuses unused names
            del names[alias]
        names["#id"] = "transaction_id"
        return {"Update": {
            "TableName": self.table, "Key": {"transaction_id": {"S": txn.transaction_id}},
            "UpdateExpression": _expression(sets, []), "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_attributes(values),
            "ConditionExpression": "attribute_not_exists(#id)",
        }}

    def update_fields(self, txn: Transaction, processed_at: str) -> None:
        """Rewrite the business fields of a changed item, leaving its alert state alone."""
        sets, removes, names, values = _field_updates(txn, processed_at, self.request_id)
        expression = _expression(sets, removes)
        self.client.update_item(
            TableName=self.table, Key={"transaction_id": {"S": txn.transaction_id}},
            UpdateExpression=expression, ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_attributes(values),
        )

    def claim(self, txn: Transaction, processed_at: str | None, until_ms: int, token: str,
              now_ms: int, *, keep_stored: bool = False) -> Existing | None:
        """Store (when ``processed_at`` is given) and claim the alert in one conditional write.

        Succeeds only if no alert was recorded and no unexpired claim exists (and, with
        ``keep_stored``, the item is absent or holds this very content). Returns None on
        success, else the item's current state (``ReturnValuesOnConditionCheckFailure``
        ``ALL_OLD`` returns it with the ConditionalCheckFailedException, API Reference,
        UpdateItem), so the caller can tell "already alerted", "another invocation is
        alerting right now" and "a different version is stored" apart.
        """
        sets, removes, names, values = (
            _field_updates(txn, processed_at, self.request_id) if processed_at
            else ([], [], {}, {}))
        sets += ["#cu = :cu", "#ct = :ct"]
        expression = _expression(sets, removes)
        names.update({"#cu": CLAIM_UNTIL, "#ct": CLAIM_TOKEN, "#at": ALERTED_AT})
        values.update({":cu": until_ms, ":ct": token, ":now": now_ms})
        condition = "attribute_not_exists(#at) AND (attribute_not_exists(#cu) OR #cu < :now)"
        if keep_stored:
            names.update({"#id": "transaction_id", "#fp": FINGERPRINT})
            values[":fp"] = txn.fingerprint
            condition += " AND (attribute_not_exists(#id) OR #fp = :fp)"
        try:
            self.client.update_item(
                TableName=self.table, Key={"transaction_id": {"S": txn.transaction_id}},
                UpdateExpression=expression, ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_attributes(values),
                ConditionExpression=condition, ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return _existing(from_attributes(exc.response.get("Item") or {}))
        return None

    def record_alert(self, txn_id: str, alerted_at: str, message_id: str) -> None:
        """Mark the alert as sent and drop the claim; never recreate an item deleted since
        (then there is nothing to record the alert on, and nothing is written)."""
        try:
            self.client.update_item(
                TableName=self.table, Key={"transaction_id": {"S": txn_id}},
                UpdateExpression="SET #at = :at, #mid = :mid REMOVE #cu, #ct",
                ConditionExpression="attribute_exists(#id)",
                ExpressionAttributeNames={"#at": ALERTED_AT, "#mid": ALERT_MESSAGE_ID,
                                          "#cu": CLAIM_UNTIL, "#ct": CLAIM_TOKEN,
                                          "#id": "transaction_id"},
                ExpressionAttributeValues=to_attributes({":at": alerted_at, ":mid": message_id}),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def release(self, txn_id: str, token: str) -> None:
        """Give a claim back after a failed publish, so the retry need not wait for expiry."""
        # Best effort: the claim expires with the invocation anyway.
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.update_item(
                TableName=self.table, Key={"transaction_id": {"S": txn_id}},
                UpdateExpression="REMOVE #cu, #ct", ConditionExpression="#ct = :ct",
                ExpressionAttributeNames={"#cu": CLAIM_UNTIL, "#ct": CLAIM_TOKEN},
                ExpressionAttributeValues={":ct": {"S": token}},
            )

    def _backoff(self, attempt: int) -> None:
        """Exponential backoff with full jitter, capped at one second per wait."""
        self.sleep(random.uniform(0, min(1.0, self.base_delay * 2**attempt)))


class UnprocessedError(RuntimeError):
    """DynamoDB kept refusing part of a batch request (throttling); retry the record later."""


def _cancellation_codes(exc: ClientError, actions: int) -> list[str]:
    """The per-action codes of a TransactionCanceledException we can act on, else raise."""
    if error_code(exc) != "TransactionCanceledException":
        raise exc
    codes = [str(r.get("Code")) for r in exc.response.get("CancellationReasons") or []]
    if len(codes) != actions or not set(codes) <= (
            RETRYABLE_CANCELLATIONS | {"ConditionalCheckFailed"}):
        raise exc
    return codes


def _existing(item: dict[str, Any]) -> Existing:
    claim = item.get(CLAIM_UNTIL)
    return Existing(
        fingerprint=item.get(FINGERPRINT),
        alerted_at=item.get(ALERTED_AT),
        alert_message_id=item.get(ALERT_MESSAGE_ID),
        claim_until=int(claim) if claim is not None else None,
        content={k: item[k] for k in CONTENT_FIELDS if item.get(k) is not None},
    )


def _field_updates(
    txn: Transaction, processed_at: str, request_id: str | None = None
) -> tuple[list[str], list[str], dict[str, str], dict[str, Any]]:
    """``SET`` every business field and ``REMOVE`` absent optional ones, with aliased names
    (``timestamp``, ``source`` and ``type`` are DynamoDB reserved words)."""
    fields = {**txn.content(), "source": txn.source, "processed_at": processed_at,
              FINGERPRINT: txn.fingerprint, **origin_fields(txn, request_id)}
    fields.pop("transaction_id")
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets: list[str] = []
    for index, (name, value) in enumerate(fields.items()):
        names[f"#f{index}"] = name
        values[f":f{index}"] = value
        sets.append(f"#f{index} = :f{index}")
    removes: list[str] = []
    for index, name in enumerate(n for n in OPTIONAL_FIELDS + ORIGIN_FIELDS
                                 if n not in fields):
        names[f"#r{index}"] = name
        removes.append(f"#r{index}")
    return sets, removes, names, values


def _expression(sets: list[str], removes: list[str]) -> str:
    expression = "SET " + ", ".join(sets)
    return expression + (" REMOVE " + ", ".join(removes) if removes else "")
