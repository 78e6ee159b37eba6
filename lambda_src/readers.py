"""Streaming readers: CSV with a header, JSON Lines, JSON arrays; each optionally gzip'd.

The contract says a 1 GB file must not need 1 GB of memory, so nothing here ever holds more
than one row (capped at ``max_row_bytes``) plus fixed-size I/O buffers: lines are read with
a length limit, an over-long line is skipped chunk by chunk rather than assembled, and JSON
arrays are split into elements by a small scanner instead of ``json.load``.

Row-level problems (bad JSON on one line, wrong field count, over-long row, bad UTF-8) are
yielded as rows carrying a :class:`Rejected`, so the caller can record them and carry on.
File-level problems (unsupported type, unusable header, corrupt gzip, a JSON document that
is not an array) raise :class:`Rejected`; rows yielded before that stay valid.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

from .errors import Rejected
from .jsonarray import json_array_rows
from .validation import REQUIRED_FIELDS, loads_strict

GZIP_MAGIC = b"\x1f\x8b"
BUFFER_BYTES = 64 * 1024
RAW_CLIP = 200


class Readable(Protocol):
    """What botocore's StreamingBody and io.BytesIO have in common."""

    def read(self, amt: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class Row:
    """One data row: its 1-based number, the parsed value or the reason it has none."""

    number: int
    value: Any = None
    problem: Rejected | None = None
    text: bytes | str | list[str] = ""  # the row as read; clipped only when reported
    line: int | None = None
    end: int = 0  # CSV/JSON Lines: stream offset just past the row (where the next one starts)
    last_line: int = 0  # CSV/JSON Lines: the row's last physical line (> line: quoted newlines)

    @property
    def raw(self) -> str:
        """A clipped copy of the row for a rejects entry (computed only for rejects)."""
        text = ",".join(self.text) if isinstance(self.text, list) else self.text
        return _clip(text.encode() if isinstance(text, str) else text)


@dataclass
class Window:
    """Where reading starts and stops: a part, or a continuation (see lambda_src/split.py).

    ``stop`` is an offset into the stream: a record (CSV) or line (JSON Lines) that *starts*
    at or after it is not read. ``first_row``/``first_line`` are the rows and lines before the
    stream's start, so numbers stay the file's own. The first ``skip`` rows after that are
    passed over without being parsed (gzip and JSON arrays resume by row count). A CSV read
    from its start fills in ``header``; a part gets it from the planner.
    """

    header: list[str] | None = None
    stop: int | None = None
    first_row: int = 0
    first_line: int = 0
    skip: int = 0
    parse: bool = True  # False: rows carry only their numbers and offsets (the planner's scan)


def detect_format(key: str) -> tuple[str, bool]:
    """``(format, gzipped)`` from the object key's extension(s)."""
    name = key.lower()
    gzipped = name.endswith(".gz")
    name = name.removesuffix(".gz")
    for suffix, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"),
                        (".json", "json")):
        if name.endswith(suffix):
            return fmt, gzipped
    raise Rejected(
        "unsupported_file_type",
        "expected a .csv, .jsonl, .ndjson or .json file (optionally .gz)",
    )


class _RawAdapter(io.RawIOBase):
    """Lets io.BufferedReader (and so gzip and readline) sit on a StreamingBody."""

    def __init__(self, body: Readable) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def open_stream(body: Readable, *, gzipped: bool) -> IO[bytes]:
    """A buffered binary stream, transparently gunzipped by extension *or* magic bytes."""
    return open_detected(body, gzipped=gzipped)[0]


def open_detected(body: Readable, *, gzipped: bool) -> tuple[IO[bytes], bool]:
    """``open_stream``, also saying whether the content is gzip (a large gzip cannot be
    split by byte ranges, only resumed)."""
    raw = io.BufferedReader(_RawAdapter(body), buffer_size=BUFFER_BYTES)
    if gzipped or raw.peek(2)[:2] == GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")), True
    return raw, False


def iter_rows(stream: IO[bytes], fmt: str, max_row_bytes: int,
              window: Window | None = None) -> Iterator[Row]:
    """Rows of ``stream`` in file order; see the module docstring for error handling."""
    readers = {"csv": _csv_rows, "jsonl": _jsonl_rows, "json": json_array_rows}
    try:
        yield from readers[fmt](stream, max_row_bytes, window or Window())
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise Rejected("bad_gzip", f"the gzip stream is corrupt or truncated ({exc})") from None


class _Lines:
    """Lines of at most ``limit`` bytes (``None`` stands for a longer line, skipped), with
    the stream offset consumed so far. While ``armed``, a line starting at or after
    ``stop`` ends the iteration: a CSV arms it only at record starts, so a record with
    quoted newlines is never cut."""

    def __init__(self, stream: IO[bytes], limit: int, stop: int | None) -> None:
        self.stream, self.limit, self.stop = stream, limit, stop
        self.offset = 0
        self.armed = True

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> bytes | None:
        if self.armed and self.stop is not None and self.offset >= self.stop:
            raise StopIteration
        line = self.stream.readline(self.limit + 1)
        if not line:
            raise StopIteration
        self.offset += len(line)
        if len(line) > self.limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = self.stream.readline(BUFFER_BYTES)
                self.offset += len(line)
            return None
        return line


