"""Scenarios written once and run against more than one AWS: in-process moto with AWS's
answers injected (tests/provisioning), and the real CLI against `pipelinectl local` emulating
AWS's eventual consistency (tests/operate). `run(*args)` runs the CLI and returns (exit code,
what it printed)."""

from __future__ import annotations

import json
from collections.abc import Callable

Run = Callable[..., tuple[int, str]]


def teardown_then_up_converges(run: Run) -> tuple[str, str]:
    """`teardown --yes` then `up` at once (issue 11): teardown returns once what it deleted is
    gone, `up` waits out SQS's refusal of the deleted queue names (and says so), and the
    pipeline it leaves is exactly what `up` wants. Returns (teardown output, up output)."""
    code, teardown = run("teardown", "--yes")
    assert code == 0, teardown
    assert "waiting until it is gone" in teardown  # the table, the mapping: AWS still deleting
    code, up = run("up")
    assert code == 0, up
    assert "deleted less than 60s ago" in up  # SQS refused the name; up retried and said so
    code, plan = run("--output", "json", "plan")
    assert code == 0, plan
    summary = json.loads(plan)["summary"]
    assert list(summary) == ["unchanged"], summary
    return teardown, up
