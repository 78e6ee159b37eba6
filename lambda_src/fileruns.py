"""A file's run, recorded in the transactions table so `status` and `test` can report it.

One item per object, keyed ``RUN_KEY_PREFIX + s3://bucket/key`` (a transaction id is printable,
so no transaction can take this key; the keys live in lambda_src/runkeys.py, shared with the
CLI's reader pipelinectl/operate/fileruns.py), holding the latest run of that object: its run
id, mode, parts, running counts (rows, stored, unchanged, rejected, ADDed per slice), the
ids of the slices counted and of the parts done (string sets), the rejects objects, and once
every part is done the totals, the number of parts and slices and the duration. Every write
is an UpdateItem (the role's table actions) conditioned on the run id, so a late slice of an
older run never touches a newer run's record, and the completion is written exactly once
(``attribute_not_exists(completed_at_ms)``). A slice is counted exactly once: the ADD is
conditioned on its id not being in ``slice_ids`` yet, in the same call.

Each slice also has a small item of its own (``slice_key``): each work message (a part, a
continuation) first *claims* it with its SQS message id, and a finished slice records there
its counts and, if it hands on, where its continuation starts (``entry.next``), before it is
counted. SQS delivers at
least once and a slice may be retried after it recorded and sent its continuation (a timeout
or crash before the acknowledgement); the retry's own stopping point would differ (it depends
on time), so without this a second chain of slices would run the rest of the file again, and
the run's counts would mix both chains' slices (seen on `pipelinectl local`: a gzip retried
after a timeout ran as two chains, "2 running"). So: a retry of a recorded slice counts the
recorded entry (if the crash came before that) and sends the recorded continuation (never its
own), and a second message for a claimed slice (that re-sent continuation, or a duplicate
delivery under another id) does nothing. These lived in the run record until a
1,000,000-row CSV (128 parts, ~600 slices) made every update of it O(slices): 1.5 s each
locally, and on AWS an UpdateItem consumes write units for the whole item (Developer Guide,
"DynamoDB read and write operations") and an item may not exceed 400 KB.

The first finished attempt of a slice defines its counts (``if_not_exists``).
After a crash the retried slice finds the crashed attempt's rows already stored and counts
them as unchanged, so ``stored + unchanged`` is exact and ``stored`` a lower bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from .errors import error_code
from .observability import logger
from .runkeys import COUNTS, LATEST_KEY, RUN_KEY_PREFIX, run_key, slice_key
from .split import Work
from .storage import from_attributes, to_attributes

__all__ = ["COUNTS", "LATEST_KEY", "RUN_KEY_PREFIX", "FileRuns", "SliceCounts", "run_key"]

#: What records written before slices had their own items held; removed when a run starts.
LEGACY_FIELDS = ("slices", "claims")
#: The running counts are top-level attributes; ``rows`` is a DynamoDB reserved word.
COUNT_NAMES = {f"#{name}": name for name in COUNTS}


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
                  ":t": work.started_ms}
        sets = ("run_id = :r, uri = :uri, etag = :etag, size_bytes = :size, "
                "file_format = :fmt, run_mode = :mode, started_at_ms = :t")
        removes = ["completed_at_ms", "failed_reason", "parts_done", "totals", "slice_ids",
                   "rejects_objects", *COUNT_NAMES, *LEGACY_FIELDS]
        if parts_total is not None:
            sets += ", parts_total = :n"
            values[":n"] = parts_total
        else:
            removes.append("parts_total")
        self._update(work, f"SET {sets} REMOVE {', '.join(removes)}", values, condition=(
            "attribute_not_exists(run_id) OR (run_id <> :r AND started_at_ms <= :t)"),
            quiet=True, names=COUNT_NAMES)

    def set_parts(self, work: Work, parts_total: int) -> None:
        """The planner finished cutting: the run is complete once that many parts are."""
        item = self._update(work, "SET parts_total = :n", {":r": work.run, ":n": parts_total},
                            condition="run_id = :r")
        self._maybe_complete(work, item)

    def claim(self, work: Work, message_id: str) -> tuple[bool, dict[str, Any] | None]:
        """Claim this slice for ``message_id`` (one UpdateItem of its own item): (go on?, the
        slice's recorded entry if a previous attempt of this message already handed on).
        False: another message holds the slice. A copy passed on untouched claims as the
        message it was passed on from (``work.claim``), which may have claimed the slice in
        an attempt that then timed out."""
        name = f"scan-s{work.slice:04d}" if work.kind == "scan" else work.slice_id
        try:
            item = self._update_slice(
                work, name, "SET claimed_by = if_not_exists(claimed_by, :m)",
                {":m": work.claim or message_id},
                condition="attribute_not_exists(claimed_by) OR claimed_by = :m")
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False, None
        return True, item.get("entry") if work.kind != "scan" else None

    def slice_done(self, work: Work, counts: SliceCounts, *, rejects: str | None,
                   follow: Work | None = None) -> dict[str, Any]:
        """Record the slice's entry (counts, and where ``follow`` starts) on its own item,
        then count it in the run. Every slice records it, the last of a part too: a retry
        of a counted last slice that found nothing recorded would read the part again, run
        out of time at another row and hand on a continuation whose rows were already
        counted (a 1,000,000-row CSV completed with 1,003,896 rows). Returns the entry as
        recorded: another attempt of the slice may have recorded first (see files.py)."""
        entry: dict[str, Any] = {**{name: getattr(counts, name) for name in COUNTS},
                                 "rejects": rejects or "", "part": work.part}
        if follow is not None:
            entry["next"] = {k: v for k, v in asdict(follow).items()
                             if k != "slice" and v != getattr(work, k)}
        item = self._update_slice(work, work.slice_id, "SET entry = if_not_exists(entry, :e)",
                                  {":e": entry})
        entry = item.get("entry") or entry
        self.count(work, entry)
        return entry

    def count(self, work: Work, entry: dict[str, Any]) -> None:
        """Add a slice's recorded counts to the run, once (its id joins ``slice_ids`` in the
        same conditional ADD); an entry with no continuation finished its part. Complete
        the run if that was the last part.

        AWS: ADD adds a number to a number attribute and elements to a set, creating either
        if absent (Developer Guide, "Update expressions", ADD); ``contains(path, operand)`` is
        true for "a Set that contains a particular element" (Developer Guide, "Condition and
        filter expressions, operators, and functions"). That it is false for an absent
        attribute (the run's first slice) is not stated there; moto and the tests rely on it."""
        values: dict[str, Any] = {":r": work.run, ":id": work.slice_id,
                                  ":ids": {work.slice_id}}
        adds = [f"#{name} :{name}" for name in COUNTS] + ["slice_ids :ids"]
        values.update({f":{name}": int(entry.get(name) or 0) for name in COUNTS})
        if entry.get("next") is None:
            adds.append("parts_done :p")
            values[":p"] = {f"p{work.part:05d}"}
        if entry.get("rejects"):
            adds.append("rejects_objects :ro")
            values[":ro"] = {str(entry["rejects"])}
        item = self._update(work, "ADD " + ", ".join(adds), values, condition=(
            "run_id = :r AND attribute_not_exists(completed_at_ms) "
            "AND NOT contains(slice_ids, :id)"), counted_already=True, names=COUNT_NAMES)
        self._maybe_complete(work, item)

    def single(self, work: Work, counts: SliceCounts, rejects: str | None) -> dict[str, Any]:
        """A file done in one invocation: the record, then its one slice counted."""
        self.start(work, "single", parts_total=1)
        return self.slice_done(work, counts, rejects=rejects)

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
        rejects = sorted(item.get("rejects_objects") or ())
        now = int(self.clock() * 1000)
        summary = {**{name: int(item.get(name) or 0) for name in COUNTS}, "parts": int(total),
                   "slices": len(item.get("slice_ids") or ()),
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

    def _update_slice(self, work: Work, name: str, expression: str, values: dict[str, Any],
                      condition: str | None = None) -> dict[str, Any]:
        """One UpdateItem of a slice's own item; the item as it stands afterwards."""
        extra = {"ConditionExpression": condition} if condition else {}
        answer = self.client.update_item(
            TableName=self.table, Key={"transaction_id": {"S": slice_key(work.run, name)}},
            UpdateExpression=expression, ExpressionAttributeValues=to_attributes(values),
            ReturnValues="ALL_NEW", **extra)
        return from_attributes(answer.get("Attributes", {}))

    def _update(self, work: Work, expression: str, values: dict[str, Any], *, condition: str,
                quiet: bool = False, counted_already: bool = False,
                names: dict[str, str] | None = None) -> dict[str, Any] | None:
        """One UpdateItem of the run record; None when the condition failed (another run
        owns the record). ``counted_already``: a failed condition may also mean the slice
        was counted before (a retry); then the record as it stands is returned, for the
        completion check a crash may have cut short."""
        extra = {"ExpressionAttributeNames": names} if names else {}
        try:
            answer = self.client.update_item(
                TableName=self.table, Key={"transaction_id": {"S": run_key(work.bucket,
                                                                          work.key)}},
                UpdateExpression=expression, ConditionExpression=condition,
                ExpressionAttributeValues=to_attributes(values), ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD", **extra)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            current = from_attributes(exc.response.get("Item") or {})
            if counted_already and current.get("run_id") == work.run:
                return current
            if not quiet:
                logger.info("file run record belongs to another run; not updated",
                            extra={"source": work.uri, "run_id": work.run})
            return None
        return from_attributes(answer.get("Attributes", {}))
