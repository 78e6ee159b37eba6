"""Operate commands: send-test, test, logs, top, trace, dlq, local, demo. Parse, call, render.

Same conventions as `cli.py`: each command takes the global options as a `CliState`
(cli_state.pass_state); the core lives in `pipelinectl.operate`. Heavy modules are imported
inside the commands so `pipelinectl --help` stays fast.
"""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast

import click

from pipelinectl.cli_state import CliState, confirm_or_refuse, local_port_option, pass_state
from pipelinectl.errors import PipelineError, UsageError

if TYPE_CHECKING:
    from pipelinectl.render import Renderer


def _amount(ctx: click.Context, param: click.Parameter, value: str) -> Decimal:
    """A positive decimal amount, kept exact (never a float)."""
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a number.") from None
    if not amount.is_finite() or amount <= 0:
        raise click.BadParameter(f"{value!r} must be a number greater than 0.")
    return amount


def _transaction_type(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """SNS and SQS refuse an empty message attribute value (SNS API Reference,
    MessageAttributeValue: "Name, type, and value must not be empty or null")."""
    if not value.strip():
        raise click.BadParameter("must not be empty: it becomes the TransactionType message "
                                 "attribute, and SNS and SQS refuse an empty value.")
    return value


# -- send-test ----------------------------------------------------------------------------


@click.command("send-test")
@click.option("--amount", callback=_amount, default="1500", show_default=True,
              help="Transaction amount; over the alert threshold it must raise an alert.")
@click.option("--id", "transaction_id", help="Transaction id (default: a fresh send-test-…).")
@click.option("--via", type=click.Choice(["sns", "sqs", "s3"]), default="sns",
              show_default=True, help="Ingest topic, the queue directly, or a file drop.")
@click.option("--no-wait", is_flag=True, help="Publish and return without waiting.")
@click.option("--timeout", type=click.FloatRange(min=1), default=60, show_default=True,
              help="Seconds to wait until stored (and alerted).")
@click.option("--type", "txn_type", default="Purchase", show_default=True,
              callback=_transaction_type,
              help="Transaction type (the TransactionType message attribute).")
@pass_state
def send_test(state: CliState, amount: Decimal, transaction_id: str | None, via: str,
              no_wait: bool, timeout: float, txn_type: str) -> None:
    """Publish one transaction and wait until it is stored (and alerted over the threshold).

    Prints the path it took and the end-to-end latency; on the deadline, exits 1 saying what
    it did see (stored but no alert, in the DLQ with the reason, or nothing at all).
    """
    from pipelinectl.operate import sendtest

    pipeline = state.context()
    txn = sendtest.TestTransaction.new(amount, transaction_id, txn_type)
    result = sendtest.send_test(pipeline, txn, cast("sendtest.Via", via), wait=not no_wait,
                                timeout=timeout)
    state.renderer().send_test(result)
    if result.problem:
        raise PipelineError(result.problem)


# -- test ---------------------------------------------------------------------------------


@click.command("test")
@click.option("--timeout", type=click.FloatRange(min=1), default=60, show_default=True,
              help="Seconds to wait for every expectation.")
@pass_state
def smoke_test(state: CliState, timeout: float) -> None:
    """End-to-end smoke test: a sample file through S3 and a message through SNS.

    The CSV has valid, invalid and over-threshold rows; prints a pass/fail table of
    expectations and exits 1 if any fails.
    """
    from pipelinectl.operate import smoke

    pipeline = state.context()
    out = state.renderer()
    out.note(f"Dropping a sample CSV under s3://{pipeline.names.bucket}/incoming/"
             f"{smoke.SMOKE_PREFIX} and publishing to {pipeline.names.ingest_topic}...")
    result = smoke.run(pipeline, timeout)
    out.checks(result)
    failed = [c.name for c in result.checks if not c.ok]
    if failed:
        raise PipelineError(f"{len(failed)} expectation(s) failed ({', '.join(failed)}); "
                            "see `pipelinectl logs` and `pipelinectl dlq list`.")


# -- logs ---------------------------------------------------------------------------------


@click.command("logs")
@click.option("--follow", "-f", is_flag=True, help="Keep polling for new events (Ctrl-C stops).")
@click.option("--since", default="10m", show_default=True,
              help="How far back: 30s, 10m, 2h, 1d, or an ISO 8601 time.")
@click.option("--filter", "text", help="Only events containing this text (or a CloudWatch "
              "filter pattern such as '{ $.level = \"ERROR\" }').")
@pass_state
def logs(state: CliState, follow: bool, since: str, text: str | None) -> None:
    """The processor's log events (every stream, oldest first)."""
    from pipelinectl.operate import logs as core

    start_ms = core.parse_since(since)
    pattern = core.filter_pattern(text)
    pipeline = state.context()
    out = state.renderer()
    if not follow:
        events = core.fetch(pipeline, start_ms, pattern)
        if out.json:
            out.emit_json({"log_group": pipeline.names.log_group,
                           "events": [e.as_dict() for e in events]})
            return
        for event in events:
            out.log_event(event)
        if not events:
            out.note(f"No events in {pipeline.names.log_group} since {since} "
                     f"{'matching ' + repr(text) if text else ''}(try --since 1h).")
        return
    out.note(f"Following {pipeline.names.log_group} (Ctrl-C stops)...")
    try:
        for event in core.follow(pipeline, start_ms, pattern):
            out.log_event(event)
    except KeyboardInterrupt:
        return


# -- top ----------------------------------------------------------------------------------


@click.command("top")
@click.option("--interval", type=click.FloatRange(min=1), default=5, show_default=True,
              help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one snapshot and exit (scripts, tests).")
@pass_state
def top(state: CliState, interval: float, once: bool) -> None:
    """A live view: transactions stored / rejected / alerted per minute over the last hour,
    queue depth and age, DLQ, Lambda invocations, errors, throttles, duration, concurrency,
    alarm states. Ctrl-C quits. One GetMetricData call per refresh."""
    from pipelinectl import render_top
    from pipelinectl.operate.top import Top

    collector = Top(state.context())
    out = state.renderer()
    if once and out.json:
        out.emit_json(collector.snapshot().as_dict())
        return
    console = render_top.console()
    if once:
        render_top.show_once(console, collector.snapshot())
        return
    try:
        render_top.run(console, collector.snapshot, interval, as_json=out.json)
    except KeyboardInterrupt:
        return  # Ctrl-C is how `top` ends: exit 0, no traceback


# -- trace --------------------------------------------------------------------------------


@click.command("trace")
@click.argument("target", metavar="ID|s3://BUCKET/incoming/KEY")
@click.option("--since", help="Search from this time (30m, 2d, ISO 8601); default: 15 min "
              "before the item was stored, or 24h back when nothing is stored.")
@pass_state
def trace(state: CliState, target: str, since: str | None) -> None:
    """One transaction's (or one file's) path end to end, as a timeline.

    How it entered, the Lambda invocations that handled it, the stored item and its alert,
    or its DLQ entry / rejects line, with the time between steps; missing pieces are named.
    """
    from pipelinectl import render_trace
    from pipelinectl.operate import logs as logs_core
    from pipelinectl.operate import trace as core

    if not target.strip():
        raise UsageError("Give a transaction id or s3://BUCKET/incoming/KEY.")
    since_ms = logs_core.parse_since(since) if since else None
    found = core.collect(state.context(), target, since_ms)
    render_trace.trace(state.renderer(), found)
    if not found.found:
        raise PipelineError(f"Nothing found for {target!r} in the window searched; try "
                            "--since 7d, or check the id (`pipelinectl logs`).")


# -- dlq ----------------------------------------------------------------------------------


@click.group("dlq")
def dlq() -> None:
    """The dead-letter queue: list, redrive, purge."""


@dlq.command("list")
@click.option("--max", "limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="At most this many messages.")
@pass_state
def dlq_list(state: CliState, limit: int) -> None:
    """Messages in the DLQ with the reason the processor attached (nothing is consumed)."""
    from pipelinectl.operate import dlq as core

    pipeline = state.context()
    state.renderer().dead_letters(core.peek(pipeline, limit), pipeline.names.dlq)


@dlq.command("redrive")
@click.option("--max", "limit", type=click.IntRange(min=1),
              help="Move at most this many (default: every message).")
@pass_state
def dlq_redrive(state: CliState, limit: int | None) -> None:
    """Move DLQ messages back to the queue for another try."""
    from pipelinectl.operate import dlq as core

    pipeline = state.context()
    result = core.redrive(pipeline, limit=limit)
    state.renderer().redrive(result)
    if result.failed:
        raise PipelineError(f"{result.failed} message(s) could not be moved; re-run "
                            "`pipelinectl dlq redrive`.")


@dlq.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def dlq_purge(state: CliState, yes: bool) -> None:
    """Delete every message in the DLQ (asks first unless --yes)."""
    from pipelinectl.operate import dlq as core

    pipeline = state.context()
    where = f"{pipeline.names.dlq} in {pipeline.account}/{pipeline.region}"
    confirm_or_refuse(yes, f"Delete every message in {where}?",
                       "dlq purge deletes messages")
    count = core.purge(pipeline)
    out = state.renderer()
    if out.json:
        out.emit_json({"queue": pipeline.names.dlq, "purged": count})
    else:
        out.note(f"Purged {where} ({count} message(s); SQS may take up to 60 seconds).")


# -- local --------------------------------------------------------------------------------


@click.command("local")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@local_port_option("--port", allow_any=True, help="Port (0: any free one).")
@click.option("--quiet", is_flag=True, help="No live view of what flows; warnings only.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host (anyone who can reach it can run code).")
@click.option("--consistency", type=click.Choice(["aws", "fast", "off"]), default="aws",
              show_default=True,
              help="Emulate AWS's eventual consistency (deleted names refused, Pending "
                   "functions, S3's EventBridge delay ...) with AWS's durations, shortened "
                   "ones (fast), or not at all (off).")
@click.option("--max-concurrency", type=click.IntRange(1, 1000),
              help="Invocations running at once on this machine (default 4 per CPU).")
@click.option("--faults", "faults", default="", metavar="SPEC",
              help="Make operations fail, e.g. 'dynamodb:BatchWriteItem=throttle@5%; "
                   "invoke:*=timeout@1%' (README: fault injection).")
@click.option("--faults-seed", type=int, help="Seed the fault rates (a reproducible run).")
@click.option("--no-enforce", is_flag=True,
              help="Do not evaluate topic, queue, key and role policies (on by default).")
@click.pass_context
def local(ctx: click.Context, host: str, port: int, quiet: bool,
          allow_remote: bool, consistency: str, max_concurrency: int | None, faults: str,
          faults_seed: int | None, no_enforce: bool) -> None:
    """Run the embedded local AWS in the foreground (Ctrl-C stops).

    Then use `pipelinectl --local ...` in another terminal: up, send-test, status, logs.
    """
    from pipelinectl.localaws.faults import FaultSpecError, parse_spec

    try:
        parse_spec(faults)
    except FaultSpecError as exc:
        raise UsageError(f"--faults: {exc}.") from exc
    if not allow_remote and host not in ("127.0.0.1", "localhost", "::1"):
        raise UsageError(
            f"--host {host} would let anyone who can reach it deploy and run code with any "
            "credentials; keep the default 127.0.0.1, or pass --allow-remote if you mean it."
        )
    try:
        from pipelinectl.localaws import run_local
    except ImportError as exc:
        raise PipelineError("The embedded local AWS needs its extra: pip install "
                            "'pipelinectl[local]'.") from exc
    ctx.exit(run_local(host, port, quiet, consistency,
                       max_concurrency=max_concurrency, faults=faults, faults_seed=faults_seed,
                       enforce=not no_enforce))


# -- demo ---------------------------------------------------------------------------------


@click.command("demo")
@click.option("--quiet", is_flag=True, help="Narrate the steps only, not what flows.")
@pass_state
def demo(state: CliState, quiet: bool) -> None:
    """One shot, offline: embedded AWS, up, a file drop, send-test, status, teardown."""
    from pipelinectl.operate.demo import Demo
    from pipelinectl.render import Renderer

    out = state.renderer()
    # With --output json the narration and tables go to stderr, one summary to stdout.
    view = Renderer("table", console=out.err) if out.json else out
    narrator = _Narrator(view)
    with Demo(state.flags) as run:
        results = _demo_steps(run, view, narrator, quiet or out.json)
    total = time.monotonic() - narrator.began
    failures = [s["step"] for s in narrator.steps if not s["ok"]]
    if out.json:
        out.emit_json({"ok": not failures, "seconds": round(total, 3),
                       "steps": narrator.steps, **results})
    if failures:
        raise PipelineError(f"The demo finished in {total:.1f}s with failures in "
                            f"{', '.join(failures)}; re-run with -v for details.")
    view.note(f"\n[bold green]Demo complete in {total:.1f}s.[/] Next: `pipelinectl local` in "
              "one terminal, `pipelinectl --local up` in another.")


def _demo_steps(run: Any, out: Renderer, step: _Narrator, quiet: bool) -> dict[str, Any]:
    """Run and narrate each step; teardown runs even when an earlier step failed."""
    results: dict[str, Any] = {}
    step("start", "Starting the embedded AWS (moto + event source mappings, logs, metrics, "
         "alarms)")
    live = None if quiet else _attach_live_view(out)
    results["endpoint"] = run.start()
    step.done(True, f"listening on {results['endpoint']}")
    try:
        step("up", "up: every resource, independent steps concurrently")
        with out.progress("applying") as on_progress:
            changes = run.up(on_progress)
        step.done(True, f"{len(changes)} resources created")
        step("file drop", "File drop: a CSV with valid, invalid and over-threshold rows under "
             "incoming/, plus a message through SNS")
        dropped = run.drop_file()
        out.checks(dropped, "File drop")
        results["file_drop"] = dropped.as_dict()
        step.done(dropped.ok, "every expectation met" if dropped.ok else "expectations failed")
        step("send-test", "send-test --amount 1500: through SNS until stored (and alerted over "
             "the threshold)")
        sent = run.send_test()
        out.send_test(sent)
        results["send_test"] = sent.as_dict()
        step.done(sent.ok, sent.outcome if sent.ok else str(sent.problem))
        step("status", "status: every resource with its ARN and health")
        pipeline = run.context()
        out.status(run.status(), {"pipeline": pipeline.config.name,
                                  "account": pipeline.account, "region": pipeline.region})
        step.done(True, "shown")
    except PipelineError as error:
        step.done(False, str(error))
    finally:
        step("teardown", "teardown: everything the pipeline created, in reverse order")
        with out.progress("deleting") as on_progress:
            gone = run.teardown(on_progress)
        step.done(True, f"{sum(c.action == 'delete' for c in gone)} resources deleted")
        if live is not None:
            _detach_live_view(live)
    return results


class _Narrator:
    """Numbered step headings; records each step's outcome and duration."""

    def __init__(self, out: Renderer) -> None:
        self.out = out
        self.began = time.monotonic()
        self.started = self.began
        self.steps: list[dict[str, Any]] = []

    def __call__(self, name: str, title: str) -> None:
        self.started = time.monotonic()
        self.steps.append({"step": name, "ok": False, "seconds": 0.0})
        self.out.note(f"\n[bold cyan]Step {len(self.steps)}.[/] [bold]{title}[/]")

    def done(self, ok: bool, detail: str) -> None:
        seconds = time.monotonic() - self.started
        self.steps[-1].update(ok=ok, seconds=round(seconds, 3), detail=detail)
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.out.note(f"  {mark} {escape(detail)} ({seconds:.1f}s)")


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _attach_live_view(out: Renderer) -> Any:
    from pipelinectl.localaws.console import attach_live_view

    return attach_live_view(out.console)


def _detach_live_view(handler: Any) -> None:
    from pipelinectl.localaws.console import detach_live_view

    detach_live_view(handler)

