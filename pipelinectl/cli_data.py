"""Commands for data already in the pipeline: replay, doctor. Parse, call, render.

Same conventions as `cli_operate.py`: the global options as a `CliState` (cli_state), whose
confirmation helper they share; the core lives in `pipelinectl.operate.replay` / `.doctor`,
the output in `pipelinectl.render_ops`.
"""

from __future__ import annotations

import click

from pipelinectl.cli_state import CliState, confirm_or_refuse, pass_state
from pipelinectl.errors import PipelineError

# -- replay -------------------------------------------------------------------------------


@click.command("replay")
@click.option("--prefix", default="incoming/", show_default=True,
              help="Only objects under this prefix (never outside incoming/).")
@click.option("--since", help="Only objects modified since: 30m, 2d, or an ISO 8601 time.")
@click.option("--until", help="Only objects modified until: 30m, 2d, or an ISO 8601 time.")
@click.option("--match", help="Only keys matching this glob (e.g. '*.csv', '2024-08-*').")
@click.option("--dry-run", is_flag=True, help="List what would be replayed; send nothing.")
@click.option("--rate", type=click.FloatRange(min=0.1, max=1000), default=10.0,
              show_default=True, help="Objects per second.")
@click.option("--max", "limit", type=click.IntRange(min=1), help="At most this many objects.")
@click.option("--yes", is_flag=True, help="Do not ask before replaying over 100 objects.")
@pass_state
def replay(state: CliState, prefix: str, since: str | None, until: str | None,
           match: str | None, dry_run: bool, rate: float, limit: int | None,
           yes: bool) -> None:
    """Process files already in the bucket again, as if they had just landed.

    Each object gets the event the rule would have sent (a fresh id, marked as a replay);
    the processor stores each row once, so replaying twice is harmless.
    """
    from pipelinectl import render_ops
    from pipelinectl.operate import replay as core
    from pipelinectl.operate.logs import parse_since

    selection = core.Selection(
        prefix, None if since is None else parse_since(since),
        None if until is None else parse_since(until, option="--until"), match, limit)
    selection.check()
    pipeline = state.context()
    out = state.renderer()
    objects = core.select(pipeline, selection)
    if not dry_run and len(objects) > core.CONFIRM_ABOVE:
        confirm_or_refuse(yes, f"Replay {len(objects)} objects of "
                                f"s3://{pipeline.names.bucket}/{prefix}?",
                           f"replay of {len(objects)} objects (over {core.CONFIRM_ABOVE})")
    with render_ops.replay_progress(out, 0 if dry_run else len(objects)) as on_tick:
        result = core.replay(pipeline, objects, selection, rate=rate, dry_run=dry_run,
                             on_tick=on_tick)
    render_ops.replay(out, result)


# -- doctor -------------------------------------------------------------------------------


@click.command("doctor")
@pass_state
def doctor(state: CliState) -> None:
    """Read-only checks for what loses or delays data; exits 1 when any check fails.

    Each check says ok / warn / fail, why, and the fix (most often a pipeline.toml key and
    `pipelinectl up`).
    """
    from pipelinectl import engine, render_ops
    from pipelinectl.operate import doctor as core

    pipeline = state.context()
    with engine.aws_errors(pipeline):
        found = core.run(pipeline)
    render_ops.findings(state.renderer(), found, {"pipeline": pipeline.config.name,
                                                "account": pipeline.account,
                                                "region": pipeline.region})
    failed = [f.check for f in found if f.level == "fail"]
    if failed:
        raise PipelineError(f"{len(failed)} check(s) failed ({', '.join(failed)}); each "
                            "row says how to fix it.")
