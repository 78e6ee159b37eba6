"""moto's SQS, patched where the pipeline meets a difference from AWS (see motocompat.py for
the bookkeeping and the rule: one measured defect per patch, each with its two tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: The backend methods that read or change a queue's messages. Each takes the queue's name
#: first; send_message_batch and the *_batch methods call the single ones (the lock is
#: re-entrant).
QUEUE_MESSAGE_OPERATIONS = (
    "send_message", "send_message_batch", "receive_message", "delete_message",
    "delete_message_batch", "change_message_visibility", "change_message_visibility_batch",
    "purge_queue",
)


def patches(patch: Callable[..., Any]) -> list[Any]:
    """The SQS patches, built with motocompat's ``_Patch`` (passed in: no import cycle)."""
    from moto.sqs import models as sqs_models
    from moto.sqs.models import Queue, SQSBackend

    return [
        patch(Queue, "_set_attributes", _set_attributes_keeping_policy),
        patch(sqs_models, "unix_time", _fast_clock(1.0)),
        patch(sqs_models, "unix_time_millis", _fast_clock(1000.0)),
        *(patch(SQSBackend, name, _one_request_per_queue_at_a_time)
          for name in QUEUE_MESSAGE_OPERATIONS),
    ]


# --------------------------------------------------------------------------------------------
# e. SetQueueAttributes without Policy wipes the queue policy


def _set_attributes_keeping_policy(original: Callable[..., None]) -> Callable[..., None]:
    """moto's Queue._set_attributes ends with ``self.policy = attributes.get("Policy")``, so
    changing any other attribute (say the redrive policy) silently deletes the queue policy.
    AWS changes only the attributes named in the call; so do we."""

    def _set_attributes(self: Any, attributes: dict[str, Any], now: float | None = None) -> None:
        kept = getattr(self, "policy", None)
        original(self, attributes, now)
        if "Policy" not in attributes:
            self.policy = kept

    return _set_attributes


# --------------------------------------------------------------------------------------------
# g. SQS reads a slow clock once per queued message on every send and receive


def _fast_clock(scale: float) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """moto's SQS computes every queue attribute on each SendMessage (to read one of them), and
    checks each message's visibility on each ReceiveMessage, reading the clock through
    ``unix_time()``, which builds and subtracts datetimes (~20 µs). Per call that is O(queue
    depth) clock reads: 1,000 messages sent in batches took 42 s and draining them 139 s.
    Same values from ``time.time()``: 2 s and 6 s. Timestamps passed in are still converted
    by moto's own function.
    """

    def build(original: Callable[..., float]) -> Callable[..., float]:
        def clock(dt: Any = None) -> float:
            return time.time() * scale if dt is None else original(dt)

        return clock

    return build


# --------------------------------------------------------------------------------------------
# i. Concurrent requests on one queue lose messages and fail with HTTP 500


def _one_request_per_queue_at_a_time(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto's threaded server runs requests on one queue at the same time with no lock around
    its message list. Measured under Lambda's concurrent pollers (bench/bench_chaos.py):
    ReceiveMessage iterating the in-flight set while another receive adds to it fails with
    "Set changed size during iteration", two receives that both find a message past
    ``maxReceiveCount`` both move it to the dead-letter queue, and the second fails with
    "list.remove(x): x not in list" (HTTP 500, retried by botocore; 13 and 47 of them in the
    first minutes of a 10,000-transaction run, and the DLQ holds the message twice); DeleteMessage
    rebuilds the list from a snapshot and assigns it back, so a message sent in between is
    dropped after SendMessage answered. AWS stores a message redundantly before acknowledging
    SendMessage ("Amazon SQS standard queues", SQS Developer Guide) and serves a nearly
    unlimited number of concurrent API calls. Here each request on a queue holds that queue's
    own condition lock (moto's ``_messages_lock``, an RLock); a long poll waits on the same
    condition, which releases the lock while it waits, so other requests go on meanwhile."""

    def operation(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        with queue._messages_lock:
            return original(self, queue_name, *args, **kwargs)

    return operation
