"""Helpers the passes share for rewriting a graph without mutating it.

Ops are frozen: a rewrite builds new ops inputs-first (topological order) with a memo from the
old op's digest to its replacement, so every op is visited once and chains of any length need no
recursion. An op whose inputs come back unchanged is kept as the same object.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

from mason.ir.graph import Graph, Output
from mason.ir.ops import (
    ChownOpt,
    DiffOp,
    ExecOp,
    FileAction,
    FileOp,
    MergeOp,
    Op,
    OpMetadata,
    Ref,
    UserOpt,
)

__all__ = ["rebuild", "map_output", "dedupe_inputs", "consumers", "renumber_file_action", "merge_caps"]


def rebuild(op: Op, inputs: tuple[Ref, ...], **changes: Any) -> Op:
    """``op`` with ``inputs`` (and ``changes``): the same object when nothing differs."""
    if not changes and len(inputs) == len(op.inputs) and all(a is b for a, b in zip(inputs, op.inputs, strict=False)):
        return op
    return replace(op, inputs=inputs, **changes)


def map_output(o: Output, ref: Ref, image_config: Any = ...) -> Output:
    cfg = o.image_config if image_config is ... else image_config
    if ref is o.ref and cfg is o.image_config:
        return o
    return replace(o, ref=ref, image_config=cfg)


def consumers(graph: Graph) -> tuple[list[Op], dict[str, set[str]], set[str]]:
    """(one op per digest in topological order, digest → digests of the ops consuming it,
    digests named by an output)."""
    ops = graph.unique_ops()
    cons: dict[str, set[str]] = {}
    for op in ops:
        dg = op.digest
        for r in op.inputs:
            cons.setdefault(r.op.digest, set()).add(dg)
    return ops, cons, {o.ref.op.digest for o in graph.outputs}


def _owner(owner: ChownOpt | None, f: Any) -> ChownOpt | None:
    if owner is None:
        return None

    def one(u: UserOpt | None) -> UserOpt | None:
        if u is None or u.name is None:
            return u
        n = f(u.name_input)
        return u if n == u.name_input else UserOpt(u.id, u.name, n)

    user, group = one(owner.user), one(owner.group)
    return owner if user is owner.user and group is owner.group else ChownOpt(user, group)


def renumber_file_action(a: FileAction, f: Any, output: int | None = None) -> FileAction:
    """``a`` with every index (input, secondary input, owner name inputs) mapped by ``f`` (-1,
    scratch, is passed to ``f`` too) and, if given, a new ``output``."""
    x = a.action
    owner = getattr(x, "owner", None)
    new_owner = _owner(owner, f)
    if new_owner is not owner:
        x = replace(x, owner=new_owner)  # type: ignore[call-arg]
    return FileAction(f(a.input), f(a.secondary_input), a.output if output is None else output, x)


def dedupe_inputs(op: Op) -> Op:
    """``op`` with repeated inputs (same digest and index) collapsed to their first occurrence
    and every index renumbered, as BuildKit's llb marshals them (each input once, in first-use
    order). Needed after a rewrite points two inputs at one op (e.g. removing a ConfigOp)."""
    first: dict[tuple[str, int], int] = {}
    keep: list[Ref] = []
    where: list[int] = []
    for r in op.inputs:
        k = (r.op.digest, r.index)
        if k not in first:
            first[k] = len(keep)
            keep.append(r)
        where.append(first[k])
    if len(keep) == len(op.inputs):
        return op
    n_old, n_new = len(op.inputs), len(keep)

    def f(i: int) -> int:
        if 0 <= i < n_old:
            return where[i]
        if i >= n_old:  # a FileOp action result: len(inputs)+k
            return i - n_old + n_new
        return i

    t = type(op)
    if t is ExecOp:
        return replace(op, inputs=tuple(keep), mounts=tuple(replace(m, input=f(m.input)) for m in op.mounts))
    if t is FileOp:
        return replace(op, inputs=tuple(keep), actions=tuple(renumber_file_action(a, f) for a in op.actions))
    if t is MergeOp:
        return replace(op, inputs=tuple(keep), merge_inputs=tuple(f(i) for i in op.merge_inputs))
    if t is DiffOp:
        return replace(op, inputs=tuple(keep), lower=None if op.lower is None else f(op.lower),
                       upper=None if op.upper is None else f(op.upper))
    return op  # other kinds do not index their inputs


def merge_caps(mds: Iterable[OpMetadata]) -> tuple[tuple[str, bool], ...]:
    caps: dict[str, bool] = {}
    for md in mds:
        for k, v in md.caps:
            caps[k] = caps.get(k, False) or v
    return tuple(sorted(caps.items()))
