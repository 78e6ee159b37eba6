"""One S3 object: streamed, validated and stored in chunks, rejects written beside it.

Memory stays bounded by one chunk of transactions (100 rows) plus the readers' buffers, so
file size only costs time. If anything transient fails part-way, the whole record is
retried: rows already stored are recognised by their fingerprint and skipped, alerts already
sent are not repeated (see :mod:`lambda_src.persist`), and the rejects object is rewritten
with the same content - which is what makes a half-processed file safe to process again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from .config import Settings
from .envelopes import FileRef
from .errors import Rejected, TransientError
from .observability import logger
from .persist import Outcome, Persister
from .readers import Row, detect_format, iter_rows, open_stream
from .rejects import RejectsFile, rejects_key
from .storage import BATCH_GET_LIMIT
from .validation import Transaction, validate

MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404"})
DENIED_CODES = frozenset({"AccessDenied", "403"})


@dataclass
class FileStats:
    """What one file contributed, for metrics and the log line."""

    rows: int = 0
    rejected: int = 0
    outcome: Outcome = field(default_factory=Outcome)


class FileProcessor:
    """Processes S3 objects referenced by Object Created events."""

    def __init__(self, s3: Any, persister: Persister, settings: Settings) -> None:
        self.s3 = s3
        self.persister = persister
        self.settings = settings

    def process(self, ref: FileRef, deadline_ms: int) -> FileStats:
        """Stream ``ref``; raise Rejected if the object is gone, TransientError to retry."""
        stats = FileStats()
        rejects = RejectsFile(ref.uri)
        try:
            self._stream(ref, deadline_ms, stats, rejects)
            stats.rejected = rejects.count
            rejects.upload(self.s3, ref.bucket, rejects_key(ref.key, self.settings.rejects_prefix))
        finally:
            rejects.close()
        replay = {"replay": ref.replay} if ref.replay else {}
        logger.info("file processed", extra={"source": ref.uri, "rows": stats.rows,
                                             "rejected": stats.rejected, **replay})
        return stats

    def _stream(self, ref: FileRef, deadline_ms: int, stats: FileStats,
                rejects: RejectsFile) -> None:
        pending: list[Transaction] = []
        origins: list[Row] = []  # the row each pending transaction came from
        flush = self._flusher(pending, origins, deadline_ms, stats, rejects)
        body: Any = None
        try:
            fmt, gzipped = detect_format(ref.key)
            body = self._open(ref)
            for row in iter_rows(open_stream(body, gzipped=gzipped), fmt,
                                 self.settings.max_row_bytes):
                stats.rows += 1
                if row.problem is not None:
                    rejects.add(row.number, row.problem, row.raw, row.line)
                    continue
                try:
                    pending.append(validate(row.value, source=f"{ref.uri}#{row.number}",
                                            unknown_fields=self.settings.unknown_fields))
                    origins.append(Row(row.number, text=row.text, line=row.line))
                except Rejected as problem:
                    rejects.add(row.number, problem, row.raw, row.line)
                if len(pending) >= BATCH_GET_LIMIT:
                    flush()
        except Rejected as problem:  # the file as a whole is unusable from here on
            if problem.code == "object_not_found":
                raise
            rejects.add(None, problem)
        finally:
            if body is not None:
                body.close()  # hand the HTTP connection back even when we stop early
        flush()

    def _flusher(self, pending: list[Transaction], origins: list[Row], deadline_ms: int,
                 stats: FileStats, rejects: RejectsFile) -> Callable[[], None]:
        def flush() -> None:
            if not pending:
                return
            outcome = self.persister.persist(pending, deadline_ms)
            for position, problem in sorted(outcome.conflicts.items()):
                row = origins[position]
                rejects.add(row.number, problem, row.raw, row.line)
            pending.clear()
            origins.clear()
            stats.outcome.add(outcome)
            if outcome.failed:
                txn_id, reason = next(iter(outcome.failed.items()))
                raise TransientError(f"{len(outcome.failed)} row(s) not stored, e.g. "
                                     f"{txn_id}: {reason}")
        return flush

    def _open(self, ref: FileRef) -> Any:
        try:
            return self.s3.get_object(Bucket=ref.bucket, Key=ref.key)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in MISSING_OBJECT_CODES:
                raise Rejected("object_not_found", f"{ref.uri} does not exist ({code})") from None
            if code in DENIED_CODES:
                # The role may list incoming/ (s3:ListBucket), so a missing object answers 404
                # (S3 API Reference, GetObject, "Permissions"): a 403 is a denial that can
                # pass (IAM changes propagate in seconds, a key grant is being added), so it
                # is retried; the queue's redrive policy bounds the retries.
                raise TransientError(f"{ref.uri} is not readable by the function yet "
                                     f"({code}); will retry") from None
            raise
