"""Alert messages SNS accepts."""

from __future__ import annotations

from decimal import Decimal

from lambda_src.alerts import subject
from lambda_src.validation import Transaction

from .conftest import Pipeline


def test_subject_is_printable_ascii_and_under_100_characters() -> None:
    txn = Transaction("\u00e9" + "t" * 255, Decimal("1500.00"), "2024-08-09T12:34:56Z")
    text = subject(txn, "ecommerce")
    assert len(text) < 100 and text.endswith("...")
    assert text.isascii() and text.isprintable()
    assert text.startswith("[ecommerce] High-value transaction ?ttt")


def test_recording_an_alert_never_recreates_a_deleted_item(pipeline: Pipeline) -> None:
    store = pipeline.runtime.persister.store
    pipeline.send({"transaction_id": "big-1", "amount": "1500.00",
                   "timestamp": "2024-08-09T12:35:00Z"})
    assert pipeline.drain() == {"batchItemFailures": []}
    store.record_alert("big-1", "2024-08-09T12:40:00.000Z", "sns-2")  # still there: recorded
    assert pipeline.items()["big-1"]["alert_message_id"] == "sns-2"

    store.record_alert("gone", "2024-08-09T12:40:00.000Z", "sns-1")  # no error, no item

    assert set(pipeline.items()) == {"big-1"}
