"""One S3 object: streamed, validated and stored in chunks, rejects written beside it.

Memory stays bounded by one chunk of transactions (100 rows) plus the readers' buffers, so
file size only costs time - and time is bounded per invocation: a file above the split
threshold is cut into parts that run as separate messages (lambda_src/split.py), and any
slice of work that runs short of time stores what it read and hands the rest on in a
continuation message before its deadline. Transient failures retry the slice (SQS
redelivers the message): rows already stored are recognised by their fingerprint and
skipped, alerts already sent are not repeated (see :mod:`lambda_src.persist`), and the
slice's rejects object is rewritten with the same content.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import IO, Any

from botocore.exceptions import ClientError

from .config import INCOMING_PREFIX, Settings
from .envelopes import FileRef
from .errors import OBJECT_GONE, Rejected, TransientError, error_code, object_read_error
from .fileruns import FileRuns, SliceCounts
from .observability import logger
from .persist import Outcome, Persister
from .readers import Row, detect_format, iter_rows, open_detected, open_stream
from .rejects import RejectsFile, rejects_key, send_batches
from .split import RangeBody, Work, part_bytes_for, run_id, scan
from .storage import BATCH_GET_LIMIT
from .validation import Origin, Transaction, validate

#: Time kept back before the deadline to store the chunk in hand, write the rejects and send
#: the continuation: a fifth of what the slice had, within these bounds.
GUARD_MS = (2_000, 30_000)


@dataclass
class FileStats:
    """What one file (or one slice of it) contributed, for metrics and the log line."""

    rows: int = 0
    rejected: int = 0
    outcome: Outcome = field(default_factory=Outcome)


@dataclass
class _Slice:
    """The state of one slice being read."""

    work: Work
    rejects: RejectsFile
    stats: FileStats = field(default_factory=FileStats)
    last: Row | None = None
    origin: Origin | None = None  # the message that carried this slice, stored on its rows


class FileProcessor:
    """Processes S3 objects referenced by Object Created events, and the work messages
    that carry large files on across invocations."""

    def __init__(self, s3: Any, persister: Persister, settings: Settings, sqs: Any = None,
                 runs: FileRuns | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.s3, self.persister, self.settings = s3, persister, settings
        self.sqs, self.runs, self.clock = sqs, runs, clock

    @property
    def can_hand_off(self) -> bool:
        return bool(self.settings.queue_url and self.sqs is not None and self.runs)

    def process(self, ref: FileRef, deadline_ms: int, message_id: str = "",
                origin: Origin | None = None, *, retry: bool = False) -> FileStats:
        """An Object Created event: read it whole, or plan its parts when it is large.
        Raises Rejected if the object is gone, TransientError to retry. ``retry``: SQS
        delivered the event before; if that attempt already handed on, it is not redone."""
        if ref.replay:  # `pipelinectl replay` sent this event: a new run of the file
            logger.info("file replayed", extra={"source": ref.uri, "replay": ref.replay})
        try:
            fmt, gzipped = detect_format(ref.key)
        except Rejected as problem:
            return self._unusable(ref, problem)
        response = self._get(ref.bucket, ref.key, ref.uri)
        body = response["Body"]
        stream, gzipped = open_detected(body, gzipped=gzipped)
        work = Work(run=run_id(message_id, ref.bucket, ref.key), bucket=ref.bucket,
                    key=ref.key, etag=response.get("ETag", ""),
                    size=int(response.get("ContentLength") or 0), fmt=fmt, gzip=gzipped,
                    started_ms=int(self.clock() * 1000))
        if (self.can_hand_off and not gzipped and fmt in ("csv", "jsonl")
                and work.size > self.settings.split_threshold_bytes):
            return self._plan(Work(**{**work.__dict__, "kind": "scan"}), stream, body,
                              deadline_ms)
        if self._passed_on(work, deadline_ms, message_id):
            body.close()
            return FileStats()
        if retry and self.can_hand_off and not self._claimed(work, message_id):
            body.close()
            return FileStats()
        return self._slice(work, stream, body, deadline_ms, origin)

    def resume(self, work: Work, deadline_ms: int, origin: Origin | None = None) -> FileStats:
        """A part, a continuation or the planner's own continuation."""
        if not self.can_hand_off or self.runs is None:
            raise TransientError("a file work message needs QUEUE_URL; redeploy with "
                                 "`pipelinectl lambda`")
        message_id = (origin.message_id if origin else None) or ""
        if self._passed_on(work, deadline_ms, message_id) or \
                not self._claimed(work, message_id):
            return FileStats()
        try:
            if work.kind in ("part", "scan"):
                ranged = RangeBody(self.s3, work, work.start, _first_window(work))
                stream = open_stream(ranged, gzipped=False)
                if work.kind == "scan":  # the planner's continuation, from where it stopped
                    return self._plan(work, stream, ranged, deadline_ms)
                return self._slice(work, stream, ranged, deadline_ms, origin)
            body = self._get(work.bucket, work.key, work.uri, etag=work.etag)["Body"]
            return self._slice(work, open_stream(body, gzipped=work.gzip), body, deadline_ms,
                               origin)
        except Rejected as problem:  # deleted or replaced since the run began
            self.runs.failed(work, f"{problem.reason}; the run was stopped (a new upload of "
                                   "the key is processed by its own run)")
            return FileStats()

    def _passed_on(self, work: Work, deadline_ms: int, message_id: str = "") -> bool:
        """A batch of several files or parts whose first used the time: this one is sent on
        untouched - and unclaimed, before any call that takes time (a part claimed and then
        passed on would find its copy refused as a duplicate, and never be read). The copy
        carries this message's id: an earlier attempt of this message may hold the claim."""
        if not self.can_hand_off or not self._timer(deadline_ms)():
            return False
        self._send([replace(work, claim=work.claim or message_id)])
        return True

    def _claimed(self, work: Work, message_id: str) -> bool:
        """Whether to read this slice: not when another message holds it (a duplicate), nor
        when this message's earlier attempt finished it; then it is counted (if the attempt
        died before that) and its recorded continuation sent again (it may not have been:
        the attempt can have died between the two), never a new one from a different
        stopping point (lambda_src/fileruns.py)."""
        assert self.runs is not None
        go, entry = self.runs.claim(work, message_id)
        if not go:
            logger.info("file slice already taken by another message; nothing to do",
                        extra={"source": work.uri, "slice": work.slice_id, "run_id": work.run})
            return False
        if entry is None:
            return True
        logger.info("file slice already done; its continuation (if any) is sent again",
                    extra={"source": work.uri, "slice": work.slice_id, "run_id": work.run})
        # The attempt may have died between recording and counting: count it (once).
        self.runs.count(work, entry)
        recorded = _recorded_continuation(work, entry)
        if recorded is not None:
            self._send([recorded])
        return False

    # -- planning -------------------------------------------------------------------
    def _plan(self, work: Work, stream: IO[bytes], body: Any, deadline_ms: int) -> FileStats:
        assert self.runs is not None
        if work.slice == 1:
            self.runs.start(work, "split")
        out_of_time = self._timer(deadline_ms)
        try:
            result = scan(stream, work, part_bytes_for(work.size, self.settings.part_bytes),
                          self.settings.max_row_bytes, out_of_time)
        finally:
            body.close()  # hand the HTTP connection back even when we stop early
        follow = [*result.parts, *([result.resume] if result.resume else [])]
        self._send(follow)
        if result.multiline_at is not None:
            logger.info("CSV record with a quoted newline: the rest of the file is read "
                        "sequentially", extra={"source": work.uri, "row": result.multiline_at})
        if result.resume is None:
            self.runs.set_parts(work, result.parts[-1].part + 1)
        logger.info("file split", extra={"source": work.uri, "parts": len(result.parts),
                                         "size": work.size, "scan_done": not result.resume})
        return FileStats()

    # -- reading ----------------------------------------------------------------------
    def _slice(self, work: Work, stream: IO[bytes], body: Any, deadline_ms: int,
               origin: Origin | None = None) -> FileStats:
        """Read, validate and store rows until the end of the work or of the time."""
        state = _Slice(work, RejectsFile(work.uri), origin=origin)
        window = work.window()
        out_of_time = self._timer(deadline_ms) if self.can_hand_off else (lambda: False)
        follow: Work | None = None
        try:
            follow = self._read(state, iter_rows(stream, work.fmt, self.settings.max_row_bytes,
                                                 window), deadline_ms, out_of_time)
            if follow is not None:
                follow = _continuation(work, follow, state.last, window.header)
            state.stats.rejected = state.rejects.count
            key = self._rejects_key(work, single=follow is None and not work.split
                                    and work.slice == 1 and work.kind == "whole")
            state.rejects.upload(self.s3, work.bucket, key)
        finally:
            state.rejects.close()
            body.close()  # hand the HTTP connection back even when we stop early
        self._finish(work, state, follow, key if state.rejects.count else None)
        return state.stats

    def _read(self, state: _Slice, rows: Any, deadline_ms: int,
              out_of_time: Callable[[], bool]) -> Work | None:
        """Rows until the end (None) or until time is short (the work to continue)."""
        pending: list[Transaction] = []
        origins: list[Row] = []  # the row each pending transaction came from
        flush = self._flusher(pending, origins, deadline_ms, state)
        try:
            for row in rows:
                state.last = row
                state.stats.rows += 1
                self._take(row, state, pending, origins)
                if len(pending) >= BATCH_GET_LIMIT:
                    flush()
                    if out_of_time():
                        return state.work
        except Rejected as problem:  # the file as a whole is unusable from here on
            if problem.code in OBJECT_GONE:  # not this file's content: the run stops
                raise
            state.rejects.add(None, problem)
        flush()
        return None

    def _take(self, row: Row, state: _Slice, pending: list[Transaction],
              origins: list[Row]) -> None:
        if row.problem is not None:
            state.rejects.add(row.number, row.problem, row.raw, row.line)
            return
        try:
            pending.append(validate(row.value, source=f"{state.work.uri}#{row.number}",
                                    unknown_fields=self.settings.unknown_fields,
                                    origin=state.origin))
            origins.append(Row(row.number, text=row.text, line=row.line))
        except Rejected as problem:
            state.rejects.add(row.number, problem, row.raw, row.line,
                              transaction_id=_id_of(row.value))

    def _flusher(self, pending: list[Transaction], origins: list[Row], deadline_ms: int,
                 state: _Slice) -> Callable[[], None]:
        def flush() -> None:
            if not pending:
                return
            outcome = self.persister.persist(pending, deadline_ms)
            for position, problem in sorted(outcome.conflicts.items()):
                row = origins[position]
                state.rejects.add(row.number, problem, row.raw, row.line,
                                  transaction_id=pending[position].transaction_id)
            pending.clear()
            origins.clear()
            state.stats.outcome.add(outcome)
            if outcome.failed:
                txn_id, reason = next(iter(outcome.failed.items()))
                raise TransientError(f"{len(outcome.failed)} row(s) not stored, e.g. "
                                     f"{txn_id}: {reason}")
        return flush

    def _finish(self, work: Work, state: _Slice, follow: Work | None,
                rejects: str | None) -> None:
        """The record first, then the continuation: the next slice may finish the part (and
        the run) at once, in another invocation, and the run's totals must already hold this
        slice. A crash in between repeats the slice (its record is kept, if_not_exists) and
        then sends the continuation: the rest of the file is never lost either way."""
        stats = state.stats
        counts = SliceCounts(rows=stats.rows, stored=stats.outcome.stored,
                             unchanged=stats.outcome.unchanged, rejected=stats.rejected)
        logger.info("file processed" if follow is None else "file slice handed on", extra={
            "source": work.uri, "rows": stats.rows, "rejected": stats.rejected,
            "stored": counts.stored, "unchanged": counts.unchanged,
            "alerts_sent": stats.outcome.alerts_sent, "rejects": rejects or "",
            "part": work.part, "slice": work.slice, "run_id": work.run})
        if self.runs is not None:
            if follow is None and work.kind == "whole" and work.slice == 1:
                entry = self.runs.single(work, counts, rejects)
            else:
                if work.slice == 1 and work.kind == "whole":  # resumed: a run of one part
                    self.runs.start(work, "resumed", parts_total=1)
                entry = self.runs.slice_done(work, counts, rejects=rejects, follow=follow)
            # Two attempts of one slice can run at once (a message passed on by a busy
            # invocation that then timed out is retried while its copy runs): they stop at
            # different rows, and only the entry recorded first counts. Its continuation is
            # the one sent; the other attempt's own would fork a second chain whose first
            # rows no slice counts (a 1,000,000-row CSV completed with 2,123 rows fewer).
            follow = _recorded_continuation(work, entry)
        if follow is not None:
            self._send([follow])

    # -- helpers -----------------------------------------------------------------------
    def _unusable(self, ref: FileRef, problem: Rejected) -> FileStats:
        """A file that cannot be read at all (say, an unsupported extension): one entry."""
        rejects = RejectsFile(ref.uri)
        try:
            rejects.add(None, problem)
            rejects.upload(self.s3, ref.bucket, rejects_key(ref.key,
                                                            self.settings.rejects_prefix))
        finally:
            rejects.close()
        return FileStats(rejected=1)

    def _timer(self, deadline_ms: int) -> Callable[[], bool]:
        start = int(self.clock() * 1000)
        guard = min(max((deadline_ms - start) // 5, GUARD_MS[0]), GUARD_MS[1])
        return lambda: deadline_ms - int(self.clock() * 1000) < guard

    def _send(self, works: list[Work]) -> None:
        """Parts and continuations onto the pipeline's own queue (SendMessageBatch: at most
        10 entries and 1 MiB per call; a message is at most a few KiB plus the header)."""
        entries = [{"Id": f"w{i}", "MessageBody": w.body()} for i, w in enumerate(works)]
        for batch in send_batches(entries):
            try:
                answer = self.sqs.send_message_batch(QueueUrl=self.settings.queue_url,
                                                     Entries=batch)
            except ClientError as exc:
                raise TransientError(f"could not queue file work: {error_code(exc)}") from None
            if answer.get("Failed"):
                raise TransientError(f"SQS refused file work: {answer['Failed'][0]}")

    def _rejects_key(self, work: Work, *, single: bool) -> str:
        if single:
            return rejects_key(work.key, self.settings.rejects_prefix)
        name = work.key.removeprefix(INCOMING_PREFIX)
        piece = "" if work.slice == 1 else f"-{work.slice}"
        return f"{self.settings.rejects_prefix}{name}.part-{work.part:05d}{piece}.errors.jsonl"

    def _get(self, bucket: str, key: str, uri: str, etag: str | None = None) -> Any:
        try:
            extra = {"IfMatch": etag} if etag else {}
            return self.s3.get_object(Bucket=bucket, Key=key, **extra)
        except ClientError as exc:
            raise object_read_error(exc, uri) from None


def _id_of(value: Any) -> str | None:
    """A rejected row's transaction id as written (valid or not), for its rejects line."""
    found = value.get("transaction_id") if isinstance(value, dict) else None
    return str(found).strip()[:256] if isinstance(found, str | int) and found != "" else None


def _plain(value: Any) -> Any:
    """A value read back from DynamoDB with its numbers as int again (Work wants ints)."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _first_window(work: Work) -> int:
    """The first ranged GET covers the part and a row's worth beyond it."""
    return (work.end - work.start if work.end is not None else 0) + 64 * 1024


def _recorded_continuation(work: Work, entry: dict[str, Any]) -> Work | None:
    """The continuation a slice's recorded entry names (None: it finished its part)."""
    if entry.get("next") is None:
        return None
    return Work.from_doc({**asdict(work), **_plain(entry["next"]), "slice": work.slice + 1})


def _continuation(work: Work, follow: Work, last: Row | None,
                  header: list[str] | None) -> Work:
    """Where the next slice starts: the byte after the last row read (uncompressed CSV and
    JSON Lines), or from the top skipping the rows read (gzip, JSON arrays)."""
    if last is None:
        return follow.next_slice()
    if work.gzip or work.fmt == "json":
        return follow.next_slice(kind="whole", skip=last.number)
    return follow.next_slice(kind="part", start=work.start + last.end, row=last.number,
                             line=last.last_line, skip=0, header=header)
