"""Large files across invocations: the work message, ranged reads, and the planner's scan.

A file is worked through in *slices*, each one invocation's share:

- **split** (uncompressed CSV and JSON Lines above ``SPLIT_THRESHOLD_BYTES``): the planner
  reads the file once without parsing values (:func:`scan`) and cuts it into parts of about
  ``PART_BYTES``, each starting where a record starts. Each part is a message on the
  pipeline's own queue; a part owns the rows that *start* inside its byte range and is read
  with ranged GETs. The planner cuts only between records, so a row is read by exactly one
  part, with the number it has in the whole file. A CSV record that spans lines (a quoted
  field holding a newline) stops the splitting there: the rest of the file becomes one last
  part, read sequentially by the CSV reader, which knows where such records end.
- **resume** (gzip, JSON arrays, and any slice that runs short of time): before the deadline
  a slice stores what it has read and sends a *continuation*: the byte offset of the next
  record (uncompressed CSV / JSON Lines) or the number of rows to skip (gzip, JSON array:
  re-read and pass over them without parsing or storing).

S3 semantics relied on (S3 API Reference, GetObject): ``Range`` takes one ``bytes=first-last``
range, both inclusive, as RFC 9110 defines it (S3 "doesn't support retrieving multiple ranges
of data per GET request"); a range whose start is beyond the object answers 416, so no range
here starts at or after the object's size. ``If-Match`` returns the object "only if its
entity tag (ETag) is the same as the one specified ... otherwise, return a 412 Precondition
Failed": every read of a run is pinned to the ETag the planner saw, so a file overwritten
mid-run is never read half old, half new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import IO, Any

from botocore.exceptions import ClientError

from .config import INCOMING_PREFIX
from .errors import Rejected, object_read_error
from .readers import Row, Window, iter_rows

#: Body marker of a work message; anything else on the queue is a transaction or an event.
WORK_MARKER = "pipelinectl-file-work"
#: Bytes fetched per ranged GET beyond what a part is known to need.
RANGE_WINDOW = 1024 * 1024
#: A file is cut into at most this many parts (the part size grows for larger files), so the
#: run's bookkeeping item stays far below DynamoDB's 400 KB item limit.
MAX_PARTS = 1000
FORMATS = ("csv", "jsonl", "json")
KINDS = ("scan", "part", "whole")


@dataclass(frozen=True)
class Work:
    """One slice of a file's run: what to read, from where, to where.

    ``kind``: ``scan`` (the planner, resuming at ``start``), ``part`` (records starting in
    ``[start, end)``; ``end`` None = to the end of the file) or ``whole`` (the file from its
    start, skipping ``skip`` rows: gzip and JSON arrays). ``row``/``line`` count the rows and
    lines before ``start``.
    """

    run: str
    bucket: str
    key: str
    etag: str
    size: int
    fmt: str
    gzip: bool
    started_ms: int
    kind: str = "whole"
    part: int = 0
    slice: int = 1
    start: int = 0
    end: int | None = None
    row: int = 0
    line: int = 0
    skip: int = 0
    header: list[str] | None = None
    split: bool = False
    #: The SQS message id that claimed this slice, carried by a copy passed on untouched
    #: (lambda_src/fileruns.py, claim); empty for a slice's first message.
    claim: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def slice_id(self) -> str:
        return f"p{self.part:05d}s{self.slice:04d}"

    def window(self) -> Window:
        stop = None if self.end is None or self.kind != "part" else self.end - self.start
        return Window(header=self.header, stop=stop, first_row=self.row,
                      first_line=self.line, skip=self.skip)

    def body(self) -> str:
        return json.dumps({WORK_MARKER: 1, **asdict(self)}, separators=(",", ":"))

    def next_slice(self, **changes: Any) -> Work:
        return replace(self, slice=self.slice + 1, claim="", **changes)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Work:
        """A work message read back; anything malformed is refused (DLQ with the reason)."""
        fields = {k: v for k, v in doc.items() if k != WORK_MARKER}
        try:
            work = cls(**fields)
        except TypeError as exc:
            raise Rejected("bad_work_message", f"not a file work message: {exc}") from None
        ints = (work.size, work.started_ms, work.part, work.slice, work.start, work.row,
                work.line, work.skip)
        if not all(isinstance(n, int) and n >= 0 for n in ints) or work.fmt not in FORMATS \
                or not isinstance(work.claim, str) \
                or work.kind not in KINDS or not work.key.startswith(INCOMING_PREFIX):
            raise Rejected("bad_work_message", "a file work message has invalid fields")
        return work


def run_id(message_id: str, bucket: str, key: str) -> str:
    """The same event (SQS redelivers it with the same message id) is always the same run."""
    return hashlib.sha256(f"{message_id}|{bucket}|{key}".encode()).hexdigest()[:20]


def part_bytes_for(size: int, part_bytes: int) -> int:
    """Parts of ``part_bytes``, fewer than MAX_PARTS of them however large the file."""
    return max(part_bytes, -(-size // MAX_PARTS))


class RangeBody:
    """A Readable over ``[start, size)`` of one object version, fetched by ranged GETs of at
    most ``first`` bytes, then RANGE_WINDOW at a time, as the reader asks for more."""

    def __init__(self, s3: Any, work: Work, start: int, first: int) -> None:
        self.s3, self.work = s3, work
        self.pos, self.next_len = start, max(first, 1)
        self.body: Any = None

    def read(self, amt: int = -1, /) -> bytes:
        while self.pos < self.work.size:
            if self.body is None:
                last = min(self.pos + self.next_len, self.work.size) - 1
                try:
                    self.body = self.s3.get_object(
                        Bucket=self.work.bucket, Key=self.work.key, IfMatch=self.work.etag,
                        Range=f"bytes={self.pos}-{last}")["Body"]
                except ClientError as exc:  # 412: overwritten since the plan; 404: deleted
                    raise object_read_error(exc, self.work.uri) from None
                self.next_len = RANGE_WINDOW
            data: bytes = self.body.read(amt if amt and amt > 0 else None)
            if data:
                self.pos += len(data)
                return data
            self.close()
        return b""

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None


@dataclass
class ScanResult:
    """What one scanning slice found: the parts it cut, and where to go on if unfinished."""

    parts: list[Work] = field(default_factory=list)
    resume: Work | None = None
    multiline_at: int | None = None  # the row where a CSV record spans lines


def scan(stream: IO[bytes], work: Work, part_bytes: int, max_row_bytes: int,
         out_of_time: Callable[[], bool]) -> ScanResult:
    """Cut ``[work.start, size)`` into parts between records. The rows are read by the same
    reader the parts use, with values left unparsed, so the cut points and row numbers are
    exactly the ones a sequential read would give."""
    window = replace(work, skip=0).window()
    window.parse = False
    result = ScanResult()
    cut = _Cutter(work, part_bytes, window)
    rows: Iterator[Row] = iter_rows(stream, work.fmt, max_row_bytes, window)
    for row in rows:
        if work.fmt == "csv" and row.last_line > (row.line or 0):
            result.multiline_at = row.number
            break  # from the current part's start on, one sequential part
        cut.passed(row)
        if cut.full():
            result.parts.append(cut.emit())
            if out_of_time():
                result.resume = replace(work, kind="scan", start=cut.start, row=cut.row,
                                        line=cut.line, part=cut.part, slice=work.slice + 1,
                                        header=window.header)
                return result
    result.parts.append(cut.emit(final=True))
    return result


class _Cutter:
    """Tracks the part being cut: where it starts, and the last record end passed."""

    def __init__(self, work: Work, part_bytes: int, window: Window) -> None:
        self.work, self.part_bytes, self.window = work, part_bytes, window
        self.part = work.part
        self.start, self.row, self.line = work.start, work.row, work.line
        self.end, self.end_row, self.end_line = work.start, work.row, work.line

    def passed(self, row: Row) -> None:
        self.end = self.work.start + row.end
        self.end_row, self.end_line = row.number, row.last_line

    def full(self) -> bool:
        return self.end - self.start >= self.part_bytes

    def emit(self, *, final: bool = False) -> Work:
        """The part cut so far. Part 0 of a CSV reads its header itself, like a whole read;
        every other part carries it."""
        part = replace(self.work, kind="part", part=self.part, slice=1, start=self.start,
                       end=None if final else self.end, row=self.row, line=self.line, skip=0,
                       split=True,
                       header=None if self.start == 0 else self.window.header)
        self.part += 1
        self.start, self.row, self.line = self.end, self.end_row, self.end_line
        return part
