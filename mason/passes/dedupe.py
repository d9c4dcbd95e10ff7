"""``dedupe``: hash-consing. One in-memory vertex per distinct digest, across stages, targets
and platforms, so the solver (which walks objects) runs shared work once.

After it, two ops with the same digest are the same Python object (the first one met in
topological order keeps its metadata and source location). Digests never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mason.ir.graph import Graph
from mason.ir.ops import Op, Ref
from mason.passes._rewrite import map_output, rebuild
from mason.passes.manager import Pass, register_pass

__all__ = ["Dedupe"]


@register_pass
@dataclass(frozen=True)
class Dedupe(Pass):
    """Make ops with the same digest one object."""

    name: ClassVar[str] = "dedupe"

    def run(self, graph: Graph) -> Graph:
        canon: dict[str, Op] = {}

        def ref(r: Ref) -> Ref:
            op = canon[r.op.digest]
            return r if op is r.op else Ref(op, r.index)

        for op in graph.ops():  # inputs first, so every input is canonical already
            dg = op.digest
            if dg not in canon:
                canon[dg] = rebuild(op, tuple(ref(r) for r in op.inputs))
        return graph.with_outputs(map_output(o, ref(o.ref)) for o in graph.outputs)
