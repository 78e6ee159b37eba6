"""The operate commands through click: exit codes, confirmations, JSON, and a fast --help."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from pipelinectl.cli import main
from pipelinectl.render import _log_text
from pipelinectl.resources.base import Context


def _run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


@pytest.mark.parametrize("amount", ["-5", "0", "abc", "NaN"])
def test_send_test_refuses_a_bad_amount_as_a_usage_error(amount: str) -> None:
    result = _run("send-test", "--amount", amount)
    assert result.exit_code == 2
    assert "--amount" in result.output


def test_dlq_purge_refuses_without_yes_in_a_non_interactive_shell(ctx: Context) -> None:
    result = _run("dlq", "purge")
    assert result.exit_code == 2
    assert "pass --yes to confirm in a non-interactive shell" in result.output


def test_dlq_list_json_has_stable_keys(ctx: Context) -> None:
    sqs = ctx.client("sqs")
    url = sqs.get_queue_url(QueueName=ctx.names.dlq)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="bad", MessageAttributes={
        "ErrorReason": {"DataType": "String", "StringValue": "not valid JSON"}})
    result = _run("--output", "json", "dlq", "list")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["queue"], data["count"]) == (ctx.names.dlq, 1)
    assert sorted(data["messages"][0]) == ["attributes", "body", "code", "eventbridge",
                                           "message_id", "origin", "reason", "receive_count",
                                           "sent_at", "source_message_id"]
    assert data["messages"][0]["origin"] == "processor"
    assert data["messages"][0]["reason"] == "not valid JSON"


def test_dlq_redrive_and_purge_with_yes(ctx: Context) -> None:
    sqs = ctx.client("sqs")
    url = sqs.get_queue_url(QueueName=ctx.names.dlq)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    result = _run("dlq", "redrive")
    assert result.exit_code == 0, result.output
    assert "Moved 1 message(s)" in result.output
    sqs.send_message(QueueUrl=url, MessageBody="m2")
    result = _run("dlq", "purge", "--yes")
    assert result.exit_code == 0 and "Purged" in result.output


def test_send_test_failure_exits_1_with_one_sentence(ctx: Context) -> None:
    result = _run("--output", "json", "send-test", "--amount", "5", "--timeout", "1",
                  "--via", "sqs")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    error = [line for line in lines if line.startswith("Error: ")]
    assert len(error) == 1 and "Nothing arrived for transaction" in error[0]


def test_logs_json_and_missing_group(ctx: Context) -> None:
    result = _run("logs")
    assert result.exit_code == 1
    assert "does not exist: run `pipelinectl up`" in result.output
    ctx.client("logs").create_log_group(logGroupName=ctx.names.log_group)
    result = _run("--output", "json", "logs", "--since", "1h")
    assert result.exit_code == 0
    assert json.loads(result.output) == {"log_group": ctx.names.log_group, "events": []}


def test_logs_bad_since_is_a_usage_error() -> None:
    result = _run("logs", "--since", "yesterday")
    assert result.exit_code == 2


def test_log_lines_are_readable() -> None:
    text, style = _log_text('{"level":"INFO","message":"batch processed","timestamp":"t",'
                            '"service":"s","records":3,"failures":0}')
    assert (text, style) == ("INFO batch processed records=3 failures=0", "")
    text, style = _log_text('{"level":"ERROR","message":"boom"}')
    assert style == "red"
    emf = ('{"_aws":{"CloudWatchMetrics":[{"Metrics":[{"Name":"TransactionsStored"},'
           '{"Name":"AlertsSent"}]}]},"TransactionsStored":[3.0],"AlertsSent":[0.0]}')
    assert _log_text(emf) == ("metrics: TransactionsStored=3", "dim")
    assert _log_text("START RequestId: 1")[0] == "START RequestId: 1"
    assert _log_text("2024 id Task timed out after 3.00 seconds")[1] == "red"


def _subprocess(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60, check=False)


def test_help_does_not_import_boto3_rich_or_moto() -> None:
    """The one --help import test: top-level, a provisioning and three operate commands."""
    code = ("import sys\nfrom pipelinectl.cli import main\n"
            "for args in (['--help'], ['up', '--help'], ['send-test', '--help'], "
            "['dlq', '--help'], ['trace', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('boto3', 'botocore', 'rich', 'moto') if m in sys.modules))")
    result = _subprocess("-c", code)
    assert result.stdout.count("Usage:") == 5, result.stderr
    assert "teardown" in result.stdout and "redrive" in result.stdout
    assert "ID|s3://BUCKET/incoming/KEY" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr


def test_local_refuses_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _subprocess("-m", "pipelinectl", "local", "--port", str(port), "--quiet")
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stdout + result.stderr


def test_local_port_from_the_environment_must_be_a_number() -> None:
    result = _subprocess(
        "-m", "pipelinectl", "local", PIPELINECTL_LOCAL_PORT="http")
    assert result.returncode == 2
    assert "PIPELINECTL_LOCAL_PORT='http' is not a port number" in result.stderr


def test_local_refuses_a_non_loopback_host_without_allow_remote() -> None:
    result = CliRunner().invoke(main, ["local", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("via", ["sqs", "sns", "s3"])
def test_send_test_no_wait_publishes_and_returns_at_once(ctx: Context, via: str) -> None:
    result = _run("--output", "json", "send-test", "--amount", "1500", "--id", f"nw-{via}",
                  "--via", via, "--no-wait")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["transaction_id"], data["via"], data["waited"]) == (f"nw-{via}", via, False)
    if via == "s3":
        keys = ctx.client("s3").list_objects_v2(Bucket=ctx.names.bucket,
                                                Prefix="incoming/send-test/")["Contents"]
        assert len(keys) == 1
    elif via == "sns":  # published (the fixture has no subscription to follow it further)
        assert data["reference"]
    else:  # on the queue, untouched: nothing processes it in-process
        sqs = ctx.client("sqs")
        url = sqs.get_queue_url(QueueName=ctx.names.queue)["QueueUrl"]
        [message] = sqs.receive_message(QueueUrl=url).get("Messages", [])
        assert "nw-" + via in message["Body"]


def test_the_operate_commands_do_not_import_the_cli_module() -> None:
    """One typed object on the click context (cli_state), no cli.py <-> cli_operate.py cycle."""
    import ast
    import inspect

    from pipelinectl import cli_operate

    tree = ast.parse(inspect.getsource(cli_operate))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert "pipelinectl.cli_state" in imported
    assert "pipelinectl.cli" not in imported


@pytest.mark.parametrize("value", ["http", "70000", "0"])
def test_a_bad_local_port_in_the_environment_is_a_usage_error_for_local(
        value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINECTL_LOCAL_PORT", value)
    result = _run("--local", "status")
    assert result.exit_code == 2, result.output
    assert f"PIPELINECTL_LOCAL_PORT={value!r} is not a port number (1-65535)" in result.output


def test_the_demo_points_its_commands_at_its_own_port_without_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelinectl.operate.demo import Demo

    monkeypatch.setenv("PIPELINECTL_LOCAL_PORT", "4566")  # the user's own `pipelinectl local`
    with Demo({}) as run:
        endpoint = run.start()
        assert os.environ["PIPELINECTL_LOCAL_PORT"] == "4566"
        assert run.context().factory.endpoint_url == endpoint
        assert not endpoint.endswith(":4566")
    assert os.environ["PIPELINECTL_LOCAL_PORT"] == "4566"


def test_version_answers_as_click_would_without_importing_click() -> None:
    code = ("import sys\nsys.argv = ['pipelinectl', '--version']\n"
            "from pipelinectl.__main__ import run\nrun()\n"
            "print(sorted(m for m in ('click', 'boto3', 'rich') if m in sys.modules))")
    result = _subprocess("-c", code)
    first, imported = result.stdout.strip().splitlines()
    assert first == _run("--version").output.strip() == "pipelinectl, version 0.1.0"
    assert imported == "[]", result.stderr
