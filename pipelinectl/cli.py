"""The command line: parse, call the core, render. No AWS calls here.

Heavy modules (boto3, rich, moto) are imported inside commands so `--help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from pipelinectl import __version__, cli_data, cli_operate
from pipelinectl.cli_state import CliState, confirm_or_refuse, local_port_option, pass_state
from pipelinectl.errors import PipelineError, UsageError
from pipelinectl.steps import STEP_ORDER, STEPS

if TYPE_CHECKING:
    from pipelinectl.render import Renderer
    from pipelinectl.resources.base import Context, StatusRow


class PipelineGroup(click.Group):
    """Turns our errors into one sentence and an exit code; tracebacks only with -v."""

    def invoke(self, ctx: click.Context) -> Any:
        # Seen before parsing (which clears ctx.args), so even a malformed command exits 1.
        ctx.meta[DETAILED_EXITCODE] = DETAILED_EXITCODE in ctx.args
        try:
            return super().invoke(ctx)
        except PipelineError as error:
            _fail(ctx, str(error), error.exit_code, error)
        except click.UsageError as error:
            if not ctx.meta[DETAILED_EXITCODE]:
                raise
            error.show()  # 2 means "changes pending" there: every error exits 1
            ctx.exit(1)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            _fail(ctx, "Interrupted; re-run the same command to finish: every step is "
                       "idempotent.", 130, None)
        except Exception as error:
            from pipelinectl.errors import translate

            translated = translate(error)
            _fail(ctx, str(translated), translated.exit_code, error)


#: Terraform's convention (`terraform plan -detailed-exitcode`): 0 no changes, 1 error,
#: 2 changes pending. Every error, usage errors included, then exits 1.
DETAILED_EXITCODE = "--detailed-exitcode"
CHANGES_PENDING = 2


def _fail(ctx: click.Context, message: str, code: int, error: BaseException | None) -> None:
    state = ctx.find_object(CliState)
    verbose = state is not None and state.verbose
    if ctx.meta.get(DETAILED_EXITCODE):
        code = 1
    if verbose and error is not None:
        import traceback  # only here: it costs start-up time every command would pay

        traceback.print_exception(error, file=sys.stderr)
    click.secho("Error: ", fg="red", bold=True, err=True, nl=False)
    click.echo(message, err=True)
    ctx.exit(code)


@click.group(cls=PipelineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--name", help="Pipeline name (default ecommerce; env PIPELINECTL_NAME).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Config file (default ./pipeline.toml; env PIPELINECTL_CONFIG).")
@click.option("--region", help="AWS region (default: AWS_REGION, then your profile).")
@click.option("--profile", help="AWS named profile (default: AWS_PROFILE).")
@click.option("--endpoint-url", help="Any AWS-compatible endpoint (default AWS_ENDPOINT_URL).")
@click.option("--local", is_flag=True,
              help="Use the embedded local AWS started by `pipelinectl local`.")
@local_port_option("--local-port", help="Port of that local AWS.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Tables for people, JSON (stable keys) for scripts.")
@click.option("-v", "--verbose", is_flag=True, help="Show API calls and tracebacks.")
@click.version_option(__version__, prog_name="pipelinectl")
@click.pass_context
def main(ctx: click.Context, name: str | None, config_file: str | None, region: str | None,
         profile: str | None, endpoint_url: str | None, local: bool, local_port: int,
         output: str, verbose: bool) -> None:
    """Provision, operate and tear down the event-driven transaction pipeline.

    S3 -> EventBridge -> SNS -> SQS (+ DLQ) -> Lambda -> DynamoDB, with SNS alerts and
    CloudWatch alarms. Every step is idempotent: re-running changes nothing.
    """
    if local and endpoint_url:
        raise click.UsageError("--local and --endpoint-url are exclusive; pick one.")
    ctx.obj = CliState(
        flags={"name": name, "config": config_file, "region": region, "profile": profile,
               "endpoint_url": endpoint_url, "local": local, "local_port": local_port},
        output=output, verbose=verbose)


def _apply_steps(state: CliState, steps: tuple[str, ...], dry_run: bool,
                 detailed: bool = False) -> None:
    from pipelinectl import engine

    if detailed and not dry_run:
        raise UsageError("--detailed-exitcode goes with --dry-run (or `pipelinectl plan`).")
    out = state.renderer()
    pipeline = state.context()
    if dry_run:
        changes, refused = engine.checked_plan(pipeline, steps)
        out.changes(changes, "Plan (nothing was changed)")
        if refused and detailed:  # a conflict is a pending change here, not an error
            out.warn(refused.message())
            click.get_current_context().exit(CHANGES_PENDING)
        if refused:
            raise PipelineError(refused.message())
        if detailed and any(c.action != "unchanged" for c in changes):
            click.get_current_context().exit(CHANGES_PENDING)
        return
    if len(steps) == 1:
        engine.check_needs(pipeline, steps[0])
    with out.progress("applying") as on_progress:
        try:
            changes = engine.apply(pipeline, steps, on_progress)
        except engine.StepFailed as failure:
            out.changes(failure.done, "Done before the failure", past=True)
            _warn_notifications(out, pipeline, steps)
            raise
    out.changes(changes, "Applied", past=True, arns=[(c.kind, c.name, c.arn) for c in changes])
    _warn_notifications(out, pipeline, steps)


def _warn_notifications(out: Renderer, pipeline: Context, steps: tuple[str, ...]) -> None:
    """S3 takes about five minutes to start sending events after `up` enabled them."""
    from pipelinectl.resources import bucket_events

    pending = bucket_events.window(pipeline) if "bucket" in steps else None
    if pending is not None:
        out.warn(pending.warning())


def _step_command(step: str) -> Callable[..., None]:
    @click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
    @pass_state
    def command(state: CliState, dry_run: bool) -> None:
        _apply_steps(state, (step,), dry_run)

    command.__doc__ = STEPS[step].summary[0].upper() + STEPS[step].summary[1:] + "."
    return command


for _step in STEP_ORDER:
    main.command(_step)(_step_command(_step))


_DETAILED_HELP = ("Exit 0 when nothing would change, 2 when something would (create, "
                  "update, replace, conflict, blocked), 1 on any error (Terraform's "
                  "convention).")


@main.command()
@click.option("--dry-run", is_flag=True, help="Same as `plan`: show changes, make none.")
@click.option(DETAILED_EXITCODE, "detailed", is_flag=True,
              help="With --dry-run: " + _DETAILED_HELP)
@pass_state
def up(state: CliState, dry_run: bool, detailed: bool) -> None:
    """Create or update every resource, independent steps concurrently."""
    _apply_steps(state, STEP_ORDER, dry_run, detailed)


@main.command()
@click.option(DETAILED_EXITCODE, "detailed", is_flag=True, help=_DETAILED_HELP)
@pass_state
def plan(state: CliState, detailed: bool) -> None:
    """What `up` would change: create / update (which fields) / replace / unchanged."""
    _apply_steps(state, STEP_ORDER, dry_run=True, detailed=detailed)


@main.command()
@click.option("--tree", "as_tree", is_flag=True,
              help="Draw the pipeline as its flow (bucket -> rule -> topic -> queue -> "
                   "function -> table / alerts), alarms beside what they watch.")
@pass_state
def status(state: CliState, as_tree: bool) -> None:
    """Every resource: name, ARN, state and health; and the latest file run."""
    from pipelinectl import engine
    from pipelinectl.operate import fileruns

    pipeline = state.context()
    rows = engine.status(pipeline)
    with engine.aws_errors(pipeline):
        latest = fileruns.latest(pipeline)
    out = state.renderer()
    header = {"pipeline": pipeline.config.name, "account": pipeline.account,
              "region": pipeline.region}
    if as_tree:
        _status_tree(out, pipeline, rows, header)
    else:
        out.status(rows, header, latest)
    if rows and all(row.health == "missing" for row in rows) and not out.json:
        from pipelinectl.operate.pipelines import other_pipelines_hint

        out.note(f"Nothing of pipeline {pipeline.config.name} exists here yet: run "
                 f"`pipelinectl up` to create it.{other_pipelines_hint(pipeline)}")


def _status_tree(out: Renderer, pipeline: Context, rows: list[StatusRow],
                 header: dict[str, str]) -> None:
    from pipelinectl import render_top, render_tree
    from pipelinectl.operate.flow import flow

    roots = flow(pipeline, rows)
    if out.json:
        out.emit_json({**header, "healthy": all(r.health == "ok" for r in rows),
                       "tree": [root.as_dict() for root in roots]})
    else:
        render_tree.show(render_top.console(), roots, header)


@main.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--keep-data", is_flag=True, help="Keep the bucket and the table.")
@pass_state
def teardown(state: CliState, yes: bool, keep_data: bool) -> None:
    """Delete everything this pipeline created (only what carries its tag); waits until
    AWS has finished deleting it."""
    from pipelinectl import engine

    pipeline = state.context()
    out = state.renderer()
    where = f"pipeline {pipeline.config.name} in {pipeline.account}/{pipeline.region}"
    confirm_or_refuse(yes, f"Delete every resource of {where}?", "teardown deletes resources")
    with out.progress("deleting") as on_progress:
        changes = engine.teardown(pipeline, keep_data, on_progress)
    if all(c.action == "absent" for c in changes):
        if out.json:
            out.changes(changes, "Teardown")
        else:
            from pipelinectl.operate.pipelines import other_pipelines_hint

            out.note(f"Nothing to tear down: {where} has no resources."
                     + other_pipelines_hint(pipeline))
        return
    out.changes(changes, "Teardown", past=True)
    if any(c.step == "topic" and c.kind == "KMS key" and c.action == "delete"
           for c in changes):
        out.note("The KMS key is scheduled for deletion in 7 days (the minimum KMS allows); "
                 "its alias is gone now.")
    refused = [c for c in changes if c.action == "refused"]
    if refused:
        names = ", ".join(f"{c.kind} {c.name}" for c in refused)
        raise PipelineError(f"Left alone because they are not this pipeline's: {names}.")


main.add_command(cli_operate.send_test)
main.add_command(cli_operate.smoke_test)
main.add_command(cli_operate.logs)
main.add_command(cli_operate.top)
main.add_command(cli_operate.trace)
main.add_command(cli_operate.dlq)
main.add_command(cli_operate.local)
main.add_command(cli_operate.demo)
main.add_command(cli_data.replay)
main.add_command(cli_data.doctor)
