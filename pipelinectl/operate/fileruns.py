"""A file's run record, read back: what `status`, `test` and `trace` report about a file.

The processor (lambda_src/fileruns.py) keeps one item per object in the transactions table,
keyed by lambda_src/runkeys.py, plus a "latest" item naming the last run to finish or fail.
This module only reads them (GetItem, consistent: a run just completed must show as such)
and turns them into typed values, so no command restates the item's layout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lambda_src.runkeys import COUNTS, LATEST_KEY, run_key

if TYPE_CHECKING:
    from pipelinectl.resources.base import Context


@dataclass(frozen=True)
class Counts:
    """Rows read, stored, found already stored (unchanged) and rejected."""

    rows: int = 0
    stored: int = 0
    unchanged: int = 0
    rejected: int = 0

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Counts:
        return cls(**{name: int(doc.get(name) or 0) for name in COUNTS})


@dataclass(frozen=True)
class FileRun:
    """The latest run of one object. ``state`` is complete, failed or running."""

    uri: str
    run_id: str
    mode: str | None = None  # single | split | resumed
    etag: str | None = None
    size_bytes: int | None = None
    file_format: str | None = None
    parts_total: int | None = None
    parts_done: int = 0
    slice_ids: tuple[str, ...] = ()  # the slices counted so far (a part, or a continuation)
    counted: Counts = field(default_factory=Counts)  # their counts, summed
    totals: Counts | None = None  # set once every part is done
    seconds: float | None = None
    failed_reason: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    rejects_objects: tuple[str, ...] = field(default=())

    @property
    def state(self) -> str:
        if self.failed_reason:
            return "failed"
        return "complete" if self.completed_at is not None else "running"

    @property
    def counts(self) -> Counts:
        """The totals once complete; until then the sum of the slices finished so far."""
        return self.totals if self.totals is not None else self.counted

    @property
    def advice(self) -> str | None:
        """What to do about a run that failed (the reason says why)."""
        if not self.failed_reason:
            return None
        if "was replaced" in self.failed_reason:
            return ("A newer upload replaced the object during the run; its own event starts "
                    "a new run (see `pipelinectl status` again). To process this key again, "
                    "run `pipelinectl replay`.")
        if "does not exist" in self.failed_reason:
            return ("The object was deleted during the run: upload it again (or restore it) "
                    "to process it.")
        return (f"See `pipelinectl logs --filter {self.run_id}` and `pipelinectl dlq list`, "
                "fix the cause, then run `pipelinectl replay`.")

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.update(state=self.state, counts=asdict(self.counts), advice=self.advice,
                   started_at=_iso(self.started_at), completed_at=_iso(self.completed_at))
        doc["totals"] = asdict(self.totals) if self.totals else None
        return doc


def read_file_run(dynamodb: Any, table: str, bucket: str, key: str) -> FileRun | None:
    """The run record of ``s3://bucket/key``; None if no run of it was ever recorded."""
    item = _get(dynamodb, table, run_key(bucket, key))
    return None if item is None else from_item(item)


def latest_file_run(dynamodb: Any, table: str) -> FileRun | None:
    """The last run to finish or fail, as its object's record now stands (a newer run of the
    same object, if one started since, is what is shown); None if no file ever finished."""
    pointer = _get(dynamodb, table, LATEST_KEY)
    latest = (pointer or {}).get("latest")
    if not isinstance(latest, dict) or not latest.get("uri"):
        return None
    bucket, key = parse_uri(str(latest["uri"]))
    record = read_file_run(dynamodb, table, bucket, key)
    return record if record is not None else from_item(latest)


def latest(ctx: Context) -> FileRun | None:
    """For `status`: the latest file run, or None (also before `up` made the table)."""
    dynamodb = ctx.client("dynamodb")
    try:
        return latest_file_run(dynamodb, ctx.names.table)
    except dynamodb.exceptions.ResourceNotFoundException:
        return None


def parse_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); ValueError for anything else."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise ValueError(f"not an S3 object URI (s3://bucket/key): {uri}")
    return bucket, key


def from_item(item: dict[str, Any]) -> FileRun:
    """A record (plain values, as deserialized) to a FileRun; tolerant of missing fields,
    since a run's record grows as its parts finish."""
    totals = item.get("totals")
    return FileRun(
        uri=str(item.get("uri", "")), run_id=str(item.get("run_id", "")),
        mode=_str(item.get("run_mode")), etag=_str(item.get("etag")),
        size_bytes=_int(item.get("size_bytes")), file_format=_str(item.get("file_format")),
        parts_total=_int(item.get("parts_total")),
        parts_done=len(item.get("parts_done") or ()),
        slice_ids=tuple(sorted(str(i) for i in item.get("slice_ids") or ())),
        counted=Counts.of(item), totals=Counts.of(totals) if totals else None,
        seconds=float(totals["seconds"]) if totals and "seconds" in totals else None,
        failed_reason=_str(item.get("failed_reason")),
        started_at=_time(item.get("started_at_ms")),
        completed_at=_time(item.get("completed_at_ms")),
        rejects_objects=tuple(sorted(str(r) for r in item.get("rejects_objects") or ())))


def _get(dynamodb: Any, table: str, transaction_id: str) -> dict[str, Any] | None:
    from boto3.dynamodb.types import TypeDeserializer

    item = dynamodb.get_item(TableName=table, ConsistentRead=True,
                             Key={"transaction_id": {"S": transaction_id}}).get("Item")
    if item is None:
        return None
    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _time(ms: Any) -> datetime | None:
    if not isinstance(ms, int | Decimal):
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None
