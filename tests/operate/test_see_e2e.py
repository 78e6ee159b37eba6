"""`top` and `status --tree` as a user runs them: the real CLI against `pipelinectl local`.

One local AWS and one `up` serve the module (set up as test_e2e's story is). The tests run
in the order written: the tree of a fresh pipeline, then traffic and the figures `top`
reports for it, then how both look afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for

from .test_e2e import LocalPipeline, running_local

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("see-local")]
#: A function timeout far from what a loaded machine needs: an invocation killed by its
#: timeout sends no EMF metrics, and its retry finds the items stored (counted unchanged),
#: so the counts below would be short. (The visibility timeout is 6 x the function's.)
PIPELINE_TOML = """\
function_timeout = 30
visibility_timeout = 180
max_receive_count = 2
"""


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory,
          build_cache: Path) -> Iterator[LocalPipeline]:
    """test_e2e's story setup: `pipelinectl local`, then `up`, shared by this module."""
    with running_local(tmp_path_factory.mktemp("see"), build_cache,
                       PIPELINE_TOML) as pipeline:
        yield pipeline

#: The path a transaction takes, in drawing order (status --tree).
FLOW = [("S3 bucket", "ecommerce-landing-123456789012-us-east-1"),
        ("EventBridge rule", "ecommerce-object-created"),
        ("SNS topic", "ecommerce-ingest"),
        ("SNS subscription", "ecommerce-ingest -> ecommerce-transactions"),
        ("SQS queue", "ecommerce-transactions"),
        ("SQS dead-letter queue", "ecommerce-transactions-dlq"),
        ("event source mapping", "ecommerce-transactions -> ecommerce-processor"),
        ("Lambda function", "ecommerce-processor"),
        ("DynamoDB table", "ecommerce-transactions"),
        ("SNS topic", "ecommerce-alerts")]
#: Each alarm and the resource it must be drawn under.
WATCHES = {"ecommerce-rule-failed-invocations": "ecommerce-object-created",
           "ecommerce-queue-oldest-message": "ecommerce-transactions",
           "ecommerce-dlq-not-empty": "ecommerce-transactions-dlq",
           "ecommerce-processor-errors": "ecommerce-processor",
           "ecommerce-processor-throttles": "ecommerce-processor"}
VALID = {"top-1": 10, "top-2": 1500, "top-3": 99.5, "top-4": 2500, "top-5": 7}
INVALID = [{"transaction_id": "top-bad-1", "amount": -1, "timestamp": "2024-08-09T12:00:00Z"},
           {"amount": 5, "timestamp": "2024-08-09T12:00:00Z"}]
THRESHOLD = 1000
ESCAPE = "\x1b"


