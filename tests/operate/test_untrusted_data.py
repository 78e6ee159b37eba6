"""Data from the pipeline (ids, reasons, bodies, log lines) is untrusted: it must neither crash
the operate commands nor reach the terminal raw, and send-test must find it in the DLQ
whatever characters the id holds (issue 8, Harmful 7 and two Unhelpful items)."""

from __future__ import annotations

import io
import json
import time

import pytest
from click.testing import CliRunner
from rich.console import Console

from pipelinectl.cli import main
from pipelinectl.operate import dlq
from pipelinectl.operate.logs import LogEvent
from pipelinectl.operate.targets import Targets
from pipelinectl.render import Renderer
from pipelinectl.resources.base import Context

from .conftest import FakeTime
from .test_sendtest import _send, _txn

NESTED = "[" * 100_000 + "]" * 100_000
ESCAPES = "t-1\x1b]0;pwned\x07\x1b[2J\u202e"


def _to_dlq(targets: Targets, body: str, reason: str = "invalid_json") -> None:
    targets.client("sqs").send_message(
        QueueUrl=targets.dlq_url(), MessageBody=body,
        MessageAttributes={"ErrorReason": {"DataType": "String", "StringValue": reason}})


def test_dlq_list_shows_a_deeply_nested_body(ctx: Context, targets: Targets) -> None:
    _to_dlq(targets, NESTED, "JSON is nested too deeply")
    result = CliRunner().invoke(main, ["dlq", "list"])
    assert result.exit_code == 0, result.output
    assert "JSON is nested too deeply" in result.output and "[[[[" in result.output


def test_logs_show_a_deeply_nested_json_line() -> None:
    console = Console(file=io.StringIO(), width=120)
    nested = '{"a":' * 100_000 + "1" + "}" * 100_000
    Renderer(console=console).log_event(LogEvent(0, "stream", nested, "e1"))
    assert '{"a":{"a":' in console.file.getvalue()  # type: ignore[attr-defined]


def _table_output(letters: list[dlq.DeadLetter]) -> str:
    console = Console(file=io.StringIO(), width=200, force_terminal=True)
    Renderer(console=console).dead_letters(letters, "dlq")
    return str(console.file.getvalue())  # type: ignore[attr-defined]


def test_terminal_escapes_in_dlq_data_are_shown_escaped(ctx: Context,
                                                        targets: Targets) -> None:
    _to_dlq(targets, json.dumps({"transaction_id": 1}) + ESCAPES, reason="bad " + ESCAPES)
    out = _table_output(dlq.peek(ctx))
    data = out.replace("\x1b[", "")  # rich's own styling is CSI; none of ours survives
    assert "\x1b" not in data and "\x07" not in data and "\u202e" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\u202e" in out


def test_terminal_escapes_in_log_lines_are_shown_escaped() -> None:
    console = Console(file=io.StringIO(), width=200)
    renderer = Renderer(console=console)
    renderer.log_event(LogEvent(int(time.time() * 1000), "s",
                                '{"level":"WARNING","message":"message sent to the DLQ",'
                                '"error_reason":"' + ESCAPES.replace("\x1b", "\\u001b")
                                .replace("\x07", "\\u0007") + '"}', "e1"))
    renderer.log_event(LogEvent(0, "s", "Traceback (most recent call last):\n  File x\x1b[2J",
                                "e2"))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b" not in out and "\x07" not in out
    assert "error_reason=t-1\\x1b]0;pwned\\x07\\x1b[2J\\u202e" in out
    assert "last):\n  File x\\x1b[2J" in out  # a traceback keeps its lines


@pytest.mark.parametrize("txn_id", ['caf\u00e9-"1"', "tab\there", "back\\slash", "\u4e2d-1"])
@pytest.mark.parametrize("via", ["sns", "sqs"])
def test_send_test_finds_its_dlq_message_whatever_the_id_holds(
        ctx: Context, targets: Targets, fake_time: FakeTime, txn_id: str, via: str) -> None:
    txn = _txn("1500", txn_id)

    def dead_letter_it(sleeps: int) -> None:
        if sleeps == 4:  # the processor dead-letters the body it received, as it arrived
            body = txn.json(with_type=False)
            if via == "sns":
                body = json.dumps({"Type": "Notification", "TopicArn": "arn:x",
                                   "Message": body})
            _to_dlq(targets, body, "bad_transaction_id: contains control characters")

    fake_time.on_sleep.append(dead_letter_it)
    result = _send(ctx, fake_time, txn, via=via, timeout=60)  # type: ignore[arg-type]
    assert result.outcome == "in the DLQ", result.problem
    assert "contains control characters" in str(result.problem)


def test_id_encodings_cover_one_and_two_levels_of_json() -> None:
    forms = dlq.encodings('a"\u00e9')
    assert {'a"\u00e9', 'a\\"\\u00e9', 'a\\"\u00e9', 'a\\\\\\"\\\\u00e9'} <= forms
