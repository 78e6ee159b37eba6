"""Streaming readers (pure, no AWS): formats, row-level and file-level problems, properties."""

from __future__ import annotations

import csv
import gzip
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_src import readers
from lambda_src.errors import Rejected
from lambda_src.readers import Row, detect_format, iter_rows, open_stream
from lambda_src.validation import Transaction, validate

from .test_validation import valid_transactions

LIMIT = 256


def read(data: bytes, fmt: str, *, gzipped: bool = False, limit: int = LIMIT) -> list[Row]:
    return list(iter_rows(open_stream(io.BytesIO(data), gzipped=gzipped), fmt, limit))


def codes(rows: list[Row]) -> list[str | None]:
    return [r.problem.code if r.problem else None for r in rows]


@pytest.mark.parametrize(("key", "expected"), [
    ("incoming/a.csv", ("csv", False)), ("incoming/A.CSV.GZ", ("csv", True)),
    ("incoming/a.jsonl", ("jsonl", False)), ("incoming/a.ndjson.gz", ("jsonl", True)),
    ("incoming/a.json", ("json", False)), ("incoming/x.json.gz", ("json", True)),
])
def test_detect_format(key: str, expected: tuple[str, bool]) -> None:
    assert detect_format(key) == expected


@pytest.mark.parametrize("key", ["incoming/a.xlsx", "incoming/a", "incoming/a.gz", "a.csv.zip"])
def test_unsupported_file_types(key: str) -> None:
    with pytest.raises(Rejected) as caught:
        detect_format(key)
    assert caught.value.code == "unsupported_file_type"


def test_csv_header_bom_crlf_quotes_and_blank_lines() -> None:
    data = ('\ufeff Transaction_ID ,AMOUNT,timestamp,currency\r\n'
            '1,10.50,2024-08-09T12:34:56Z,eur\r\n\r\n'
            '"2, with comma","1,5",2024-08-09T12:34:56Z,\r\n'
            '"multi\nline",3,2024-08-09T12:34:56Z,usd\r\n').encode()
    rows = read(data, "csv")
    assert [r.number for r in rows] == [1, 2, 3]
    assert rows[0].value == {"transaction_id": "1", "amount": "10.50",
                             "timestamp": "2024-08-09T12:34:56Z", "currency": "eur"}
    assert rows[1].value["transaction_id"] == "2, with comma"
    assert rows[1].value["currency"] == ""  # empty cell: the default applies in validation
    assert rows[2].value["transaction_id"] == "multi\nline"
    assert [r.line for r in rows] == [2, 4, 5]


def test_csv_row_problems_do_not_stop_the_file() -> None:
    data = (b"transaction_id,amount,timestamp\n"
            b"1,2\n"                                  # wrong field count
            + b"2," + b"9" * 400 + b",x\n"            # over the row limit
            + b"\xff\xfe,1,2\n"                       # not UTF-8
            + b'"unclosed"x,1,2\n'                    # malformed quoting
            + b"5,1,2024-08-09T12:34:56Z\n")
    rows = read(data, "csv")
    assert codes(rows) == ["bad_field_count", "oversized_row", "bad_encoding", "bad_csv", None]
    assert rows[-1].value["transaction_id"] == "5" and rows[-1].number == 5


