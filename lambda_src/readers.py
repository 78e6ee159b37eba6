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

import codecs
import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

from .errors import Rejected
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

    @property
    def raw(self) -> str:
        """A clipped copy of the row for a rejects entry (computed only for rejects)."""
        text = ",".join(self.text) if isinstance(self.text, list) else self.text
        return _clip(text.encode() if isinstance(text, str) else text)


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
    raw = io.BufferedReader(_RawAdapter(body), buffer_size=BUFFER_BYTES)
    if gzipped or raw.peek(2)[:2] == GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw


def iter_rows(stream: IO[bytes], fmt: str, max_row_bytes: int) -> Iterator[Row]:
    """Rows of ``stream`` in file order; see the module docstring for error handling."""
    readers = {"csv": _csv_rows, "jsonl": _jsonl_rows, "json": _json_array_rows}
    try:
        yield from readers[fmt](stream, max_row_bytes)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise Rejected("bad_gzip", f"the gzip stream is corrupt or truncated ({exc})") from None


def _bounded_lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Lines of at most ``limit`` bytes; ``None`` stands for a longer line (skipped)."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(BUFFER_BYTES)
            yield None
            continue
        yield line


def _jsonl_rows(stream: IO[bytes], limit: int) -> Iterator[Row]:
    number = 0
    for line_no, line in enumerate(_bounded_lines(stream, limit), start=1):
        if line is not None and not line.strip():
            continue
        number += 1
        if line is None:
            yield Row(number, problem=_oversized(limit), line=line_no)
            continue
        try:
            yield Row(number, loads_strict(line), text=line, line=line_no)
        except Rejected as exc:
            yield Row(number, problem=exc, text=line, line=line_no)


class _CsvLines:
    """Feeds csv.reader decoded lines and remembers what was wrong with the current record.

    csv.reader cannot be told "this line was unusable", so an over-long or non-UTF-8 line is
    replaced by an empty line and flagged; the reader loop checks the flag after each record.
    """

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._lines = _bounded_lines(stream, limit)
        self.limit = limit
        self.line_no = 0
        self.record_bytes = 0
        self.problem: Rejected | None = None

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
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

    def start_record(self) -> None:
        self.record_bytes = 0
        self.problem = None


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


def _csv_rows(stream: IO[bytes], limit: int) -> Iterator[Row]:
    lines = _CsvLines(stream, limit)
    reader = csv.reader(lines, strict=True)
    header = _csv_header(lines, reader)
    number = 0
    while header is not None:
        lines.start_record()
        first_line = lines.line_no + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            yield Row(number, problem=Rejected("bad_csv", f"malformed CSV: {exc}"), line=first_line)
            continue
        if not cells and lines.problem is None:
            continue  # blank line
        number += 1
        if lines.problem is not None:
            yield Row(number, problem=lines.problem, text=cells, line=first_line)
        elif len(cells) != len(header):
            reason = f"the row has {len(cells)} fields, the header has {len(header)}"
            yield Row(number, problem=Rejected("bad_field_count", reason), text=cells,
                      line=first_line)
        else:
            yield Row(number, dict(zip(header, cells, strict=True)), text=cells, line=first_line)


#: A whole string in one regex step (C speed), a structural character, or a lone quote: the
#: start of a string that does not end within the current chunk.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},"]')
_INSIDE = re.compile(r'["\\]')


