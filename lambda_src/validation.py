"""Validation and normalisation of one transaction (DESIGN.md section 3).

Every check produces a stable code and a sentence a data engineer can act on, and *all*
problems of a row are reported together, so one fix-and-resend round is enough. Nothing in
here may raise anything but :class:`~lambda_src.errors.Rejected` for any input whatsoever:
the property tests hold us to that, because an unexpected exception would turn one bad row
into a retried (and eventually dead-lettered) batch.

Validation also guarantees that DynamoDB will accept the item (key length, number range,
item size), because a single item DynamoDB refuses would fail the whole 25-item
BatchWriteItem request it travels in.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from .errors import Rejected

KNOWN_FIELDS = ("transaction_id", "amount", "timestamp", "currency", "customer_id", "type")
REQUIRED_FIELDS = ("transaction_id", "amount", "timestamp")
DEFAULT_CURRENCY = "USD"
MAX_ID_CHARS = 256
MAX_TYPE_CHARS = 64
MAX_TIMESTAMP_CHARS = 64
#: Far above any real transaction, far below DynamoDB's 38-digit number precision.
MAX_AMOUNT = Decimal("1000000000000000")
CENT = Decimal("0.01")

_DECIMAL_STRING = re.compile(r"[+-]?\d{1,40}(\.\d{1,40})?")
_CURRENCY = re.compile(r"[A-Za-z]{3}")

Problem = tuple[str, str]


@dataclass(frozen=True)
class Origin:
    """How a transaction reached the function, stored on its item so `pipelinectl trace` can
    follow it back: the SQS message (and the SNS message inside it), when SQS received it."""

    message_id: str | None = None
    sns_message_id: str | None = None
    queued_at: str | None = None  # the SQS record's SentTimestamp, ISO 8601

    def fields(self) -> dict[str, str]:
        return {k: v for k, v in (("message_id", self.message_id),
                                  ("sns_message_id", self.sns_message_id),
                                  ("queued_at", self.queued_at)) if v}


@dataclass(frozen=True)
class Transaction:
    """A validated transaction, normalised the way it is stored."""

    transaction_id: str
    amount: Decimal
    timestamp: str
    currency: str = DEFAULT_CURRENCY
    customer_id: str | None = None
    type: str | None = None
    source: str = "sqs"
    #: Where it came from; not content (no part of the fingerprint or of equality).
    origin: Origin | None = field(default=None, compare=False)

    def content(self) -> dict[str, Any]:
        """The business fields, without where the transaction came from."""
        data: dict[str, Any] = {
            "transaction_id": self.transaction_id,
            "amount": self.amount,
            "timestamp": self.timestamp,
            "currency": self.currency,
        }
        if self.customer_id is not None:
            data["customer_id"] = self.customer_id
        if self.type is not None:
            data["type"] = self.type
        return data

    @cached_property
    def fingerprint(self) -> str:
        """A digest of the content, so a redelivered row is recognised and not rewritten."""
        fields = (self.transaction_id, str(self.amount), self.timestamp, self.currency,
                  self.customer_id, self.type)
        canonical = "\x1f".join("\x00" if f is None else f for f in fields)
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def loads_strict(text: str | bytes) -> Any:
    """Parse JSON the way money needs it: Decimal for numbers, no NaN, no duplicate keys.

    Raises Rejected(invalid_json / duplicate_field) and nothing else.
    """
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except Rejected:
        raise
    except RecursionError:
        raise Rejected("invalid_json", "JSON is nested too deeply") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError
        if "int_max_str_digits" in str(exc):  # Python's guard, not the sender's business
            raise Rejected("invalid_json", "a number has more than 4300 digits") from None
        raise Rejected("invalid_json", f"not valid JSON ({_short(exc)})") from None


def _refuse_constant(name: str) -> Any:
    raise Rejected("invalid_json", f"{name} is not a valid JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise Rejected("duplicate_field", f"field {_clip(key)!r} appears more than once")
        result[key] = value
    return result


def validate(
    raw: object,
    *,
    source: str = "sqs",
    type_attribute: str | None = None,
    unknown_fields: str = "reject",
    origin: Origin | None = None,
) -> Transaction:
    """Check one raw transaction and return it normalised, or raise Rejected with all reasons.

    ``type_attribute`` is the SNS/SQS message attribute ``TransactionType``; a ``type`` field
    in the body wins over it. ``unknown_fields`` is ``reject`` (default: a typo such as
    ``curency`` must not silently store USD) or ``ignore``.
    """
    if not isinstance(raw, Mapping):
        raise Rejected("not_an_object", f"a transaction must be a JSON object, got {_kind(raw)}")
    problems: list[Problem] = []
    missing = [f for f in REQUIRED_FIELDS if raw.get(f) is None or raw.get(f) == ""]
    if missing:
        problems.append(("missing_field", f"missing required field(s): {', '.join(missing)}"))
    unknown = sorted(str(k) for k in raw if k not in KNOWN_FIELDS)
    if unknown and unknown_fields == "reject":
        # repr(): a field name may hold control characters or lone surrogates, which must
        # not reach a rejects file or an SQS attribute raw.
        shown = ", ".join(repr(_clip(k, 40)) for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        problems.append(("unknown_field", f"unknown field(s): {shown}{more}"))
    txn_id = _field(problems, raw, "transaction_id", _transaction_id)
    amount = _field(problems, raw, "amount", _amount)
    timestamp = _field(problems, raw, "timestamp", _timestamp)
    currency = _field(problems, raw, "currency", _currency) or DEFAULT_CURRENCY
    customer_id = _field(problems, raw, "customer_id", _customer_id)
    txn_type = _field(problems, raw, "type", _txn_type)
    if txn_type is None and type_attribute is not None:
        txn_type = _optional(problems, "TransactionType attribute", type_attribute, _txn_type)
    if problems:
        raise Rejected(problems[0][0], "; ".join(message for _, message in problems))
    assert txn_id is not None and amount is not None and timestamp is not None
    return Transaction(txn_id, amount, timestamp, currency, customer_id, txn_type, source,
                       origin)


def _field(problems: list[Problem], raw: Mapping[Any, Any], name: str, check: Any) -> Any:
    """Run one field check if the field is present; record its problem instead of raising."""
    value = raw.get(name)
    if value is None or value == "":
        return None
    return _optional(problems, name, value, check)


def _optional(problems: list[Problem], name: str, value: object, check: Any) -> Any:
    try:
        return check(value)
    except Rejected as exc:
        problems.append((exc.code, exc.reason if exc.reason.startswith(name) else
                         f"{name} {exc.reason}"))
        return None


def _transaction_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Rejected("bad_transaction_id", f"must be a string or an integer, got {_kind(value)}")
    if isinstance(value, int):
        if abs(value) >= 10**MAX_ID_CHARS:
            raise Rejected("bad_transaction_id", f"is longer than {MAX_ID_CHARS} characters")
        return str(value)
    text = value.strip()
    if not text:
        raise Rejected("bad_transaction_id", "must not be blank")
    if len(text) > MAX_ID_CHARS:
        raise Rejected("bad_transaction_id", f"is longer than {MAX_ID_CHARS} characters")
    if not text.isprintable():
        raise Rejected("bad_transaction_id", "contains control characters")
    return text


def _amount(value: object) -> Decimal:
    number = _to_decimal(value)
    if not number.is_finite():
        raise Rejected("bad_amount", "must be a finite number")
    if number <= 0:
        raise Rejected("amount_not_positive", f"must be greater than 0, got {_clip(str(value))}")
    if number > MAX_AMOUNT:
        raise Rejected("bad_amount", f"must not exceed {MAX_AMOUNT}")
    quantized = number.quantize(CENT)
    if quantized != number:
        raise Rejected("amount_precision", f"has more than 2 decimal places: {_clip(str(value))}")
    return quantized


def _to_decimal(value: object) -> Decimal:
    """Numbers from JSON (int/Decimal) and plain decimal strings from CSV; never via float."""
    if isinstance(value, bool):
        raise Rejected("bad_amount", "must be a number, got a boolean")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_AMOUNT:
            raise Rejected("bad_amount", f"must not exceed {MAX_AMOUNT}")
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and _DECIMAL_STRING.fullmatch(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
            pass
    if isinstance(value, str):
        raise Rejected("bad_amount", f"is not a number: {_clip(value)!r}")
    raise Rejected("bad_amount", f"must be a number, got {_kind(value)}")


def _timestamp(value: object) -> str:
    if not isinstance(value, str):
        raise Rejected("bad_timestamp", f"must be an ISO 8601 string, got {_kind(value)}")
    text = value.strip()
    if len(text) > MAX_TIMESTAMP_CHARS or len(text) <= 10:
        raise Rejected("bad_timestamp", f"must be an ISO 8601 date and time: {_clip(text)!r}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Rejected("bad_timestamp", f"is not ISO 8601: {_clip(text)!r}") from None
    if parsed.tzinfo is None:  # no offset: the contract's examples are UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:  # valid ISO 8601, but in UTC before year 1 or after 9999
        raise Rejected("bad_timestamp", f"is out of range (years 1 to 9999 in UTC): "
                                        f"{_clip(text)!r}") from None
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds").replace(
        "+00:00", "Z"
    )


def _currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value.strip()):
        shown = _clip(value) if isinstance(value, str) else _kind(value)
        raise Rejected("bad_currency", f"must be a 3-letter code such as USD, got {shown!r}")
    return value.strip().upper()


def _customer_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Rejected("bad_customer_id", f"must be a string or an integer, got {_kind(value)}")
    if isinstance(value, int):
        if abs(value) >= 10**MAX_ID_CHARS:
            raise Rejected("bad_customer_id", f"is longer than {MAX_ID_CHARS} characters")
        return str(value)
    text = value.strip()
    if not text or len(text) > MAX_ID_CHARS or not text.isprintable():
        raise Rejected("bad_customer_id", f"must be 1-{MAX_ID_CHARS} printable characters")
    return text


def _txn_type(value: object) -> str:
    if not isinstance(value, str):
        raise Rejected("bad_type", f"must be a string, got {_kind(value)}")
    text = value.strip()
    if not text or len(text) > MAX_TYPE_CHARS or not text.isprintable():
        raise Rejected("bad_type", f"must be 1-{MAX_TYPE_CHARS} printable characters")
    return text


def _kind(value: object) -> str:
    """The JSON name of a value's type, for reasons people read."""
    names = {bool: "a boolean", int: "an integer", float: "a number", Decimal: "a number",
             str: "a string", list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _short(exc: BaseException) -> str:
    return _clip(str(exc), 120)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