@pytest.mark.parametrize(("data", "reason"), [
    (b"id,amount,timestamp\n1,2,3\n", "lacks column(s): transaction_id"),
    (b"transaction_id,amount,amount,timestamp\n", "duplicate CSV column(s): amount"),
    (b"\xff\xfe\n", "header is unusable"),
])
def test_csv_unusable_header_is_a_file_level_problem(data: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        read(data, "csv")
    assert caught.value.code == "bad_header" and reason in caught.value.reason


def test_empty_files_have_no_rows() -> None:
    assert read(b"", "csv") == read(b"", "jsonl") == read(b"  \n", "json") == []
    assert read(b"transaction_id,amount,timestamp\n", "csv") == []


def test_jsonl_rows() -> None:
    data = b'{"a": 1}\n\n  \n[1]\nnope\n{"x": "' + b"y" * 400 + b'"}\n{"z": 1}'
    rows = read(data, "jsonl")
    assert codes(rows) == [None, None, "invalid_json", "oversized_row", None]
    assert [r.line for r in rows] == [1, 4, 5, 6, 7]
    assert rows[-1].value == {"z": 1}


def test_json_array_elements_survive_any_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = [{"s": 'a,]}"\\', "n": [1, {"k": "]"}]}, 2.5, "x", [], {}, None]
    data = json.dumps(doc).encode()
    for size in (1, 2, 3, 7, 64):
        monkeypatch.setattr(readers, "BUFFER_BYTES", size)
        rows = read(data, "json", limit=10_000)
        assert [r.value for r in rows] == json.loads(data, parse_float=Decimal)


def test_json_array_row_and_file_problems() -> None:
    rows = read(b'[{"a":1}, {bad}, {"s": "' + b"y" * 400 + b'"}, {"b":2}]', "json")
    assert codes(rows) == [None, "invalid_json", "oversized_row", None]
    assert read(b'{"a": 1}', "json")[0].value == {"a": 1}  # a single object is one row
    for data, code in [(b'[{"a":1}', "bad_json_array"), (b'"text"', "bad_json_array"),
                       (b'[1] [2]', "bad_json_array"), (b'[1, 2]\xff', "bad_encoding")]:
        with pytest.raises(Rejected) as caught:
            read(data, "json")
        assert caught.value.code == code, data


def test_gzip_by_extension_or_magic_and_corrupt_gzip() -> None:
    data = gzip.compress(b'{"a": 1}\n{"a": 2}\n')
    assert [r.value for r in read(data, "jsonl", gzipped=True)] == [{"a": 1}, {"a": 2}]
    assert [r.value for r in read(data, "jsonl", gzipped=False)] == [{"a": 1}, {"a": 2}]
    for bad in (data[:-12], b"plain text, not gzip"):
        with pytest.raises(Rejected) as caught:
            read(bad, "jsonl", gzipped=True)
        assert caught.value.code == "bad_gzip"


# -- properties ---------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), fmt=st.sampled_from(["csv", "jsonl", "json"]),
       gzipped=st.booleans())
def test_readers_only_ever_raise_rejected(data: bytes, fmt: str, gzipped: bool) -> None:
    payload = gzip.compress(data) if gzipped else data
    numbers = []
    try:
        for row in iter_rows(open_stream(io.BytesIO(payload), gzipped=gzipped), fmt, 64):
            numbers.append(row.number)
            assert row.problem is None or row.value is None
    except Rejected as exc:
        assert exc.code
    assert numbers == list(range(1, len(numbers) + 1))


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet='[]{}",\\ :1a\n', max_size=80), buffer=st.integers(1, 16),
       limit=st.integers(1, 40))
def test_json_scanner_agrees_with_json_on_arrays(text: str, buffer: int, limit: int) -> None:
    """Whatever the chunking, valid arrays split exactly as json.loads reads them."""
    try:
        expected = json.loads(text, parse_float=Decimal)
    except ValueError:
        expected = None
    original = readers.BUFFER_BYTES
    readers.BUFFER_BYTES = buffer
    try:
        rows = read(text.encode(), "json", limit=limit)
    except Rejected:
        assert not isinstance(expected, list)
        return
    finally:
        readers.BUFFER_BYTES = original
    if isinstance(expected, list):
        for row, value in zip(rows, expected, strict=True):
            if row.problem is None:
                assert row.value == value
            else:  # only an element longer than the limit may be refused
                assert row.problem.code == "oversized_row"


def encode(txns: list[Transaction], fmt: str) -> bytes:
    dicts = [{k: str(v) if isinstance(v, Decimal) else v for k, v in t.content().items()}
             for t in txns]
    if fmt == "jsonl":
        return "".join(json.dumps(d) + "\n" for d in dicts).encode()
    if fmt == "json":
        return json.dumps(dicts, indent=1).encode()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["transaction_id", "amount", "timestamp",
                                             "currency", "customer_id", "type"])
    writer.writeheader()
    writer.writerows(dicts)
    return out.getvalue().encode()


@settings(max_examples=150, deadline=None)
@given(txns=st.lists(valid_transactions, max_size=15), fmt=st.sampled_from(["csv", "jsonl",
                                                                            "json"]),
       gzipped=st.booleans())
def test_valid_files_round_trip(txns: list[Transaction], fmt: str, gzipped: bool) -> None:
    data = encode(txns, fmt)
    data = gzip.compress(data) if gzipped else data
    rows = list(iter_rows(open_stream(io.BytesIO(data), gzipped=gzipped), fmt, 16_384))
    assert [r.problem for r in rows] == [None] * len(txns)
    assert [validate(r.value) for r in rows] == txns


def test_rows_are_dataclasses_with_defaults() -> None:
    row: Any = Row(1)
    assert row.value is None and row.problem is None and row.raw == ""
