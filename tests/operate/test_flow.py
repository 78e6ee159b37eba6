"""`status --tree`'s layout without AWS: every row `status` reports is drawn exactly once,
whatever exists, and the rendered text carries health as words."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from pipelinectl import config as config_module
from pipelinectl.clients import ClientFactory
from pipelinectl.operate.flow import flow
from pipelinectl.render_tree import show
from pipelinectl.resources import build
from pipelinectl.resources.base import Context, StatusRow
from pipelinectl.steps import STEP_ORDER

HEADER = {"pipeline": "ecommerce", "account": "123456789012", "region": "us-east-1"}


def _rows(environ: dict[str, str]) -> tuple[Context, list[StatusRow]]:
    """What `status` reports before `up`: one `missing` row per resource."""
    config = config_module.load({}, environ)
    ctx = Context(config=config, factory=ClientFactory(config), account="123456789012",
                  region="us-east-1")
    return ctx, [StatusRow(r.step, r.kind, r.name, r.arn, "missing", "missing")
                 for step in STEP_ORDER for r in build(step, ctx)]


def test_every_row_is_drawn_once_even_the_ones_the_layout_does_not_know() -> None:
    ctx, rows = _rows({"PIPELINECTL_ALERT_EMAIL": "oncall@example.com"})
    stranger = StatusRow("alarms", "CloudWatch dashboard", "ecommerce", "arn:x", "ok", "ok")
    roots = flow(ctx, [*rows, stranger])
    drawn = [node.row for root in roots for node in root.walk()]
    assert sorted(map(id, drawn)) == sorted(map(id, [*rows, stranger]))
    assert roots[0].row.kind == "S3 bucket" and roots[-1].row is stranger
    email = next(n for root in roots for n in root.walk()
                 if n.row.kind == "SNS e-mail subscription")
    alerts = next(n for root in roots for n in root.walk() if n.row.name == "ecommerce-alerts")
    assert email in alerts.children


def test_rows_under_a_missing_parent_are_kept() -> None:
    ctx, rows = _rows({})
    without_queue = [r for r in rows if r.kind != "SQS queue"]
    roots = flow(ctx, without_queue)
    drawn = {id(node.row) for root in roots for node in root.walk()}
    assert drawn == {id(r) for r in without_queue}


def test_the_text_says_what_is_missing_without_colour() -> None:
    ctx, rows = _rows({})
    buffer = StringIO()
    show(Console(file=buffer, width=200, color_system=None), flow(ctx, rows), HEADER)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == f"Pipeline ecommerce (123456789012/us-east-1): {len(rows)} resources: " \
                       f"{len(rows)} missing"
    assert all("  missing: missing" in line for line in lines[1:])
    assert "\x1b" not in buffer.getvalue()