def _jsonl_rows(stream: IO[bytes], limit: int, window: Window) -> Iterator[Row]:
    number, lines = window.first_row, _Lines(stream, limit, window.stop)
    for line_no, line in enumerate(lines, start=window.first_line + 1):
        if line is not None and not line.strip():
            continue
        number += 1
        end = lines.offset
        if number <= window.first_row + window.skip:
            continue
        if not window.parse:
            yield Row(number, line=line_no, end=end, last_line=line_no)
            continue
        if line is None:
            yield Row(number, problem=_oversized(limit), line=line_no, end=end,
                      last_line=line_no)
            continue
        try:
            yield Row(number, loads_strict(line), text=line, line=line_no, end=end,
                      last_line=line_no)
        except Rejected as exc:
            yield Row(number, problem=exc, text=line, line=line_no, end=end, last_line=line_no)


class _CsvLines:
    """Feeds csv.reader decoded lines and remembers what was wrong with the current record.

    csv.reader cannot be told "this line was unusable", so an over-long or non-UTF-8 line is
    replaced by an empty line and flagged; the reader loop checks the flag after each record.
    """

    def __init__(self, stream: IO[bytes], limit: int, window: Window) -> None:
        self._lines = _Lines(stream, limit, window.stop)
        self.limit = limit
        self.line_no = window.first_line
        self.first_line = window.first_line
        self.record_bytes = 0
        self.problem: Rejected | None = None

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._lines.armed = False
        self.line_no += 1
        if line is None:
            self.problem = self.problem or _oversized(self.limit)
            return "\n"
        self.record_bytes += len(line)
        if self.record_bytes > self.limit:
            self.problem = self.problem or _oversized(self.limit)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.problem = self.problem or Rejected("bad_encoding", "the row is not valid UTF-8")
            return "\n"
        return text.removeprefix("\ufeff") if self.line_no == 1 else text

    @property
    def offset(self) -> int:
        return self._lines.offset

    def start_record(self) -> None:
        self.record_bytes = 0
        self.problem = None
        self._lines.armed = True


def _csv_header(lines: _CsvLines, reader: Any) -> list[str] | None:
    """The normalised header, or None for an empty file; raises for an unusable one."""
    try:
        return _first_header(lines, reader)
    except csv.Error as exc:
        raise Rejected("bad_header", f"the CSV header is malformed: {exc}") from None


def _first_header(lines: _CsvLines, reader: Any) -> list[str] | None:
    for cells in reader:
        if lines.problem is not None:
            raise Rejected("bad_header", f"the CSV header is unusable: {lines.problem.reason}")
        if not cells:
            lines.start_record()
            continue
        header = [c.strip().lower() for c in cells]
        duplicates = sorted({h for h in header if header.count(h) > 1})
        if duplicates:
            raise Rejected("bad_header", f"duplicate CSV column(s): {', '.join(duplicates)}")
        absent = [f for f in REQUIRED_FIELDS if f not in header]
        if absent:
            raise Rejected("bad_header", f"CSV header lacks column(s): {', '.join(absent)}")
        return header
    return None


def _csv_rows(stream: IO[bytes], limit: int, window: Window) -> Iterator[Row]:
    lines = _CsvLines(stream, limit, window)
    reader = csv.reader(lines, strict=True)
    if window.header is None:
        window.header = _csv_header(lines, reader)
    header, number = window.header, window.first_row
    while header is not None:
        lines.start_record()
        first_line = lines.line_no + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            yield Row(number, problem=Rejected("bad_csv", f"malformed CSV: {exc}"),
                      line=first_line, end=lines.offset, last_line=lines.line_no)
            continue
        if not cells and lines.problem is None:
            continue  # blank line
        number += 1
        if number <= window.first_row + window.skip:
            continue
        if not window.parse:
            yield Row(number, line=first_line, end=lines.offset, last_line=lines.line_no)
            continue
        yield _csv_row(number, cells, header, lines, first_line)


def _csv_row(number: int, cells: list[str], header: list[str], lines: _CsvLines,
             first_line: int) -> Row:
    end, last = lines.offset, lines.line_no
    if lines.problem is not None:
        return Row(number, problem=lines.problem, text=cells, line=first_line, end=end,
                   last_line=last)
    if len(cells) != len(header):
        reason = f"the row has {len(cells)} fields, the header has {len(header)}"
        return Row(number, problem=Rejected("bad_field_count", reason), text=cells,
                   line=first_line, end=end, last_line=last)
    return Row(number, dict(zip(header, cells, strict=True)), text=cells, line=first_line,
               end=end, last_line=last)


def _oversized(limit: int) -> Rejected:
    return Rejected("oversized_row", f"the row is larger than {limit} bytes")


def _clip(data: bytes) -> str:
    text = data[: RAW_CLIP * 4].decode("utf-8", errors="replace").rstrip("\r\n")
    return text if len(text) <= RAW_CLIP else text[: RAW_CLIP - 3] + "..."
