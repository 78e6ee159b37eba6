"""`pipelinectl status --tree`: the pipeline drawn as its flow, each node with its health.

Health is written as a word beside its colour (ok, WARN, ERROR, missing), so the drawing
says the same thing without colour: NO_COLOR, TERM=dumb or piped output get the same text
with no escape sequence (the console of render_top). Without UTF-8, ASCII arrows and rich's
ASCII tree guides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from pipelinectl.operate.flow import FlowNode
from pipelinectl.render import HEALTH_STYLE, safe

HEALTH_WORD = {"ok": "ok", "warn": "WARN", "error": "ERROR", "missing": "missing"}
ARROWS = {"flow": "→", "alarm": "⚑", "dead-letter": "↯", "uses": "·"}
ASCII_ARROWS = {"flow": "->", "alarm": "!", "dead-letter": "x>", "uses": "-"}


def label(node: FlowNode, *, unicode: bool = True) -> Text:
    """`→ SQS queue ecommerce-transactions  ok: 0 waiting, 0 in flight  (note)`."""
    row = node.row
    arrow = (ARROWS if unicode else ASCII_ARROWS)[node.edge]
    text = Text(f"{arrow} ", style="dim")
    text.append(row.kind, style="bold")
    text.append(f" {safe(row.name)}  ")
    text.append(HEALTH_WORD[row.health], style=HEALTH_STYLE[row.health])
    text.append(f": {safe(row.state)}")
    if node.note:
        text.append(f"  ({node.note})", style="dim")
    return text


def summary(roots: Sequence[FlowNode]) -> str:
    counts = Counter(node.row.health for root in roots for node in root.walk())
    total = sum(counts.values())
    if counts["ok"] == total:
        return f"{total} resources, all healthy"
    problems = ", ".join(f"{counts[h]} {HEALTH_WORD[h]}" for h in ("error", "warn", "missing")
                         if counts[h])
    return f"{total} resources: {problems}"


def tree(roots: Sequence[FlowNode], header: dict[str, str], *, unicode: bool = True) -> Tree:
    title = Text(f"Pipeline {header['pipeline']} ({header['account']}/{header['region']}): "
                 f"{summary(roots)}", style="bold")
    drawing = Tree(title, guide_style="dim")

    def add(parent: Tree, node: FlowNode) -> None:
        branch = parent.add(label(node, unicode=unicode))
        for child in node.children:
            add(branch, child)

    for root in roots:
        add(drawing, root)
    return drawing


def show(out: Console, roots: Sequence[FlowNode], header: dict[str, str]) -> None:
    unicode = out.encoding.lower().startswith("utf")
    out.print(tree(roots, header, unicode=unicode), soft_wrap=True)
