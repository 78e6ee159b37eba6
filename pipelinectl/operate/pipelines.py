"""Which pipelines live in this account and region, found by the tag every resource carries.

For the moments a user has the wrong --name: `teardown` with nothing to tear down and `status`
with nothing there say which pipelines do exist instead of only "nothing here".
"""

from __future__ import annotations

from pipelinectl.config import TAG_KEY
from pipelinectl.resources.base import Context


def pipelines_here(ctx: Context) -> list[str] | None:
    """Names of the pipelines whose tagged resources are in this region, sorted; None when
    they cannot be listed (the caller may lack tag:GetResources: a hint is not worth an
    error). The Resource Groups Tagging API covers every tagged kind we make except IAM
    roles, which are global (AWS Resource Groups Tagging API Reference, GetResources)."""
    try:
        tagging = ctx.client("resourcegroupstaggingapi")
        found: set[str] = set()
        for page in tagging.get_paginator("get_resources").paginate(
                TagFilters=[{"Key": TAG_KEY}]):
            for resource in page.get("ResourceTagMappingList", []):
                found.update(tag["Value"] for tag in resource.get("Tags", [])
                             if tag["Key"] == TAG_KEY)
    except Exception:
        return None
    return sorted(found)


def other_pipelines_hint(ctx: Context) -> str:
    """' Pipelines here: a, b (pass --name).' or '' when there are none (or none known)."""
    others = [name for name in pipelines_here(ctx) or [] if name != ctx.config.name]
    if not others:
        return ""
    return f" Pipelines found here: {', '.join(others)} (pass --name to choose one)."