class _ArraySplitter:
    """Splits a JSON array (or one top-level object) into element texts, chunk by chunk.

    It tracks only string/escape state and bracket depth, which is enough to find the commas
    that separate top-level elements; each element is then parsed by ``loads_strict``. An
    element longer than the limit is scanned past without being kept.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.mode: str | None = None  # None before the first token, then "array"/"object"
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.parts: list[str] = []
        self.size = 0
        self.oversized = False
        self.done = False
        self.count = 0
        self.carry = ""

    def feed(self, text: str, *, final: bool = False) -> Iterator[str | None]:
        """Element texts completed within ``text`` (None for an oversized element).

        A string cut by the chunk boundary is carried over to the next chunk (at most
        ``limit`` characters); a longer one is walked through character-class by
        character-class, so even a 1 GB string needs no more than a chunk of memory.
        """
        text, self.carry = self.carry + text, ""
        pos, start = 0, 0
        if self.mode is None:
            pos = start = self._start(text)
        while pos < len(text) and not self.done:
            if self.in_string:
                pos = self._in_string(text, pos)
                continue
            match = _TOKEN.search(text, pos)
            if match is None:
                break
            token = match.group()
            if token == '"' and not final and len(text) - match.start() <= self.limit:
                self._keep(text[start : match.start()])
                self.carry = text[match.start() :]
                return
            pos = match.end()
            if token[0] == '"' and len(token) > 1:
                continue  # a complete string: nothing structural inside
            element_end = self._structural(token)
            if element_end is not None:
                yield from self._emit(text[start : pos + element_end], final=self.depth == 0)
                start = pos
        if self.done:
            if text[pos:].strip():
                raise Rejected("bad_json_array", "unexpected data after the end of the JSON")
        elif self.mode is not None:
            self._keep(text[start:])

    def _structural(self, char: str) -> int | None:
        """Track one structural character; return where an element ends relative to just
        after it (-1: the separator is not part of the element, 0: it is), else None."""
        if char == '"':
            self.in_string = True
        elif char in "[{":
            self.depth += 1
        elif self.depth == 1 and self.mode == "array" and char in ",]":
            self.depth -= char == "]"
            return -1
        elif char in "]}":
            self.depth -= 1
            if self.depth == 0 and self.mode == "object":
                return 0
        return None

    def _start(self, text: str) -> int:
        stripped = text.lstrip()
        if not stripped:
            return len(text)
        offset = len(text) - len(stripped)
        if stripped[0] == "[":
            self.mode, self.depth = "array", 1
            return offset + 1
        if stripped[0] == "{":
            self.mode = "object"
            return offset
        raise Rejected("bad_json_array", "a .json file must hold a JSON array of transactions")

    def _in_string(self, text: str, pos: int) -> int:
        if self.escaped:
            self.escaped = False
            return pos + 1
        match = _INSIDE.search(text, pos)
        if match is None:
            return len(text)
        if match.group() == "\\":
            self.escaped = True
        else:
            self.in_string = False
        return match.end()

    def _keep(self, piece: str) -> None:
        self.size += len(piece)
        if self.size > self.limit:
            self.oversized, self.parts = True, []
        elif piece:
            self.parts.append(piece)

    def _emit(self, piece: str, *, final: bool) -> Iterator[str | None]:
        self._keep(piece)
        text = None if self.oversized else "".join(self.parts).strip()
        self.parts, self.size, self.oversized = [], 0, False
        self.done = final
        if text == "" and final and self.count == 0:
            return  # "[]"
        self.count += 1
        yield text


def _json_array_rows(stream: IO[bytes], limit: int) -> Iterator[Row]:
    splitter = _ArraySplitter(limit)
    utf8 = codecs.getincrementaldecoder("utf-8")()
    while True:
        chunk = stream.read(BUFFER_BYTES)
        try:
            text = utf8.decode(chunk, final=not chunk)
        except UnicodeDecodeError:
            raise Rejected("bad_encoding", "the file is not valid UTF-8") from None
        for element in splitter.feed(text, final=not chunk):
            number = splitter.count
            if element is None:
                yield Row(number, problem=_oversized(limit))
                continue
            try:
                yield Row(number, loads_strict(element), text=element)
            except Rejected as exc:
                yield Row(number, problem=exc, text=element)
        if not chunk:
            break
    if splitter.mode is not None and not splitter.done:
        raise Rejected("bad_json_array", "the JSON array is not terminated (truncated file?)")


def _oversized(limit: int) -> Rejected:
    return Rejected("oversized_row", f"the row is larger than {limit} bytes")


def _clip(data: bytes) -> str:
    text = data[: RAW_CLIP * 4].decode("utf-8", errors="replace").rstrip("\r\n")
    return text if len(text) <= RAW_CLIP else text[: RAW_CLIP - 3] + "..."
