"""``hoist-config``: remove every ConfigOp, rewire its consumers to its input, and fold image
config changes and history into each output's image config ("Note: No ExposeOp").

After it, a LABEL or EXPOSE edit no longer changes the digest of any later op; only what an op
really reads (e.g. ENV through an exec's env) does. The fold follows each output's layer chain in
build order and also moves the ``mason.history`` entries off the ops (see
:mod:`mason.ir.layers` for the convention), so a second run finds nothing to do.

An op that ends up naming the same input twice (a ConfigOp and its input were both inputs) has
its inputs collapsed and indices renumbered, as BuildKit's llb would have written it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mason.ir.errors import MasonError
from mason.ir.graph import Graph
from mason.ir.layers import fold_image_config, layer_chain, without_history
from mason.ir.ops import ConfigOp, Op, Ref
from mason.passes._rewrite import dedupe_inputs, map_output, rebuild
from mason.passes.manager import Pass, register_pass

__all__ = ["HoistConfig"]


@register_pass
@dataclass(frozen=True)
class HoistConfig(Pass):
    """Remove ConfigOps; fold their changes (and op history) into the outputs' image configs."""

    name: ClassVar[str] = "hoist-config"

    def run(self, graph: Graph) -> Graph:
        alias: dict[str, Ref] = {}  # ConfigOp digest -> the (rewritten) ref it stands for
        new: dict[str, Op] = {}  # digest -> rewritten op

        def resolve(r: Ref) -> Ref:
            dg = r.op.digest
            a = alias.get(dg)
            if a is not None:
                return a
            op = new[dg]
            return r if op is r.op else Ref(op, r.index)

        for op in graph.ops():  # inputs first
            dg = op.digest
            if dg in new or dg in alias:
                continue
            if type(op) is ConfigOp:
                if not op.inputs:
                    raise MasonError(f"config op {op.digest}: no input to hoist it onto", op.loc)
                alias[dg] = resolve(op.inputs[0])
                continue
            ins = tuple(resolve(r) for r in op.inputs)
            md = without_history(op.metadata)
            out = rebuild(op, ins, metadata=md) if md is not op.metadata else rebuild(op, ins)
            if any(type(r.op) is ConfigOp for r in op.inputs):
                out = dedupe_inputs(out)
            new[dg] = out

        outs = []
        for o in graph.outputs:
            cfg = fold_image_config(o.image_config, layer_chain(o.ref))
            outs.append(map_output(o, resolve(o.ref), cfg))
        return graph.with_outputs(outs)
