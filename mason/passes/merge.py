"""``merge`` (-O2): fewer snapshots, same final filesystem.

* **File chains.** A FileOp whose only consumer is another FileOp reading it as the base of the
  action chain that makes its output (``COPY a``, ``COPY b``, ``RUN``-free ``WORKDIR``… in a
  row) is folded into that consumer: one FileOp whose actions are the inner op's followed by the
  outer op's. Indices are renumbered by LLB's rules: the op's inputs are the union of both ops'
  other inputs (each once), and ``len(inputs)+k`` names the result of action k, so the outer
  actions' reference to the inner op becomes ``len(inputs)+j`` for the inner op's output action
  j. Only the outer op's last action keeps output 0.
* **Layer stacks.** A MergeOp whose only consumer is another MergeOp layering it (what stacked
  ``COPY --link`` layers — FileOps copying onto scratch, merged one by one onto the base — look
  like) is spliced into it: ``merge(merge(base, a), b)`` becomes ``merge(base, a, b)``, one
  snapshot instead of two.

Options: ``files`` and ``layers`` (both true) switch the two rewrites. Folding needs the same
platform and constraints on both ops and never folds an op an output names. History entries
(``mason.history``) of folded FileOps are concatenated on the result, so ``hoist-config`` still
finds them in build order; a MergeOp that carries history is not spliced (its entries would move
past the later layers).

Groups are found consumers-first (reverse topological order), so a whole chain folds in one run
and a second run finds nothing: the pass is idempotent and linear in the graph's size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, ClassVar

from mason.ir.graph import Graph
from mason.ir.layers import HISTORY_KEY, history_entries, with_history
from mason.ir.ops import FileOp, MergeOp, Op, OpMetadata, Ref
from mason.passes._rewrite import consumers, map_output, merge_caps, rebuild, renumber_file_action
from mason.passes.manager import Pass, register_pass

__all__ = ["Merge"]


def _output_chain(op: FileOp) -> set[int] | None:
    """Indices of the actions whose results lead to output 0 (following ``input``), or None if
    the op is malformed for folding (not exactly one output, indices out of range)."""
    n = len(op.actions)
    outs = [k for k, a in enumerate(op.actions) if a.output >= 0]
    if len(outs) != 1 or op.actions[outs[0]].output != 0:
        return None
    ni = len(op.inputs)
    for k, a in enumerate(op.actions):
        for v in (a.input, a.secondary_input):
            if not -1 <= v < ni + k:
                return None
        owner = getattr(a.action, "owner", None)
        if owner is not None:
            for u in (owner.user, owner.group):
                if u is not None and u.name is not None and not -1 <= u.name_input < ni + k:
                    return None
    chain = set()
    k: int | None = outs[0]
    while k is not None and k not in chain and k < n:
        chain.add(k)
        i = op.actions[k].input
        k = i - ni if i >= ni else None
    return chain


def _file_foldable(dg: str, op: FileOp, users: list[Op], root: Op) -> bool:
    """Every reference to ``op`` in its users is the base of an action on the user's output
    chain (an input a user lists but never uses is fine: it merges into the same input), and
    there is at least one."""
    if _output_chain(op) is None or _output_chain(root) is None:  # type: ignore[arg-type]
        return False
    based = False
    for c in users:
        chain = _output_chain(c)  # type: ignore[arg-type]
        if chain is None:
            return False
        where = {p for p, r in enumerate(c.inputs) if r.op.digest == dg}
        if any(c.inputs[p].index != 0 for p in where):
            return False
        for k, a in enumerate(c.actions):  # type: ignore[attr-defined]
            if a.secondary_input in where:
                return False
            owner = getattr(a.action, "owner", None)
            if owner is not None and any(u is not None and u.name is not None and u.name_input in where
                                         for u in (owner.user, owner.group)):
                return False
            if a.input in where:
                if k not in chain:
                    return False
                based = True
    return based


def _merge_valid(op: MergeOp) -> bool:
    return bool(op.merge_inputs) and all(0 <= i < len(op.inputs) for i in op.merge_inputs)


def _merge_foldable(dg: str, op: MergeOp, users: list[Op], root: MergeOp) -> bool:
    if op.metadata.describe(HISTORY_KEY) is not None or not _merge_valid(op) or not _merge_valid(root):
        return False
    used = False
    for c in users:
        where = {p for p, r in enumerate(c.inputs) if r.op.digest == dg}
        if any(c.inputs[p].index != 0 for p in where):
            return False
        used = used or bool(where & set(c.merge_inputs))  # type: ignore[attr-defined]
    return used


def _metadata(chain: list[Op], history: list[dict]) -> OpMetadata:
    root = chain[-1].metadata
    md = replace(root, ignore_cache=any(m.metadata.ignore_cache for m in chain),
                 caps=merge_caps(m.metadata for m in chain))
    return with_history(md, history)


def _fold_files(chain: list[FileOp], nref: Callable[[Ref], Ref]) -> Op:
    """One FileOp doing the actions of ``chain`` (inner first, root last)."""
    members = {m.digest for m in chain}
    inputs: list[Ref] = []
    pos: dict[tuple[str, int], int] = {}
    for m in chain:
        for r in m.inputs:
            if r.op.digest in members:
                continue
            nr = nref(r)
            key = (nr.op.digest, nr.index)
            if key not in pos:
                pos[key] = len(inputs)
                inputs.append(nr)
    n_all = len(inputs)
    actions = []
    result: dict[str, int] = {}  # member digest -> merged index of its output action's result
    root = chain[-1]
    for m in chain:
        base = n_all + len(actions)
        n = len(m.inputs)

        def f(i: int, m: FileOp = m, n: int = n, base: int = base) -> int:
            if 0 <= i < n:
                r = m.inputs[i]
                d = r.op.digest
                if d in members:
                    return result[d]
                nr = nref(r)
                return pos[(nr.op.digest, nr.index)]
            if i >= n:
                return base + (i - n)
            return i

        keep = m is root
        for a in m.actions:
            actions.append(renumber_file_action(a, f, None if keep else -1))
        out_k = next(k for k, a in enumerate(m.actions) if a.output == 0)
        result[m.digest] = base + out_k
    history = [e for m in chain for e in history_entries(m)]
    return replace(root, inputs=tuple(inputs), actions=tuple(actions), metadata=_metadata(chain, history))


def _flatten_merges(chain: list[MergeOp], nref: Callable[[Ref], Ref]) -> Op:
    """One MergeOp layering what the nested MergeOps of ``chain`` (root last) layer."""
    members = {m.digest: m for m in chain}
    root = chain[-1]
    inputs: list[Ref] = []
    pos: dict[tuple[str, int], int] = {}
    order: list[int] = []
    stack: list[tuple[MergeOp, int]] = [(root, 0)]
    while stack:
        m, j = stack[-1]
        if j >= len(m.merge_inputs):
            stack.pop()
            continue
        stack[-1] = (m, j + 1)
        r = m.inputs[m.merge_inputs[j]]
        inner = members.get(r.op.digest)
        if inner is not None and inner is not m:
            stack.append((inner, 0))
            continue
        nr = nref(r)
        key = (nr.op.digest, nr.index)
        if key not in pos:
            pos[key] = len(inputs)
            inputs.append(nr)
        order.append(pos[key])
    for m in chain:  # inputs listed but not layered stay listed, so consumers stay the same
        for r in m.inputs:
            if r.op.digest not in members:
                nr = nref(r)
                pos.setdefault((nr.op.digest, nr.index), len(inputs))
                if len(pos) > len(inputs):
                    inputs.append(nr)
    return replace(root, inputs=tuple(inputs), merge_inputs=tuple(order),
                   metadata=_metadata(chain, history_entries(root)))


@register_pass
@dataclass(frozen=True)
class Merge(Pass):
    """Fold FileOp chains into one FileOp and nested MergeOps into one MergeOp."""

    name: ClassVar[str] = "merge"
    files: bool = True
    layers: bool = True

    def run(self, graph: Graph) -> Graph:
        ops, cons, named = consumers(graph)
        by_dg = {op.digest: op for op in ops}
        group: dict[str, str] = {}  # digest -> digest of the op it folds into (itself: a root)
        for op in reversed(ops):  # consumers first: their groups are known
            dg = op.digest
            group[dg] = dg
            users = cons.get(dg)
            if not users or dg in named:
                continue
            roots = {group[c] for c in users}
            if len(roots) != 1:
                continue
            root = by_dg[roots.pop()]
            t = type(op)
            if t is not type(root) or op.platform != root.platform or op.constraints != root.constraints:
                continue
            us = [by_dg[c] for c in users]
            if t is FileOp:
                ok = self.files and _file_foldable(dg, op, us, root)  # type: ignore[arg-type]
            elif t is MergeOp:
                ok = self.layers and _merge_foldable(dg, op, us, root)  # type: ignore[arg-type]
            else:
                ok = False
            if ok:
                group[dg] = root.digest

        members: dict[str, list[Op]] = {}
        for op in ops:
            g = group[op.digest]
            if g != op.digest:
                members.setdefault(g, []).append(op)
        new: dict[str, Op] = {}

        def nref(r: Ref) -> Ref:
            op = new[r.op.digest]
            return r if op is r.op else Ref(op, r.index)

        for op in ops:  # inputs first
            dg = op.digest
            if group[dg] != dg:
                continue  # built with its root
            inner = members.get(dg)
            if not inner:
                new[dg] = rebuild(op, tuple(nref(r) for r in op.inputs))
            elif type(op) is FileOp:
                new[dg] = _fold_files(inner + [op], nref)  # type: ignore[arg-type]
            else:
                new[dg] = _flatten_merges(inner + [op], nref)  # type: ignore[arg-type]
        return graph.with_outputs(map_output(o, nref(o.ref)) for o in graph.outputs)
