"""How many batches an SQS event source mapping runs at once, as Lambda scales it.

Lambda Developer Guide, "Configuring scaling behavior for SQS event source mappings": "When
messages are available, Lambda starts processing five batches at a time with five concurrent
invocations of your function. If messages are still available, Lambda increases the number of
processes that are reading batches by up to 300 more instances per minute. The maximum number
of batches that an event source mapping can process simultaneously is 1,000. When traffic is
low, Lambda scales back the processing to five concurrent batches, and can optimize to as few
as 2 concurrent batches ... this optimization is not available when you enable the maximum
concurrency setting." ``ScalingConfig.MaximumConcurrency`` (2-1000) caps it. Event source
mappings do not account for the function's reserved concurrency (AWS Knowledge Center,
"lambda-sqs-scaling"): past it, invocations are throttled.

"Handling errors for an SQS event source in Lambda", backoff strategy: on throttling "Lambda
gradually backs off retries by reducing the amount of concurrency allocated to your Amazon SQS
event source mapping. Lambda continues to retry the message until the message's timestamp
exceeds your queue's visibility timeout, at which point Lambda drops the message" (it comes
back to the queue, and its receive count moves it to the DLQ in the end); on a function error
Lambda also backs off, except with ReportBatchItemFailures ("Lambda doesn't scale down message
polling when function invocations fail").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pipelinectl.localaws.pool import Throttled
from pipelinectl.localaws.runner import Invocation

START_BATCHES = 5
LOW_TRAFFIC_BATCHES = 2
AWS_MAX_BATCHES = 1000
RAMP_PER_SECOND = 300 / 60
#: Throttled retries: first wait, longest wait (seconds), and the margin kept before the
#: messages' visibility timeout ends (so a batch is never invoked on messages visible again).
THROTTLE_FIRST_WAIT, THROTTLE_MAX_WAIT, VISIBILITY_MARGIN = 0.1, 2.0, 1.0


class Scaler:
    """The target number of concurrent batches of one mapping (thread-safe)."""

    def __init__(self, maximum_concurrency: int | None, local_cap: int) -> None:
        self.limit = max(1, min(AWS_MAX_BATCHES, maximum_concurrency or AWS_MAX_BATCHES,
                                local_cap))
        low = START_BATCHES if maximum_concurrency else LOW_TRAFFIC_BATCHES
        self.floor = min(self.limit, low)
        self.start = min(self.limit, START_BATCHES)
        self.target = self.floor
        self._credit = 0.0
        self._since = time.monotonic()
        self._lock = threading.Lock()

    def received(self, count: int, full: int) -> None:
        """A poller received ``count`` messages (``full`` = a full receive): ramp while a
        backlog lasts, back to the low-traffic floor when the queue is empty."""
        with self._lock:
            now = time.monotonic()
            elapsed, self._since = now - self._since, now
            if count == 0:
                self.target = max(self.floor, self.target - 1)
                self._credit = 0.0
                return
            self.target = max(self.target, self.start)
            if count >= full and self.target < self.limit:
                self._credit = min(self._credit + elapsed * RAMP_PER_SECOND, self.limit)
                grow = int(self._credit)
                self.target = min(self.limit, self.target + grow)
                self._credit -= grow

    def throttled(self) -> None:
        with self._lock:
            self.target = max(1, self.target - 1)

    def errored(self) -> None:
        with self._lock:
            self.target = max(self.floor, self.target - 1)


def hold_throttled(invoke: Callable[[], Invocation], visible_at: float, scaler: Scaler,
                   stop: threading.Event) -> Invocation | None:
    """Invoke, retrying a throttled invocation with backoff until the batch's visibility
    timeout (monotonic ``visible_at``) is near; None if it never ran."""
    wait = THROTTLE_FIRST_WAIT
    while True:
        try:
            return invoke()
        except Throttled:
            scaler.throttled()
        if time.monotonic() + wait > visible_at - VISIBILITY_MARGIN or stop.wait(wait):
            return None
        wait = min(wait * 2, THROTTLE_MAX_WAIT)
