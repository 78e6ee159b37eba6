"""Validation and normalisation of single transactions (pure, no AWS)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_src.errors import Rejected
from lambda_src.validation import Transaction, loads_strict, validate

EXAMPLE = {"transaction_id": 12345, "amount": 100, "timestamp": "2024-08-09T12:34:56Z"}


def test_design_example_is_accepted_as_is() -> None:
    txn = validate(loads_strict(json.dumps(EXAMPLE)))
    assert txn == Transaction("12345", Decimal("100.00"), "2024-08-09T12:34:56Z", "USD")


def test_normalisation() -> None:
    txn = validate(
        {"transaction_id": " T-1 ", "amount": "1500.5", "timestamp": "2024-08-09T14:34:56+02:00",
         "currency": "eur", "customer_id": 42, "type": " Refund "},
        source="sns",
    )
    assert txn.transaction_id == "T-1"
    assert txn.amount == Decimal("1500.50") and isinstance(txn.amount, Decimal)
    assert txn.timestamp == "2024-08-09T12:34:56Z"
    assert (txn.currency, txn.customer_id, txn.type, txn.source) == ("EUR", "42", "Refund", "sns")


def test_type_attribute_is_used_unless_the_body_has_a_type() -> None:
    assert validate(EXAMPLE, type_attribute="Purchase").type == "Purchase"
    assert validate({**EXAMPLE, "type": "Refund"}, type_attribute="Purchase").type == "Refund"


def test_integer_and_string_ids_are_the_same_transaction() -> None:
    assert validate(EXAMPLE).fingerprint == validate({**EXAMPLE, "transaction_id": "12345"}
                                                       ).fingerprint


def test_naive_timestamps_are_utc_and_fractions_survive() -> None:
    assert validate({**EXAMPLE, "timestamp": "2024-08-09 12:34:56.250"}).timestamp == (
        "2024-08-09T12:34:56.250000Z")


def test_unknown_fields_can_be_ignored() -> None:
    assert validate({**EXAMPLE, "note": "x"}, unknown_fields="ignore").transaction_id == "12345"


def test_json_numbers_never_become_floats() -> None:
    doc = loads_strict('{"amount": 0.1, "n": 1e2}')
    assert doc == {"amount": Decimal("0.1"), "n": Decimal("1e2")}


BAD: list[tuple[str, Any, str, str]] = [
    # name, raw transaction, expected code, text the reason must contain
    ("not an object", [1, 2], "not_an_object", "JSON object"),
    ("string payload", "hello", "not_an_object", "got a string"),
    ("missing id", {"amount": 1, "timestamp": "2024-08-09T12:34:56Z"}, "missing_field",
     "transaction_id"),
    ("missing amount", {"transaction_id": 1, "timestamp": "2024-08-09T12:34:56Z"},
     "missing_field", "amount"),
    ("missing timestamp", {"transaction_id": 1, "amount": 1}, "missing_field", "timestamp"),
    ("blank id", {**EXAMPLE, "transaction_id": "   "}, "bad_transaction_id", "blank"),
    ("float id", {**EXAMPLE, "transaction_id": Decimal("1.5")}, "bad_transaction_id",
     "string or an integer"),
    ("bool id", {**EXAMPLE, "transaction_id": True}, "bad_transaction_id", "boolean"),
    ("long id", {**EXAMPLE, "transaction_id": "x" * 300}, "bad_transaction_id", "longer than"),
    ("control chars in id", {**EXAMPLE, "transaction_id": "a\nb"}, "bad_transaction_id",
     "control"),
    ("non-numeric amount", {**EXAMPLE, "amount": "abc"}, "bad_amount", "not a number"),
    ("zero amount", {**EXAMPLE, "amount": 0}, "amount_not_positive", "greater than 0"),
    ("negative amount", {**EXAMPLE, "amount": Decimal("-5")}, "amount_not_positive",
     "greater than 0"),
    ("three decimals", {**EXAMPLE, "amount": Decimal("10.123")}, "amount_precision",
     "2 decimal places"),
    ("boolean amount", {**EXAMPLE, "amount": True}, "bad_amount", "boolean"),
    ("object amount", {**EXAMPLE, "amount": {"v": 1}}, "bad_amount", "an object"),
    ("NaN amount string", {**EXAMPLE, "amount": "NaN"}, "bad_amount", "not a number"),
    ("infinite amount", {**EXAMPLE, "amount": Decimal("Infinity")}, "bad_amount", "finite"),
    ("huge amount", {**EXAMPLE, "amount": Decimal("1e20")}, "bad_amount", "exceed"),
    ("unparsable timestamp", {**EXAMPLE, "timestamp": "yesterday noon"}, "bad_timestamp",
     "ISO 8601"),
    ("epoch timestamp", {**EXAMPLE, "timestamp": 1723206896}, "bad_timestamp",
     "ISO 8601 string"),
    ("date only", {**EXAMPLE, "timestamp": "2024-08-09"}, "bad_timestamp", "date and time"),
    ("impossible date", {**EXAMPLE, "timestamp": "2024-02-30T10:00:00Z"}, "bad_timestamp",
     "ISO 8601"),
    ("currency too long", {**EXAMPLE, "currency": "EURO"}, "bad_currency", "3-letter"),
    ("currency digits", {**EXAMPLE, "currency": "U5D"}, "bad_currency", "3-letter"),
    ("currency number", {**EXAMPLE, "currency": 840}, "bad_currency", "3-letter"),
    ("customer object", {**EXAMPLE, "customer_id": {"id": 1}}, "bad_customer_id",
     "string or an integer"),
    ("type number", {**EXAMPLE, "type": 7}, "bad_type", "must be a string"),
    ("type too long", {**EXAMPLE, "type": "P" * 65}, "bad_type", "1-64"),
    ("unknown field", {**EXAMPLE, "curency": "EUR"}, "unknown_field", "curency"),
    ("forged alert state", {**EXAMPLE, "alerted_at": "2024-01-01T00:00:00Z"}, "unknown_field",
     "alerted_at"),
]


@pytest.mark.parametrize(("raw", "code", "text"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_each_bad_input_gets_its_reason(raw: Any, code: str, text: str) -> None:
    with pytest.raises(Rejected) as caught:
        validate(raw)
    assert caught.value.code == code
    assert text in caught.value.reason


def test_all_problems_of_a_row_are_reported_together() -> None:
    with pytest.raises(Rejected) as caught:
        validate({"transaction_id": 1, "amount": "-1", "timestamp": "x" * 20, "currency": "$"})
    reason = caught.value.reason
    assert "amount" in reason and "timestamp" in reason and "currency" in reason


@pytest.mark.parametrize(("text", "code"), [
    ("{", "invalid_json"), ('{"amount": NaN}', "invalid_json"), ("[" * 50_000, "invalid_json"),
    ('{"amount": 1, "amount": 2}', "duplicate_field"), (b"\xff\xfe{", "invalid_json"),
])
def test_strict_json(text: str | bytes, code: str) -> None:
    with pytest.raises(Rejected) as caught:
        loads_strict(text)
    assert caught.value.code == code


# -- properties ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30)
    | st.decimals(allow_nan=True, allow_infinity=True) | st.floats(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12,
)
field_values = st.one_of(json_values, st.text(max_size=40), st.integers(),
                         st.decimals(places=3, allow_nan=False, allow_infinity=False),
                         st.datetimes().map(lambda d: d.isoformat()))
transaction_like = st.fixed_dictionaries(
    {}, optional={name: field_values for name in
                  ("transaction_id", "amount", "timestamp", "currency", "customer_id", "type",
                   "extra")},
)


@settings(max_examples=400, deadline=None)
@given(raw=st.one_of(json_values, transaction_like), attribute=st.none() | st.text(max_size=70))
def test_validate_only_ever_raises_rejected(raw: Any, attribute: str | None) -> None:
    try:
        txn = validate(raw, type_attribute=attribute)
    except Rejected as exc:
        assert exc.code and exc.reason
    else:
        assert txn.amount > 0 and txn.amount == txn.amount.quantize(Decimal("0.01"))
        assert txn.timestamp.endswith("Z") and len(txn.currency) == 3


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_loads_strict_only_ever_raises_rejected(text: str | bytes) -> None:
    try:
        loads_strict(text)
    except Rejected as exc:
        assert exc.code in {"invalid_json", "duplicate_field"}


valid_transactions = st.builds(
    Transaction,
    transaction_id=st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=1,
                max_size=40).map(str.strip).filter(bool),
    ),
    amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e12"), places=2),
    timestamp=st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
        lambda d: d.isoformat(timespec="microseconds" if d.microsecond else "seconds")
        .replace("+00:00", "Z")),
    currency=st.from_regex(r"[A-Z]{3}", fullmatch=True),
    customer_id=st.none() | st.from_regex(r"C-[0-9]{1,8}", fullmatch=True),
    type=st.none() | st.sampled_from(["Purchase", "Refund", "Chargeback"]),
    source=st.just("sqs"),
)


@settings(max_examples=300, deadline=None)
@given(valid_transactions)
def test_valid_transactions_round_trip_through_json(txn: Transaction) -> None:
    wire = json.dumps({k: str(v) if isinstance(v, Decimal) else v
                       for k, v in txn.content().items()})
    assert validate(loads_strict(wire)) == txn
