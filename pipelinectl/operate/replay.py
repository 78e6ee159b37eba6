"""`replay`: re-drive files already in the bucket through the pipeline, as new files.

Files that landed before `up`, inside S3's EventBridge enablement window, while the rule or
the mapping was off, or before a processor fix, never produced a stored row. Instead of
copying every object onto itself, `replay` publishes to the ingest topic the same event the
rule would have delivered: our target has no input transformation, so EventBridge sends it
the original event (EventBridge User Guide, "Amazon EventBridge input transformation": with
one, "the transformed event is sent to a target instead of the original event"), and S3's
"Object Created"
event has the shape of the S3 User Guide, "EventBridge event message structure" (version,
id, detail-type, source, account, time, region, resources = [bucket ARN], detail with
bucket.name and object.key / size / etag / version-id). Each replayed event gets a fresh
`id` and carries `replay-name`, the field EventBridge adds to events it replays from an
archive (listed in AWS's Powertools schema for S3 EventBridge events; the EventBridge User
Guide does not spell out the field), so the processor's log line says "replay".

Safe by construction: the processor is idempotent (rows are written with conditional
transactions keyed by transaction id, an identical row is skipped, alerts are sent once,
the rejects object is rewritten with the same content), so replaying a file twice changes
nothing, while a row rejected before a processor fix is stored now.

Publishing as the CLI user: the ingest topic's policy keeps the owner account's statement
(`OwnerAccountManagesTopic`, principal the account root), so an identity of that account
with `sns:Publish` may publish; EventBridge's statement stays limited to our rule.
"""

from __future__ import annotations

import fnmatch
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipelinectl.errors import PipelineError, UsageError
from pipelinectl.operate.targets import Clock, Sleep, Targets
from pipelinectl.resources.base import Context
from pipelinectl.resources.rule import INCOMING_PREFIX

#: Objects per second. A new on-demand table sustains 4,000 write request units per second
#: (DynamoDB Developer Guide, "On-demand capacity mode", initial throughput) and each stored
#: row costs 2 in a transaction, so 10 files/s leaves room for ~200 rows per file.
DEFAULT_RATE = 10.0
#: Above this many objects `replay` asks first (and refuses without --yes when it cannot).
CONFIRM_ABOVE = 100


@dataclass(frozen=True)
class Selection:
    """Which objects to replay: always under incoming/, never outside it."""

    prefix: str = INCOMING_PREFIX
    since_ms: int | None = None
    until_ms: int | None = None
    match: str | None = None
    limit: int | None = None

    def check(self) -> None:
        if not self.prefix.startswith(INCOMING_PREFIX):
            raise UsageError(f"--prefix {self.prefix!r} is outside {INCOMING_PREFIX}: only "
                             f"files under {INCOMING_PREFIX} are processed by the pipeline.")
        if self.since_ms is not None and self.until_ms is not None and \
                self.since_ms > self.until_ms:
            raise UsageError("--since is after --until: no object could match.")

    def wants(self, key: str, modified_ms: int) -> bool:
        if key.endswith("/"):  # a console "folder": no rows, and the processor ignores it
            return False
        if self.since_ms is not None and modified_ms < self.since_ms:
            return False
        if self.until_ms is not None and modified_ms > self.until_ms:
            return False
        if self.match is None:
            return True
        return fnmatch.fnmatchcase(key, self.match) or fnmatch.fnmatchcase(
            key[len(INCOMING_PREFIX):], self.match)


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str
    modified_ms: int
    version_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "etag": self.etag,
                "last_modified": _iso(self.modified_ms / 1000), "version_id": self.version_id}


@dataclass(frozen=True)
class Tick:
    """Progress for the renderer after each published object."""

    done: int
    total: int
    bytes_done: int
    bytes_total: int
    elapsed: float


@dataclass
class ReplayResult:
    bucket: str
    topic: str
    selection: Selection
    dry_run: bool
    rate: float
    objects: list[StoredObject] = field(default_factory=list)
    published: int = 0
    replay_name: str = ""
    seconds: float = 0.0

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.objects)

    def as_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "bucket": self.bucket, "topic": self.topic, "prefix": self.selection.prefix,
            "dry_run": self.dry_run, "replay_name": self.replay_name,
            "counts": {"selected": len(self.objects), "bytes": self.total_bytes,
                       "published": self.published},
            "rate": self.rate, "seconds": round(self.seconds, 3)}
        if self.dry_run:
            payload["objects"] = [o.as_dict() for o in self.objects]
        return payload


