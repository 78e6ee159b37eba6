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


def slice_key(run_id: str, slice_id: str) -> str:
    """A slice's own item: who claimed it and, once it handed on, where its continuation
    starts. Beside the run record, not inside it: a record holding every slice grew by ~250
    bytes a slice, so each update cost O(slices) (on AWS, write units per KB of the whole
    item; a 1,000,000-row CSV spent seconds per update locally) and a file of a few thousand
    slices would pass DynamoDB's 400 KB item limit."""
    return f"{RUN_KEY_PREFIX}slice\x1f{run_id}\x1f{slice_id}"


def is_run_record(transaction_id: str) -> bool:
    """Whether a table item is a file's run bookkeeping (or the latest pointer), not a
    transaction."""
    return transaction_id.startswith(RUN_KEY_PREFIX)
