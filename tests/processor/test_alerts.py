"""Alert messages SNS accepts."""

from __future__ import annotations

from decimal import Decimal

from lambda_src.alerts import subject
from lambda_src.validation import Transaction


def test_subject_is_printable_ascii_and_under_100_characters() -> None:
    txn = Transaction("\u00e9" + "t" * 255, Decimal("1500.00"), "2024-08-09T12:34:56Z")
    text = subject(txn, "ecommerce")
    assert len(text) < 100 and text.endswith("...")
    assert text.isascii() and text.isprintable()
    assert text.startswith("[ecommerce] High-value transaction ?ttt")
