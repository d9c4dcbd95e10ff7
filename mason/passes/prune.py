"""``prune{targets=a,b}``: keep only the named outputs and what they reach.

The naive Dockerfile lowering emits one output per stage name plus the default final one;
``--target T`` is ``prune{targets=T}``. Without targets every output is kept. A graph is what its
outputs reach, so dropping an output drops every op only it needed. An unknown target is an
error listing the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mason.ir.errors import MasonError
from mason.ir.graph import Graph
from mason.passes.manager import Pass, register_pass

__all__ = ["Prune"]


@register_pass
@dataclass(frozen=True)
class Prune(Pass):
    """Drop the outputs not named in ``targets`` (all kept when empty) and what only they reach."""

    name: ClassVar[str] = "prune"
    targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):  # prune(targets="a") from Python
            object.__setattr__(self, "targets", (self.targets,))

    def run(self, graph: Graph) -> Graph:
        if not self.targets:
            return graph
        by_name = {}
        for o in graph.outputs:
            by_name.setdefault(o.name, o)
        outs = []
        for t in dict.fromkeys(self.targets):
            o = by_name.get(t)
            if o is None:
                raise MasonError(f"prune: no output {t!r} (outputs: {', '.join(graph.names()) or 'none'})")
            outs.append(o)
        if len(outs) == len(graph.outputs) and all(a is b for a, b in zip(outs, graph.outputs, strict=False)):
            return graph
        return graph.with_outputs(outs)
