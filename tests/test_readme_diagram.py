"""The README's Mermaid diagram stays true: every resource `up` makes (each one the step
graph builds, default configuration plus an alert e-mail) is in it as `kind {name}-…`, as
the resource table names it; the subscriptions and the mapping are edges, the alarms one
node listing them."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
ACCOUNT, REGION = "123456789012", "us-east-1"
#: Resources the diagram draws as an edge (their name is "source -> destination").
EDGES = {"SNS subscription": "SNS subscription", "event source mapping": "event source mapping",
         "SNS e-mail subscription": "e-mail subscription"}


def _diagram() -> str:
    blocks = re.findall(r"```mermaid\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def _templated(name: str, pipeline: str) -> str:
    return name.replace(ACCOUNT, "{account}").replace(REGION, "{region}").replace(
        pipeline, "{name}")


def test_every_resource_up_makes_is_in_the_diagram() -> None:
    from pipelinectl import config as config_module
    from pipelinectl.clients import ClientFactory
    from pipelinectl.resources import build
    from pipelinectl.resources.base import Context
    from pipelinectl.steps import STEP_ORDER

    config = config_module.load({}, {"PIPELINECTL_ALERT_EMAIL": "oncall@example.com"})
    ctx = Context(config=config, factory=ClientFactory(config), account=ACCOUNT,
                  region=REGION)
    resources = [r for step in STEP_ORDER for r in build(step, ctx)]
    assert {r.kind for r in resources} >= set(EDGES)  # the e-mail subscription included
    diagram = _diagram()

    def shown(kind: str, name: str) -> str:
        if kind in EDGES:
            return EDGES[kind]
        if kind == "CloudWatch alarm":  # one node lists them all
            return _templated(name, config.name)
        return f"{kind} {_templated(name, config.name)}"

    missing = [(r.kind, r.name) for r in resources if shown(r.kind, r.name) not in diagram]
    assert not missing, missing
