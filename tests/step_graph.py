"""What the tests derive from the step graph instead of restating it."""

from __future__ import annotations


def every_resource_count() -> int:
    """How many resources `up` makes with the default configuration: one per resource each
    step of the step graph builds (pipelinectl.steps), so no test restates the number."""
    from pipelinectl import config as config_module
    from pipelinectl.clients import ClientFactory
    from pipelinectl.resources import build
    from pipelinectl.resources.base import Context
    from pipelinectl.steps import STEP_ORDER

    config = config_module.load({}, {})
    ctx = Context(config=config, factory=ClientFactory(config), account="123456789012",
                  region="us-east-1")
    return sum(len(build(step, ctx)) for step in STEP_ORDER)
