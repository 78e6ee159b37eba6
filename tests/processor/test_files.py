"""Files dropped in S3: formats, rejects objects, reprocessing, bounded memory."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from lambda_src.alerts import Alerter
from lambda_src.config import Settings
from lambda_src.envelopes import FileRef
from lambda_src.files import FileProcessor
from lambda_src.persist import Persister
from lambda_src.storage import TransactionStore

from .conftest import BUCKET, Pipeline
from .test_envelopes import enable_eventbridge

TS = "2024-08-09T12:34:56Z"


def drop(pipeline: Pipeline, key: str, body: bytes) -> dict[str, Any]:
    """put_object through the real S3 -> EventBridge -> queue path, then run the handler."""
    enable_eventbridge(pipeline)
    pipeline.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return pipeline.drain()


def test_csv_file_good_rows_stored_bad_rows_rejected(pipeline: Pipeline,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    body = (f"transaction_id,amount,timestamp,currency,type\n"
            f"1,10.50,{TS},eur,Purchase\n"
            f"2,-4,{TS},,\n"
            f"3,2500,{TS},,Refund\n"
            f"4,abc,yesterday,,\n"
            f"5,1\n"
            f"6,7.00,{TS},,\n").encode()
    assert drop(pipeline, "incoming/2024/08/day.csv", body) == {"batchItemFailures": []}
    items = pipeline.items()
    assert set(items) == {"1", "3", "6"}
    assert items["1"]["source"] == f"s3://{BUCKET}/incoming/2024/08/day.csv#1"
    assert items["1"]["currency"] == "EUR" and items["3"]["type"] == "Refund"
    assert [a["body"]["transaction_id"] for a in pipeline.alerts()] == ["3"]
    rejects = pipeline.rejects("rejected/2024/08/day.csv.errors.jsonl")
    assert [(r["row"], r["line"], r["code"]) for r in rejects] == [
        (2, 3, "amount_not_positive"), (4, 5, "bad_amount"), (5, 6, "bad_field_count")]
    assert "timestamp" in rejects[1]["reason"] and rejects[1]["raw"].startswith("4,abc")
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines()
               if line.startswith('{"_aws"')][-1]
    assert metrics["FileRows"] == [6.0] and metrics["TransactionsRejected"] == [3.0]
    assert pipeline.dead_letters() == []


def test_gzipped_jsonl_and_json_array_files(pipeline: Pipeline) -> None:
    lines = [{"transaction_id": i, "amount": 1500 if i % 10 == 0 else 5, "timestamp": TS}
             for i in range(1, 31)]
    jsonl = gzip.compress("".join(json.dumps(r) + "\n" for r in lines).encode())
    assert drop(pipeline, "incoming/a.jsonl.gz", jsonl) == {"batchItemFailures": []}
    array = json.dumps([{**r, "transaction_id": f"j{r['transaction_id']}"} for r in lines])
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/b.json", Body=array.encode())
    assert pipeline.drain() == {"batchItemFailures": []}
    assert len(pipeline.items()) == 60 and len(pipeline.alerts()) == 6


@pytest.mark.parametrize(("key", "body", "code"), [
    ("incoming/report.xlsx", b"PK\x03\x04", "unsupported_file_type"),
    ("incoming/bad.csv", b"id,amount\n1,2\n", "bad_header"),
    ("incoming/cut.jsonl.gz", gzip.compress(b'{"a": 1}\n' * 50, mtime=0)[:-20], "bad_gzip"),
    ("incoming/half.json", b'[{"transaction_id": 1, "amount": 1, "timestamp": "'
                           + TS.encode() + b'"}, {"trans', "bad_json_array"),
])
def test_unusable_files_get_a_file_level_reject(pipeline: Pipeline, key: str, body: bytes,
                                                 code: str) -> None:
    assert drop(pipeline, key, body) == {"batchItemFailures": []}
    rejects = pipeline.rejects("rejected/" + key.removeprefix("incoming/") + ".errors.jsonl")
    assert rejects[-1]["code"] == code and rejects[-1]["row"] is None
    if code == "unsupported_file_type":
        assert pipeline.recorder.ops("GetObject") == []  # not even downloaded
    if code == "bad_json_array":
        assert set(pipeline.items()) == {"1"}  # rows before the damage are kept


def test_a_half_processed_file_is_safe_to_process_again(pipeline: Pipeline) -> None:
    rows = "".join(f"{i},{2000 if i % 40 == 0 else 3},{TS}\n" for i in range(1, 301))
    body = ("transaction_id,amount,timestamp\n" + rows + "bad,row\n").encode()
    client = pipeline.runtime.persister.store.client
    real = client.transact_write_items
    calls = {"n": 0}

    def dies_on_the_sixth_write(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 6:
            raise ConnectionResetError("the function lost its connection mid-file")
        return real(**kwargs)

    client.transact_write_items = dies_on_the_sixth_write
    enable_eventbridge(pipeline)
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/big.csv", Body=body)
    event = pipeline.event(pipeline.receive())
    response = pipeline.invoke(event)
    assert response == {"batchItemFailures": [{"itemIdentifier":
                                               event["Records"][0]["messageId"]}]}
    partial = pipeline.items()
    assert 0 < len(partial) < 300
    first_alerts = len(pipeline.alerts())
    assert first_alerts > 0

    pipeline.clock.advance(6 * 60 + 5)  # redelivered after the visibility timeout
    assert pipeline.invoke(event) == {"batchItemFailures": []}
    items = pipeline.items()
    assert len(items) == 300
    assert first_alerts + len(pipeline.alerts()) == 7  # ids 40, 80, ... 280: once each
    assert all(items[k]["processed_at"] == v["processed_at"] for k, v in partial.items())
    (reject,) = pipeline.rejects("rejected/big.csv.errors.jsonl")
    assert reject["row"] == 301 and reject["code"] == "bad_field_count"


# -- bounded memory -----------------------------------------------------------------------

class GeneratedBody:
    """A StreamingBody stand-in that produces the file on the fly: the file never exists in
    memory, so whatever tracemalloc sees is the processor's own footprint."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def read(self, amt: int = -1) -> bytes:
        while amt < 0 or len(self._buffer) < amt:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer += chunk
        amt = len(self._buffer) if amt < 0 else amt
        out, self._buffer = self._buffer[:amt], self._buffer[amt:]
        return out


