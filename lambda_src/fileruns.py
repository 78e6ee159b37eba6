"""A file's run, recorded in the transactions table so `status` and `test` can report it.

One item per object, keyed ``RUN_KEY_PREFIX + s3://bucket/key`` (a transaction id is printable,
so no transaction can take this key; the keys live in lambda_src/runkeys.py, shared with the
CLI's reader pipelinectl/operate/fileruns.py), holding the latest run of that object:
its run id, mode, parts, each finished slice's counts, and once every part is done the
totals (rows, stored, unchanged, rejected), the number of parts and slices and the duration.
Every write is an UpdateItem (the role's table actions) conditioned on the run id, so a late
slice of an older run never touches a newer run's record, and the completion is written
exactly once (``attribute_not_exists(completed_at)``).

Each work message (a part, a continuation) first *claims* its slice with its SQS message id,
and a finished slice records where its continuation starts (``next``). SQS delivers at least
once and a slice may be retried after it recorded and sent its continuation (a timeout or
crash before the acknowledgement); the retry's own stopping point would differ (it depends on
time), so without this a second chain of slices would run the rest of the file again, and
the run's counts would mix both chains' slices (seen on `pipelinectl local`: a gzip retried
after a timeout ran as two chains, "2 running"). So: a retry of a recorded slice sends the
recorded continuation (never its own), and a second message for a claimed slice (that
re-sent continuation, or a duplicate delivery under another id) does nothing.

A slice's counts are written with ``if_not_exists``: the first finished attempt of a slice
defines them. After a crash the retried slice finds the crashed attempt's rows already stored
and counts them as unchanged, so ``stored + unchanged`` is exact and ``stored`` a lower bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from .errors import error_code
from .observability import logger
from .runkeys import COUNTS, LATEST_KEY, RUN_KEY_PREFIX, run_key
from .split import Work
from .storage import from_attributes, to_attributes

__all__ = ["COUNTS", "LATEST_KEY", "RUN_KEY_PREFIX", "FileRuns", "SliceCounts", "run_key"]


@dataclass
class SliceCounts:
    rows: int = 0
    stored: int = 0
    unchanged: int = 0
    rejected: int = 0


class FileRuns:
    """Writes a run's record; each method is one or two UpdateItem calls."""

    def __init__(self, client: Any, table: str, clock: Callable[[], float]) -> None:
        self.client, self.table, self.clock = client, table, clock

    def start(self, work: Work, mode: str, parts_total: int | None = None) -> None:
        """Open the run's record (a newer run of the same object replaces an older one)."""
        values = {":r": work.run, ":uri": work.uri, ":etag": work.etag, ":size": work.size,
                  ":fmt": work.fmt + (".gz" if work.gzip else ""), ":mode": mode,
                  ":t": work.started_ms, ":empty": {}}
        expression = ("SET run_id = :r, uri = :uri, etag = :etag, size_bytes = :size, "
                      "file_format = :fmt, run_mode = :mode, started_at_ms = :t, "
                      "slices = :empty, claims = :empty "
                      "REMOVE completed_at_ms, failed_reason, parts_done, parts_total, totals")
        if parts_total is not None:
            expression = expression.replace(" REMOVE", ", parts_total = :n REMOVE").replace(
                ", parts_total, totals", ", totals")
            values[":n"] = parts_total
        self._update(work, expression, values, condition=(
            "attribute_not_exists(run_id) OR (run_id <> :r AND started_at_ms <= :t)"),
            quiet=True)

    def set_parts(self, work: Work, parts_total: int) -> None:
        """The planner finished cutting: the run is complete once that many parts are."""
        item = self._update(work, "SET parts_total = :n", {":r": work.run, ":n": parts_total},
                            condition="run_id = :r")
        self._maybe_complete(work, item)

    def claim(self, work: Work, message_id: str) -> tuple[bool, dict[str, Any] | None]:
        """Claim this slice for ``message_id`` (one UpdateItem): (go on?, the slice's recorded
        entry if a previous attempt of this message already finished it). False: another
        message holds the slice, or a newer run the record. A copy passed on untouched
        claims as the message it was passed on from (``work.claim``), which may have claimed
        the slice in an attempt that then timed out. The event's own first slice has
        no record to claim in before it hands on: it goes on, as it always did."""
        first = work.kind == "whole" and work.slice == 1
        name = f"scan-s{work.slice:04d}" if work.kind == "scan" else work.slice_id
        item = self._update(work, "SET claims.#c = if_not_exists(claims.#c, :m)",
                            {":r": work.run, ":m": work.claim or message_id},
                            names={"#c": name},
                            condition="run_id = :r AND (attribute_not_exists(claims.#c) "
                                      "OR claims.#c = :m)", quiet=first)
        if item is None:
            return first, None
        entry = (item.get("slices") or {}).get(work.slice_id)
        return True, entry if work.kind != "scan" else None

    def slice_done(self, work: Work, counts: SliceCounts, *, part_finished: bool,
                   rejects: str | None, follow: Work | None = None) -> None:
        entry = {**{name: getattr(counts, name) for name in COUNTS},
                 "rejects": rejects or "", "part": work.part}
        if follow is not None:  # where the continuation starts, for a retry to re-send
            entry["next"] = {k: v for k, v in asdict(follow).items()
                             if k != "slice" and v != getattr(work, k)}
        expression = "SET slices.#s = if_not_exists(slices.#s, :c)"
        values: dict[str, Any] = {":r": work.run, ":c": entry}
        if part_finished:
            expression += " ADD parts_done :p"
            values[":p"] = {f"p{work.part:05d}"}
        item = self._update(work, expression, values, condition="run_id = :r",
                            names={"#s": work.slice_id})
        self._maybe_complete(work, item)

    def single(self, work: Work, counts: SliceCounts, rejects: str | None) -> None:
        """A file done in one invocation: the whole record in one call."""
        self.start(work, "single", parts_total=1)
        self.slice_done(work, counts, part_finished=True, rejects=rejects)

    def failed(self, work: Work, reason: str) -> None:
        logger.error("file run cannot finish", extra={"source": work.uri, "reason": reason})
        if self._update(work, "SET failed_reason = :why", {":r": work.run, ":why": reason},
                        condition="run_id = :r AND attribute_not_exists(completed_at_ms)"):
            # Only while the record is still this run's: a newer run owns "latest" otherwise.
            self._latest(work, {"uri": work.uri, "run_id": work.run, "failed_reason": reason})

    def _maybe_complete(self, work: Work, item: dict[str, Any] | None) -> None:
        if not item or item.get("completed_at_ms") is not None:
            return
        total = item.get("parts_total")
        if total is None or len(item.get("parts_done") or ()) < int(total):
            return
        slices = (item.get("slices") or {}).values()
        totals = {name: sum(int(s[name]) for s in slices) for name in COUNTS}
        rejects = sorted(s["rejects"] for s in slices if s.get("rejects"))
        now = int(self.clock() * 1000)
        summary = {**totals, "parts": int(total), "slices": len(slices),
                   "seconds": Decimal(now - int(item["started_at_ms"])) / 1000,
                   "rejects_objects": len(rejects), "first_rejects": rejects[:1]}
        done = self._update(work, "SET completed_at_ms = :now, totals = :tot",
                            {":r": work.run, ":now": now, ":tot": summary},
                            condition="run_id = :r AND attribute_not_exists(completed_at_ms)")
        if done is not None:
            logger.info("file run complete", extra={"source": work.uri, **summary})
            self._latest(work, {"uri": work.uri, "run_id": work.run, "totals": summary,
                                "completed_at_ms": now})

    def _latest(self, work: Work, record: dict[str, Any]) -> None:
        try:
            self.client.update_item(
                TableName=self.table, Key={"transaction_id": {"S": LATEST_KEY}},
                UpdateExpression="SET latest = :v",
                ExpressionAttributeValues=to_attributes({":v": record}))
        except ClientError as exc:  # bookkeeping only: the rows are stored
            logger.warning("could not record the latest file run",
                           extra={"source": work.uri, "error": error_code(exc)})

    def _update(self, work: Work, expression: str, values: dict[str, Any], *, condition: str,
                names: dict[str, str] | None = None,
                quiet: bool = False) -> dict[str, Any] | None:
        """One UpdateItem; None when the condition failed (another run owns the record)."""
        extra = {"ExpressionAttributeNames": names} if names else {}
        try:
            answer = self.client.update_item(
                TableName=self.table, Key={"transaction_id": {"S": run_key(work.bucket,
                                                                          work.key)}},
                UpdateExpression=expression, ConditionExpression=condition,
                ExpressionAttributeValues=to_attributes(values), ReturnValues="ALL_NEW",
                **extra)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            if not quiet:
                logger.info("file run record belongs to another run; not updated",
                            extra={"source": work.uri, "run_id": work.run})
            return None
        return from_attributes(answer.get("Attributes", {}))
