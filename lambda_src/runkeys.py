"""Where a file's run record lives in the transactions table: the keys, and nothing else.

Dependency-free on purpose: the processor (lambda_src/fileruns.py) writes these items and the
CLI (pipelinectl/operate/fileruns.py) reads them, and the CLI must not pull Powertools or
botocore in just to know a key. A transaction id is printable, so no transaction can take a
key that starts with the unit separator (U+001F).
"""

from __future__ import annotations

RUN_KEY_PREFIX = "\x1ffile-run\x1f"
#: The most recent run to finish or fail, for `status`.
LATEST_KEY = "\x1ffile-run\x1flatest"
#: The counts each slice records and the completion sums.
COUNTS = ("rows", "stored", "unchanged", "rejected")


def run_key(bucket: str, key: str) -> str:
    """The run record's key for ``s3://bucket/key``."""
    return f"{RUN_KEY_PREFIX}s3://{bucket}/{key}"


def is_run_record(transaction_id: str) -> bool:
    """Whether a table item is a file's run bookkeeping (or the latest pointer), not a
    transaction."""
    return transaction_id.startswith(RUN_KEY_PREFIX)
