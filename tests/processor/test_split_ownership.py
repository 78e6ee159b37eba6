"""Row ownership of split files: for random files, part sizes, scan hand-offs and slice
hand-offs, the parts together read exactly the rows a sequential read gives, each once, with
the same numbers, lines and values (issue 12, "Row ownership").

The parts are read the way the processor reads them: from the part's start offset, with the
window the work message carries, and resumed from the byte offset after the last row read.
"""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_src.readers import Row, iter_rows
from lambda_src.split import Work, scan

LIMIT = 200  # a small row limit, so oversized rows occur too

CELL = st.one_of(
    st.text(alphabet="abc 1.,-", max_size=6),
    st.text(alphabet='ab,"\n\r', max_size=5).map(lambda t: '"' + t.replace('"', '""') + '"'),
    st.just(""),
)
JSON_VALUE = st.one_of(
    st.fixed_dictionaries({"transaction_id": st.integers(0, 99),
                           "amount": st.integers(1, 5000)}),
    st.just("not json"), st.just("   "), st.just(""), st.just("{\"a\": \"x" + "y" * 250 + "\"}"),
)


@st.composite
def csv_files(draw: Any) -> bytes:
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    rows = draw(st.lists(st.lists(CELL, min_size=1, max_size=4), max_size=25))
    lines = ["transaction_id,amount,timestamp"] + [",".join(r) for r in rows]
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    bom = draw(st.booleans())
    return ("\ufeff" if bom else "").encode() + text.encode()


@st.composite
def jsonl_files(draw: Any) -> bytes:
    values = draw(st.lists(JSON_VALUE, max_size=30))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [v if isinstance(v, str) else json.dumps(v) for v in values]
    return (newline.join(lines) + draw(st.sampled_from(["", newline]))).encode()


def key(row: Row) -> tuple[Any, ...]:
    return (row.number, row.line, json.dumps(row.value, sort_keys=True),
            row.problem.code if row.problem else None)


def read_part(data: bytes, part: Work, slice_rows: int) -> list[Row]:
    """A part read in slices of ``slice_rows`` rows, each resumed at the offset after the
    last row read (as a continuation message does)."""
    out: list[Row] = []
    work = part
    while True:
        window = work.window()
        rows = iter_rows(io.BytesIO(data[work.start:]), work.fmt, LIMIT, window)
        taken = [row for _, row in zip(range(slice_rows), rows, strict=False)]
        out.extend(taken)
        if len(taken) < slice_rows:
            return out
        last = taken[-1]
        work = work.next_slice(start=work.start + last.end, row=last.number,
                               line=last.last_line, header=window.header)


def split_and_read(data: bytes, fmt: str, part_bytes: int, handoffs: list[bool],
                   slice_rows: int) -> tuple[list[Row], int]:
    work = Work(run="r", bucket="b", key="incoming/x", etag="e", size=len(data), fmt=fmt,
                gzip=False, started_ms=0, kind="scan")
    parts: list[Work] = []
    pending = iter(handoffs)
    while True:
        result = scan(io.BytesIO(data[work.start:]), work, part_bytes, LIMIT,
                      lambda: next(pending, False))
        parts.extend(result.parts)
        if result.resume is None:
            break
        work = result.resume
    assert [p.part for p in parts] == list(range(len(parts)))
    for before, after in itertools.pairwise(parts):
        assert before.end == after.start  # the parts tile the file
    rows = [row for part in parts for row in read_part(data, part, slice_rows)]
    return rows, len(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(csv_files().map(lambda d: ("csv", d)),
                      jsonl_files().map(lambda d: ("jsonl", d))),
       part_bytes=st.integers(1, 300), handoffs=st.lists(st.booleans(), max_size=10),
       slice_rows=st.integers(1, 7))
def test_parts_read_every_row_exactly_once(data: tuple[str, bytes], part_bytes: int,
                                           handoffs: list[bool], slice_rows: int) -> None:
    fmt, content = data
    try:
        expected = [key(r) for r in iter_rows(io.BytesIO(content), fmt, LIMIT)]
    except Exception as exc:  # a file-level problem (bad header) is not split at all
        assert getattr(exc, "code", None) == "bad_header"
        return
    rows, _ = split_and_read(content, fmt, part_bytes, handoffs, slice_rows)
    assert [key(r) for r in rows] == expected


def test_a_quoted_newline_ends_the_splitting_there() -> None:
    lines = ["transaction_id,amount,timestamp"] + [f"{i},1,x" for i in range(20)]
    lines[12] = '11,"1\n0",x'
    data = "\n".join(lines).encode()
    rows, parts = split_and_read(data, "csv", 20, [], 3)
    assert [key(r) for r in rows] == [key(r) for r in iter_rows(io.BytesIO(data), "csv", LIMIT)]
    assert 2 < parts < 20  # split before the record, one sequential part from there on


def test_part_messages_carry_the_header_except_part_zero() -> None:
    data = b"transaction_id,amount,timestamp\n" + b"".join(
        f"{i},1,x\n".encode() for i in range(50))
    work = Work(run="r", bucket="b", key="incoming/x", etag="e", size=len(data), fmt="csv",
                gzip=False, started_ms=0, kind="scan")
    parts = scan(io.BytesIO(data), work, 100, LIMIT, lambda: False).parts
    assert parts[0].header is None and parts[0].start == 0
    assert all(p.header == ["transaction_id", "amount", "timestamp"] for p in parts[1:])
    assert Work.from_doc(json.loads(parts[1].body())) == replace(parts[1])
