"""JSON arrays (``.json``) read element by element, in bounded memory.

A JSON array cannot be split by byte ranges (a bracket or comma inside a string looks like
structure to anyone who did not read from the start), so a large one is read sequentially
and resumed by row count (lambda_src/split.py).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from .errors import Rejected
from .validation import loads_strict

if TYPE_CHECKING:
    from .readers import Row, Window

BUFFER_BYTES = 64 * 1024


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


def json_array_rows(stream: IO[bytes], limit: int, window: Window) -> Iterator[Row]:
    """The array's elements as rows; the first ``window.skip`` are counted, not parsed."""
    from .readers import Row

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
            if number <= window.skip:
                continue
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