class CountingAws:
    """DynamoDB/SNS/S3 stubs that keep counts, not data."""

    def __init__(self, body: GeneratedBody) -> None:
        self.body = body
        self.written = 0
        self.alerts = 0
        self.rejects_bytes = 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        return {"Responses": {}, "UnprocessedKeys": {}}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        (requests,) = RequestItems.values()
        assert len(requests) <= 25
        self.written += len(requests)
        return {"UnprocessedItems": {}}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        assert len(TransactItems) <= 100
        self.written += len(TransactItems)
        return {}

    def update_item(self, **_kwargs: Any) -> dict[str, Any]:
        return {}

    def publish_batch(self, PublishBatchRequestEntries: list[dict[str, Any]],
                      **_kwargs: Any) -> dict[str, Any]:
        self.alerts += len(PublishBatchRequestEntries)
        return {"Successful": [{"Id": e["Id"], "MessageId": "m"}
                               for e in PublishBatchRequestEntries], "Failed": []}

    def get_object(self, **_kwargs: Any) -> dict[str, Any]:
        return {"Body": self.body}

    def put_object(self, Body: Any, **_kwargs: Any) -> dict[str, Any]:
        self.rejects_bytes = len(Body.read())
        return {}


def csv_chunks(rows: int) -> Iterator[bytes]:
    yield b"transaction_id,amount,timestamp,currency,customer_id,type\n"
    for start in range(0, rows, 1000):
        yield "".join(
            f"txn-{i:07d},{'2500.00' if i % 997 == 0 else '19.99'},2024-08-09T12:34:56Z,EUR,"
            f"customer-{i % 5000},{'Refund' if i % 2 else 'Purchase'}\n"
            if i % 1000 != 999 else f"txn-{i:07d},not-a-number,{TS},EUR,c,Purchase\n"
            for i in range(start, min(start + 1000, rows))).encode()


def json_chunks(rows: int) -> Iterator[bytes]:
    yield b"["
    for start in range(0, rows, 1000):
        yield ",\n".join(json.dumps({"transaction_id": i, "amount": 19.99,
                                     "timestamp": TS, "customer_id": f"c-{i}"})
                         for i in range(start, min(start + 1000, rows))).encode() + (
            b",\n" if start + 1000 < rows else b"")
    yield b"]"