def select(ctx: Context, selection: Selection) -> list[StoredObject]:
    """The current version of every matching object, oldest first (read-only)."""
    selection.check()
    found: list[StoredObject] = []
    for obj in _listing(ctx, selection.prefix):
        if selection.wants(obj.key, obj.modified_ms):
            found.append(obj)
            if selection.limit is not None and len(found) >= selection.limit:
                break
    return sorted(found, key=lambda o: (o.modified_ms, o.key))


def _listing(ctx: Context, prefix: str) -> Iterator[StoredObject]:
    """ListObjectsV2, or ListObjectVersions on a versioned bucket (the event names the
    version, as S3's would); a key whose latest version is a delete marker is gone."""
    s3, bucket = ctx.client("s3"), ctx.names.bucket
    if not ctx.config.bucket_versioning:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield _stored(item, None)
        return
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                  Prefix=prefix):
        for item in page.get("Versions", []):
            if item.get("IsLatest"):
                version = item.get("VersionId")
                yield _stored(item, None if version in (None, "null") else str(version))


def _stored(item: dict[str, Any], version: str | None) -> StoredObject:
    modified = item["LastModified"]
    return StoredObject(str(item["Key"]), int(item.get("Size", 0)),
                        str(item.get("ETag", "")).strip('"'),
                        int(modified.timestamp() * 1000), version)


def event(ctx: Context, obj: StoredObject, replay_name: str, moment: float) -> dict[str, Any]:
    """The rule's "Object Created" event for this object, with a fresh id and the replay's
    name (S3 User Guide, "EventBridge event message structure")."""
    bucket = ctx.names.bucket
    detail_object: dict[str, Any] = {"key": obj.key, "size": obj.size, "etag": obj.etag}
    if obj.version_id:
        detail_object["version-id"] = obj.version_id
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created",
            "source": "aws.s3", "account": ctx.account, "time": _iso(moment),
            "region": ctx.region, "resources": [ctx.arn("s3", bucket, region=False,
                                                        account=False)],
            "replay-name": replay_name,
            "detail": {"version": "0", "bucket": {"name": bucket}, "object": detail_object,
                       "request-id": replay_name, "requester": ctx.account,
                       "reason": "PutObject"}}


class Pacer:
    """At most `rate` calls per second, evenly spaced (no bursts), on an injected clock."""

    def __init__(self, rate: float, clock: Clock, sleep: Sleep) -> None:
        self.interval = 1.0 / rate
        self.clock, self.sleep = clock, sleep
        self.next_at: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self.next_at is not None and now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


def replay(ctx: Context, objects: list[StoredObject], selection: Selection, *,
           rate: float = DEFAULT_RATE, dry_run: bool = False,
           on_tick: Callable[[Tick], None] | None = None, clock: Clock = time.monotonic,
           sleep: Sleep = time.sleep) -> ReplayResult:
    """Publish each object's event to the ingest topic at `rate` per second."""
    targets = Targets(ctx)
    name = f"pipelinectl-replay-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-" \
        f"{uuid.uuid4().hex[:8]}"
    result = ReplayResult(ctx.names.bucket, targets.ingest_topic_arn, selection, dry_run,
                          rate, objects, replay_name="" if dry_run else name)
    if dry_run or not objects:
        return result
    sns, pacer, started = ctx.client("sns"), Pacer(rate, clock, sleep), clock()
    total_bytes, done_bytes = result.total_bytes, 0
    for obj in objects:
        pacer.wait()
        try:
            sns.publish(TopicArn=result.topic,
                        Message=json.dumps(event(ctx, obj, name, time.time())))
        except Exception as exc:
            raise PipelineError(
                f"Replay stopped after {result.published} of {len(objects)} object(s) at "
                f"{obj.key}: {exc}. Re-running is safe (the processor stores each row "
                "once).") from exc
        result.published += 1
        done_bytes += obj.size
        result.seconds = clock() - started
        if on_tick is not None:
            on_tick(Tick(result.published, len(objects), done_bytes, total_bytes,
                         result.seconds))
    return result


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
