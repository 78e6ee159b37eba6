"""A repeated transaction id with different content: refused by default, never overwritten.

Issue 8, item 3: money must not be silently replaced. The first stored version is kept, every
other version is rejected with ``conflicting_duplicate`` (both values in the reason) to the DLQ
or the rejects object; ``conflicting_duplicates = "last_wins"`` stores corrections instead;
identical re-sends stay harmless (no rewrite, no second alert).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from lambda_src.fileruns import RUN_KEY_PREFIX
from lambda_src.validation import Transaction, validate

from .conftest import Pipeline
from .test_files import drop

TS = "2024-08-09T12:34:56Z"
SMALL = {"transaction_id": "t-1", "amount": "100.00", "timestamp": TS}
BIG = {"transaction_id": "big-1", "amount": "1500.00", "timestamp": TS}


def reason_of(message: dict[str, Any]) -> tuple[str, str]:
    attrs = message["MessageAttributes"]
    return attrs["ErrorCode"]["StringValue"], attrs["ErrorReason"]["StringValue"]


def writes(pipeline: Pipeline) -> int:
    """Writes of transactions (a file's run record is written on every run)."""
    return sum(1 for op in ("BatchWriteItem", "TransactWriteItems", "UpdateItem")
               for call in pipeline.recorder.ops(op)
               if not call.params.get("Key", {}).get("transaction_id", {}).get(
                   "S", "").startswith(RUN_KEY_PREFIX))


def test_within_one_list_message_the_second_version_is_dead_lettered(pipeline: Pipeline) -> None:
    pipeline.send([SMALL, {**SMALL, "amount": "150.00"}, {**SMALL, "transaction_id": "t-2"}])
    assert pipeline.drain() == {"batchItemFailures": []}
    items = pipeline.items()
    assert items["t-1"]["amount"] == Decimal("100") and set(items) == {"t-1", "t-2"}
    (dead,) = pipeline.dead_letters()
    code, reason = reason_of(dead)
    assert code == "conflicting_duplicate"
    assert "item 2:" in reason and "amount: kept 100.00, received 150.00" in reason
    assert "last_wins" in reason


def test_within_one_batch_the_other_message_is_dead_lettered(pipeline: Pipeline) -> None:
    pipeline.send(BIG)
    pipeline.send({**BIG, "amount": "2500.00", "currency": "EUR"})
    assert pipeline.drain() == {"batchItemFailures": []}
    assert pipeline.items()["big-1"]["amount"] == Decimal("1500")
    (alert,) = pipeline.alerts()
    assert alert["body"]["amount"] == "1500.00"  # only the kept version alerts
    (dead,) = pipeline.dead_letters()
    code, reason = reason_of(dead)
    assert code == "conflicting_duplicate" and '"amount": "2500.00"' in dead["Body"]
    assert "amount: kept 1500.00, received 2500.00" in reason
    assert "currency: kept 'USD', received 'EUR'" in reason


def test_across_two_messages_the_stored_one_is_kept_and_not_realerted(pipeline: Pipeline) -> None:
    pipeline.send(BIG)
    assert pipeline.drain() == {"batchItemFailures": []}
    first = pipeline.items()["big-1"]
    assert len(pipeline.alerts()) == 1
    pipeline.clock.advance(60)
    pipeline.send({**BIG, "amount": "900.00"})  # below the threshold: would be a plain put
    pipeline.send({**BIG, "amount": "9000.00"})  # above: would be a claim
    assert pipeline.drain() == {"batchItemFailures": []}
    assert pipeline.items()["big-1"] == first
    assert pipeline.alerts() == []
    reasons = sorted(reason_of(m)[1] for m in pipeline.dead_letters())
    assert len(reasons) == 2
    assert "amount: kept 1500.00, received 900.00" in reasons[0]
    assert "amount: kept 1500.00, received 9000.00" in reasons[1]


def test_within_one_file_and_across_its_chunks_rows_are_rejected(pipeline: Pipeline) -> None:
    rows = [f"r-{i},{i % 7 + 1},{TS}" for i in range(150)]
    rows[3] = f"r-1,99,{TS}"  # row 4 repeats row 2's id in the same chunk of 100 rows
    rows[120] = f"r-0,55,{TS}"  # row 121 repeats row 1's id, stored by the first chunk
    rows[130] = f"r-2,3,{TS}"  # row 131 repeats row 3 identically: harmless
    body = ("transaction_id,amount,timestamp\n" + "\n".join(rows) + "\n").encode()
    assert drop(pipeline, "incoming/dup.csv", body) == {"batchItemFailures": []}
    items = pipeline.items()
    assert items["r-1"]["amount"] == Decimal("2") and items["r-0"]["amount"] == Decimal("1")
    rejects = pipeline.rejects("rejected/dup.csv.errors.jsonl")
    assert [(r["row"], r["code"]) for r in rejects] == [(4, "conflicting_duplicate"),
                                                       (121, "conflicting_duplicate")]
    assert "amount: kept 2.00, received 99.00" in rejects[0]["reason"]
    assert rejects[0]["raw"] == f"r-1,99,{TS}"
    assert "amount: kept 1.00, received 55.00" in rejects[1]["reason"]


def test_identical_resends_are_harmless(pipeline: Pipeline) -> None:
    pipeline.send(BIG)
    pipeline.publish(BIG)
    pipeline.send([BIG, BIG])
    assert pipeline.drain() == {"batchItemFailures": []}
    first = pipeline.items()
    assert len(pipeline.alerts()) == 1
    before = writes(pipeline)
    pipeline.clock.advance(3600)
    pipeline.send(BIG)
    assert drop(pipeline, "incoming/again.csv",
                f"transaction_id,amount,timestamp\nbig-1,1500.00,{TS}\n".encode()) == {
        "batchItemFailures": []}
    assert pipeline.items() == first and pipeline.alerts() == []
    assert writes(pipeline) == before  # nothing rewritten
    assert pipeline.dead_letters() == []


def test_last_wins_stores_corrections(pipeline: Pipeline,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFLICTING_DUPLICATES", "last_wins")
    pipeline.runtime = pipeline.make_runtime()
    pipeline.send([SMALL, {**SMALL, "amount": "150.00"}])
    assert pipeline.drain() == {"batchItemFailures": []}
    assert pipeline.items()["t-1"]["amount"] == Decimal("150")
    pipeline.send({**SMALL, "amount": "175.00"})
    assert pipeline.drain() == {"batchItemFailures": []}
    assert pipeline.items()["t-1"]["amount"] == Decimal("175")
    assert pipeline.dead_letters() == []


def store_other_version(pipeline: Pipeline, raw: dict[str, Any]) -> None:
    """Another invocation stores ``raw`` between our read and our write."""
    persister = pipeline.runtime.persister

    def race(_chunk: Sequence[Transaction]) -> None:
        persister.after_read = None
        other = validate(raw, source="sqs")
        assert persister.store.create([other], "2024-08-09T12:00:00.000Z") == (set(), set())

    persister.after_read = race


@pytest.mark.parametrize("amount", ["100.00", "1500.00"], ids=["plain", "alert-candidate"])
def test_a_racing_invocation_is_not_overwritten(pipeline: Pipeline, amount: str) -> None:
    """Both invocations read "absent"; a blind put (BatchWriteItem cannot be conditional)
    would replace the other version. The conditional write refuses ours instead."""
    txn = {"transaction_id": "race-1", "amount": amount, "timestamp": TS}
    store_other_version(pipeline, {**txn, "amount": "42.00"})
    pipeline.send(txn)
    assert pipeline.drain() == {"batchItemFailures": []}
    assert pipeline.items()["race-1"]["amount"] == Decimal("42")
    assert pipeline.alerts() == []
    (dead,) = pipeline.dead_letters()
    code, reason = reason_of(dead)
    assert code == "conflicting_duplicate"
    assert f"amount: kept 42.00, received {amount}" in reason


def test_a_racing_identical_version_is_harmless(pipeline: Pipeline) -> None:
    store_other_version(pipeline, SMALL)
    pipeline.send(SMALL)
    assert pipeline.drain() == {"batchItemFailures": []}
    assert pipeline.items()["t-1"]["processed_at"] == "2024-08-09T12:00:00.000Z"
    assert pipeline.dead_letters() == []