def run(pipeline: LocalPipeline, env: dict[str, str], *args: str) -> str:
    """The CLI with extra environment (NO_COLOR, TERM, FORCE_COLOR)."""
    result = subprocess.run([sys.executable, "-m", "pipelinectl", "--local", *args],
                            cwd=pipeline.cwd, env={**pipeline.env, **env}, capture_output=True,
                            text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def _line_of(lines: list[str], kind: str, name: str) -> int:
    found = [i for i, line in enumerate(lines) if f"{kind} {name}  " in line]
    assert len(found) == 1, (kind, name, lines)
    return found[0]


def _depth(line: str) -> int:
    return next(i for i, char in enumerate(line) if char not in " │├└─")


def _parent(lines: list[str], index: int) -> str:
    depth = _depth(lines[index])
    return next(line for line in reversed(lines[:index]) if _depth(line) < depth)


def test_status_tree_draws_the_flow_in_order_with_health(local: LocalPipeline) -> None:
    text = run(local, {"NO_COLOR": "1"}, "status", "--tree")
    assert ESCAPE not in text
    lines = text.splitlines()
    assert lines[0] == "Pipeline ecommerce (123456789012/us-east-1): 18 resources, all healthy"
    order = [_line_of(lines, kind, name) for kind, name in FLOW]
    assert order == sorted(order), text
    depth = [_depth(lines[i]) for i in order]
    step = depth[1] - depth[0]
    # bucket -> rule -> topic -> subscription -> queue: a chain; the DLQ and the mapping
    # hang off the queue, the function off the mapping, the table and alerts off it.
    assert depth == [depth[0] + step * n for n in (0, 1, 2, 3, 4, 5, 5, 6, 7, 7)], text
    assert all("  ok: " in lines[i] for i in order)
    assert "0 waiting, 0 in flight" in lines[order[4]]  # the key figure
    for alarm, watched in WATCHES.items():
        index = _line_of(lines, "CloudWatch alarm", alarm)
        assert f" {watched}  " in _parent(lines, index), (alarm, text)
        assert "  ok: OK" in lines[index]
    tree = local.json("status", "--tree")
    assert [n["kind"] for n in tree["tree"]] == ["S3 bucket", "KMS key"]
    assert tree["healthy"] is True


def _top(pipeline: LocalPipeline) -> dict[str, Any]:
    snapshot: dict[str, Any] = pipeline.json("top", "--once")
    return snapshot


def _totals(snapshot: dict[str, Any]) -> dict[str, float]:
    return {k: snapshot["metrics"][k]["total"]
            for k in ("stored", "rejected", "alerted", "dead_lettered", "invocations",
                      "errors")}


def test_top_once_json_counts_the_traffic_sent(local: LocalPipeline) -> None:
    before = _totals(_top(local))
    entries = [{"Id": f"v{i}", "MessageBody": json.dumps(
        {"transaction_id": tid, "amount": amount, "timestamp": "2024-08-09T12:00:00Z"})}
        for i, (tid, amount) in enumerate(VALID.items())]
    entries += [{"Id": f"x{i}", "MessageBody": json.dumps(body)}
                for i, body in enumerate(INVALID)]
    sqs = local.client("sqs")
    url = sqs.get_queue_url(QueueName="ecommerce-transactions")["QueueUrl"]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)  # 7 <= SQS's 10 per batch
    assert len(sent["Successful"]) == len(entries)
    over = sum(1 for amount in VALID.values() if amount > THRESHOLD)
    expected = {"stored": len(VALID), "rejected": len(INVALID), "alerted": over,
                "dead_lettered": len(INVALID)}

    def arrived() -> dict[str, Any] | None:
        snapshot = _top(local)
        totals = _totals(snapshot)
        done = all(totals[k] - before[k] >= n for k, n in expected.items()) and \
            snapshot["dlq"]["visible"] >= len(INVALID)
        return snapshot if done else None

    snapshot = wait_for(arrived, 120, "top to show the traffic", interval=1)
    totals = _totals(snapshot)
    assert {k: totals[k] - before[k] for k in expected} == expected
    assert totals["invocations"] > before["invocations"]
    assert totals["errors"] == before["errors"] == 0
    assert snapshot["dlq"] == {"name": "ecommerce-transactions-dlq",
                               "visible": len(INVALID), "in_flight": 0}
    stored = snapshot["metrics"]["stored"]
    assert len(stored["points"]) == 60 and sum(stored["points"]) == stored["total"]
    assert snapshot["metrics"]["duration_max"]["latest"] > 0
    assert snapshot["metrics"]["concurrency"]["peak"] >= 1
    assert {a["name"] for a in snapshot["alarms"]} == set(WATCHES)


def test_top_once_text_is_plain_without_colour_or_on_a_dumb_terminal(
        local: LocalPipeline) -> None:
    """FORCE_COLOR makes rich treat the pipe as a terminal, as a real one would be; rich
    draws a dumb terminal 80 columns wide."""
    coloured = run(local, {"FORCE_COLOR": "1"}, "top", "--once")
    assert ESCAPE in coloured  # the check below can fail
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        text = run(local, {"FORCE_COLOR": "1", **env}, "top", "--once")
        assert ESCAPE not in text, env
        lines = text.splitlines()
        stored = next(line for line in lines if line.strip().startswith("stored"))
        assert stored.split()[-1] == str(len(VALID)), env  # the hour's total, as in JSON
        assert "  DLQ ecommerce-transactions-dlq: 2 waiting, 0 in flight" in lines, env
        if "TERM" in env:
            assert max(len(line) for line in lines) <= 80


def test_status_tree_shows_the_dead_letters(local: LocalPipeline) -> None:
    lines = run(local, {"NO_COLOR": "1"}, "status", "--tree").splitlines()
    dlq = lines[_line_of(lines, "SQS dead-letter queue", "ecommerce-transactions-dlq")]
    assert f"WARN: {len(INVALID)} waiting, 0 in flight" in dlq
    assert "WARN" in lines[0] and "all healthy" not in lines[0]