def huge_row_chunks(fmt: str) -> Iterator[bytes]:
    """One 8 MB row between two good ones: it must be skipped, never assembled."""
    good = {"transaction_id": "ok", "amount": 1, "timestamp": TS}
    start, end = {
        "csv": (b"transaction_id,amount,timestamp\n1,1," + TS.encode() + b'\n2,1,"', b'"\n'),
        "jsonl": (json.dumps(good).encode() + b'\n{"transaction_id": "', b'"}\n'),
        "json": (b"[" + json.dumps(good).encode() + b', {"transaction_id": "', b'"}]'),
    }[fmt]
    yield start
    for _ in range(128):
        yield b"x" * 65_536
    yield end


def measure(key: str, body: GeneratedBody) -> tuple[Any, CountingAws, int]:
    """Process one file through the real readers/validation/storage code; return the peak."""
    aws = CountingAws(body)
    store = TransactionStore(aws, "t", sleep=lambda _s: None)
    persister = Persister(store, Alerter(aws, "arn:alerts", Decimal(1000), "p"),
                          Decimal(1000), clock=lambda: 1_723_200_000.0)
    processor = FileProcessor(aws, persister, Settings("t", "arn:alerts", "url"))
    tracemalloc.start()
    try:
        stats = processor.process(FileRef(BUCKET, key), deadline_ms=10**13)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return stats, aws, peak


def test_100k_row_csv_file_streams_in_bounded_memory() -> None:
    rows = 100_000
    size = sum(len(c) for c in csv_chunks(rows))
    stats, aws, peak = measure("incoming/big.csv", GeneratedBody(csv_chunks(rows)))
    assert stats.rows == rows and size > 6_000_000
    assert stats.rejected == 100 and aws.written + aws.alerts == rows - 100
    assert aws.alerts == 101 and aws.rejects_bytes > 0
    # Measured: ~0.55 MB for this 6.5 MB file; a version that held the file or its rows
    # would need several times the file size.
    assert peak < size / 6, f"peak {peak} bytes for a {size}-byte file"
    assert peak < 1_500_000


def test_json_array_memory_does_not_grow_with_the_file() -> None:
    """The array scanner's peak is a few buffers: a 4x larger file, the same peak."""
    peaks = []
    for rows in (4_000, 16_000):
        stats, aws, peak = measure("incoming/big.json", GeneratedBody(json_chunks(rows)))
        assert stats.rows == rows == aws.written
        peaks.append(peak)
    size = sum(len(c) for c in json_chunks(16_000))
    assert peaks[1] < peaks[0] * 1.25, f"peaks {peaks}: memory grows with the file"
    # ~0.85 MB for this 1.7 MB file: a few buffers plus one chunk of 100 rows (their text
    # is kept until stored, to report a conflicting duplicate with its raw row).
    assert peaks[1] < size * 0.6


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_an_8mb_row_is_skipped_without_being_held(fmt: str) -> None:
    stats, aws, peak = measure(f"incoming/huge.{fmt}", GeneratedBody(huge_row_chunks(fmt)))
    assert (stats.rows, stats.rejected, aws.written) == (2, 1, 1)
    assert aws.body.closed
    assert peak < 1_000_000, f"peak {peak} bytes around an 8 MB row"


def test_rejects_list_the_first_rows_then_count_the_rest(pipeline: Pipeline,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from lambda_src import rejects as rejects_module

    monkeypatch.setattr(rejects_module, "MAX_DETAILED_REJECTS", 3)
    body = ("transaction_id,amount,timestamp\n" + "".join(
        f"{i},-1,{TS}\n" for i in range(4)) + f"9,abc,{TS}\n10,5,{TS}\n").encode()
    assert drop(pipeline, "incoming/big-bad.csv", body) == {"batchItemFailures": []}
    assert set(pipeline.items()) == {"10"}
    rejects = pipeline.rejects("rejected/big-bad.csv.errors.jsonl")
    assert [r["row"] for r in rejects[:3]] == [1, 2, 3]
    assert len(rejects) == 4
    summary = rejects[-1]
    assert (summary["row"], summary["code"]) == (None, "more_rejects")
    assert summary["reason"] == ("2 more rejected rows not listed: amount_not_positive x 1, "
                                 "bad_amount x 1")
