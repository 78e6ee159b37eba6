"""When the landing bucket's EventBridge notifications take effect.

AWS: "After you enable EventBridge, it takes around five minutes for the changes to take
effect" (Amazon S3 User Guide, "Enabling Amazon EventBridge",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-event-notifications-eventbridge.html).
A file put under incoming/ in that window may never produce an event, so `up` warns, and
`status`, `test` and `send-test --via s3` do not call the file path healthy until it ends.

When: `up` writes the tag pipelinectl:eventbridge-enabled-at (UTC, ISO 8601) on the bucket in
the same update, *before* it enables notifications. A crash between the two leaves them off,
so the next `up` enables them and stamps again; a crash after both leaves the stamp. A bucket
with notifications on and no stamp (enabled by hand or by an older pipelinectl) counts as
settled. How long: AWS's five minutes, unless the endpoint is a pipelinectl local AWS that
states its own delay (ClientFactory.endpoint_info; 0 today, it delivers at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipelinectl.config import EVENTBRIDGE_TAG_KEY
from pipelinectl.resources.base import Context, error_code, tag_dict

AWS_DELAY_SECONDS = 300.0
DELAY_KEY = "s3_eventbridge_delay_seconds"  # in the local AWS's info document
now: Callable[[], float] = time.time  # wall clock: the stamp is compared across machines


def stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str | None) -> float | None:
    try:
        return datetime.strptime(value or "", "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Window:
    """The time after enabling during which S3 may not yet send events for new objects."""

    bucket: str
    enabled_at: float
    delay: float

    @property
    def ends_at(self) -> float:
        return self.enabled_at + self.delay

    def is_open(self) -> bool:
        return now() < self.ends_at

    def when(self) -> str:
        left = max(0, round(self.ends_at - now()))
        return f"until {stamp(self.ends_at)}, {left // 60}m {left % 60:02d}s from now"

    def redrive(self) -> str:
        return (f"re-drive files that landed under incoming/ since {stamp(self.enabled_at)} "
                f"afterwards with `pipelinectl replay --since {stamp(self.enabled_at)}`")

    def warning(self) -> str:
        """For `up` and `status`."""
        return (f"EventBridge notifications of bucket {self.bucket} were enabled at "
                f"{stamp(self.enabled_at)} and S3 takes about {self.delay / 60:g} minutes to "
                f"start sending events ({self.when()}): files put under incoming/ before then "
                f"may never be processed; {self.redrive()}.")

    def refusal(self, what: str) -> str:
        """For `test` and `send-test --via s3`: why no file is dropped yet."""
        return (f"Not running {what}: S3 may not send events for bucket {self.bucket} yet, "
                f"since its EventBridge notifications take about {self.delay / 60:g} minutes "
                f"to take effect ({self.when()}); a file dropped now may never be processed, "
                f"so re-run then (or use `send-test --via sns` meanwhile), and {self.redrive()}.")


def window(ctx: Context, tags: dict[str, str] | None = None) -> Window | None:
    """The open window, from the bucket's tags (or what this run saw or wrote), or None."""
    value = (tags or {}).get(EVENTBRIDGE_TAG_KEY) if tags is not None else \
        ctx.learned.eventbridge_enabled_at
    enabled = _parse(value)
    if enabled is None or now() >= enabled + AWS_DELAY_SECONDS:
        return None  # settled even by AWS's delay: no need to ask the endpoint
    info = ctx.factory.endpoint_info() or {}
    delay = info.get(DELAY_KEY)
    found = Window(ctx.names.bucket, enabled, float(delay) if isinstance(
        delay, int | float) else AWS_DELAY_SECONDS)
    return found if found.is_open() else None


def current(ctx: Context) -> Window | None:
    """Reads the bucket's tags (one call); for commands that are about to drop a file."""
    s3 = ctx.client("s3")
    try:
        tags = tag_dict(s3.get_bucket_tagging(Bucket=ctx.names.bucket).get("TagSet"))
    except Exception as exc:
        if error_code(exc) in {"NoSuchTagSet", "NoSuchBucket", "404"}:
            return None
        raise
    return window(ctx, tags)
