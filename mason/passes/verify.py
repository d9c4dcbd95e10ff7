"""``verify``: check that a graph is well formed; return it unchanged or raise a MasonError
naming the op (kind, digest, source location when it has one) and the field.

Checked: every input is a ref to an op and names an output the op has; per kind, the indices
LLB stores into an op's inputs — ExecOp mounts (input in range, a root mount at ``/``, one mount
per destination, outputs numbered 0..n-1 once each and only on writable bind mounts, cache,
secret and ssh mounts carrying their options, a command), FileOp actions (input, secondary input
and owner-name inputs below ``len(inputs)+k`` for action k, outputs numbered 0..n-1 once each),
MergeOp and DiffOp inputs, SourceOp identifiers, ConfigOp inputs and changes (known actions, JSON
values of the right shape); outputs (non-empty unique names, valid refs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from mason.ir.errors import MasonError
from mason.ir.graph import Graph, Output
from mason.ir.imageconfig import CONFIG_ACTIONS
from mason.ir.ops import (
    ConfigOp,
    DiffOp,
    ExecOp,
    FileOp,
    MergeOp,
    MountType,
    Op,
    Ref,
    SourceOp,
)
from mason.passes.manager import Pass, register_pass

__all__ = ["Verify", "verify_graph"]


def _has(n: int) -> str:
    return f"the op has {n} input{'s' if n != 1 else ''}"


def _fail(op: Op, field: str, problem: str) -> MasonError:
    where = f" ({op.loc})" if op.loc is not None else ""
    return MasonError(f"{op.kind} op {op.digest}{where}: {field}: {problem}", op.loc)


def _outputs_ok(op: Op, field: str, outs: list[int]) -> None:
    used = sorted(o for o in outs if o >= 0)
    for o in outs:
        if o < -1:
            raise _fail(op, field, f"output {o} is invalid (-1 = none, else 0, 1, …)")
    if used != list(range(len(used))):
        raise _fail(op, field, f"outputs {used} must be numbered 0..{len(used) - 1}, each once")


def _check_exec(op: ExecOp) -> None:
    n = len(op.inputs)
    if not op.meta.args:
        raise _fail(op, "meta.args", "empty command")
    if not op.mounts:
        raise _fail(op, "mounts", "no mounts (an exec needs a root mount at /)")
    dests: set[str] = set()
    for i, m in enumerate(op.mounts):
        f = f"mounts[{i}] ({m.dest or '?'})"
        if not -1 <= m.input < n:
            raise _fail(op, f"{f}.input", f"{m.input} out of range ({_has(n)}; -1 = scratch)")
        if m.dest in dests:
            raise _fail(op, f"{f}.dest", "two mounts at the same destination")
        dests.add(m.dest)
        if m.mount_type in (MountType.SECRET, MountType.SSH):
            if m.output not in (0, -1):  # unset (0, as BuildKit writes it) or -1: no output either way
                raise _fail(op, f"{f}.output", f"{m.output}, but a {m.mount_type.name.lower()} mount has no output")
        elif m.output >= 0 and (m.mount_type != MountType.BIND or m.readonly):
            raise _fail(op, f"{f}.output", f"{m.output}, but only writable bind mounts have outputs")
        need = {MountType.CACHE: ("cache", m.cache), MountType.SECRET: ("secret", m.secret),
                MountType.SSH: ("ssh", m.ssh)}.get(m.mount_type)  # type: ignore[call-overload]
        if need is not None and need[1] is None:
            raise _fail(op, f"{f}.{need[0]}", f"a {need[0]} mount without {need[0]} options")
    if "/" not in dests:
        raise _fail(op, "mounts", "no root mount at /")
    _outputs_ok(op, "mounts[*].output", [m.output for m in op.mounts
                                         if m.mount_type not in (MountType.SECRET, MountType.SSH)])


def _check_file(op: FileOp) -> None:
    n = len(op.inputs)
    if not op.actions:
        raise _fail(op, "actions", "no actions")
    for k, a in enumerate(op.actions):
        hi = n + k
        why = f"{_has(n)} and {k} earlier action{'s' if k != 1 else ''}; -1 = scratch"
        for fname, v in (("input", a.input), ("secondary_input", a.secondary_input)):
            if not -1 <= v < hi:
                raise _fail(op, f"actions[{k}] ({a.action.kind}).{fname}", f"{v} out of range ({why})")
        owner = getattr(a.action, "owner", None)
        if owner is not None:
            for part in ("user", "group"):
                u = getattr(owner, part)
                if u is not None and u.name is not None and not -1 <= u.name_input < hi:
                    raise _fail(op, f"actions[{k}] ({a.action.kind}).owner.{part}.input",
                                f"{u.name_input} out of range ({why})")
    _outputs_ok(op, "actions[*].output", [a.output for a in op.actions])
    if op.num_outputs() == 0:
        raise _fail(op, "actions[*].output", "no action has an output (the last one should have output 0)")


def _check_config(op: ConfigOp) -> None:
    if len(op.inputs) != 1:
        raise _fail(op, "inputs", f"a config op has exactly one input, not {len(op.inputs)}")
    for i, ch in enumerate(op.changes):
        f = f"changes[{i}] ({ch.action} {ch.key})"
        if ch.action not in CONFIG_ACTIONS:
            raise _fail(op, f"{f}.action", f"unknown action (valid: {', '.join(CONFIG_ACTIONS)})")
        if not ch.key:
            raise _fail(op, f"{f}.key", "empty key")
        if ch.action in ("set", "add", "append"):
            try:
                v = json.loads(ch.value)
            except ValueError:
                raise _fail(op, f"{f}.value", f"{ch.value!r} is not JSON") from None
            if ch.action == "add" and not isinstance(v, dict):
                raise _fail(op, f"{f}.value", "add takes a JSON object")
            if ch.action == "append" and not isinstance(v, list):
                raise _fail(op, f"{f}.value", "append takes a JSON array")


def _check_op(op: Op) -> None:
    t = type(op)
    n = len(op.inputs)
    if t is SourceOp:
        if n:
            raise _fail(op, "inputs", f"a source op has no inputs, not {n}")
        if not op.identifier:
            raise _fail(op, "identifier", "empty")
    elif t is ExecOp:
        _check_exec(op)
    elif t is FileOp:
        _check_file(op)
    elif t is MergeOp:
        if not op.merge_inputs:
            raise _fail(op, "merge_inputs", "no inputs")
        for i, v in enumerate(op.merge_inputs):
            if not 0 <= v < n:
                raise _fail(op, f"merge_inputs[{i}]", f"{v} out of range ({_has(n)})")
    elif t is DiffOp:
        for fname, v in (("lower", op.lower), ("upper", op.upper)):
            if v is not None and not -1 <= v < n:
                raise _fail(op, fname, f"{v} out of range ({_has(n)}; -1 = scratch)")
    elif t is ConfigOp:
        _check_config(op)
    else:
        raise _fail(op, "op", f"unknown op type {t.__name__}")


def _digest(op: Op) -> str:
    try:
        return op.digest
    except Exception:  # an op that cannot be encoded (e.g. an input that is not a Ref)
        return "(no digest)"


def _check_ref(r: object, what: str, owner: Op | None, *, index: bool = True) -> Op:
    def bad(problem: str) -> MasonError:
        if owner is None:
            return MasonError(f"{what}: {problem}")
        where = f" ({owner.loc})" if owner.loc is not None else ""
        return MasonError(f"{owner.kind} op {_digest(owner)}{where}: {what}: {problem}", owner.loc)

    if not isinstance(r, Ref):
        raise bad(f"not a Ref but {type(r).__name__}")
    if not isinstance(r.op, Op):
        raise bad(f"names {type(r.op).__name__}, not an op")
    if index:
        outs = r.op.num_outputs()
        if not 0 <= r.index < outs:
            raise bad(f"names output {r.index} of {r.op.kind} op {r.op.digest}, which has "
                      f"{outs} output{'s' if outs != 1 else ''}")
    return r.op


def verify_graph(graph: Graph) -> None:
    """Raise a MasonError at the first problem. Ops are checked inputs first, and an op before
    the refs that name its outputs, so the error points at the op that is malformed."""
    if not isinstance(graph, Graph):
        raise MasonError(f"verify: not a Graph but {type(graph).__name__}")
    if not graph.outputs:
        raise MasonError("verify: the graph has no outputs")
    names: set[str] = set()
    roots: list[Op] = []
    for i, o in enumerate(graph.outputs):
        if not isinstance(o, Output):
            raise MasonError(f"verify: outputs[{i}] is not an Output")
        if not o.name:
            raise MasonError(f"verify: outputs[{i}] has an empty name")
        if o.name in names:
            raise MasonError(f"verify: two outputs named {o.name!r}")
        names.add(o.name)
        roots.append(_check_ref(o.ref, f"output {o.name!r}", None, index=False))
    seen: set[int] = set()  # id() of ops reached
    checked: set[str] = set()  # digests of ops checked
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack: list[tuple[Op, int]] = [(root, 0)]
        while stack:
            op, i = stack[-1]
            if i < len(op.inputs):
                stack[-1] = (op, i + 1)
                child = _check_ref(op.inputs[i], f"inputs[{i}]", op, index=False)
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, 0))
                continue
            stack.pop()
            dg = op.digest
            if dg not in checked:
                checked.add(dg)
                for j, r in enumerate(op.inputs):
                    _check_ref(r, f"inputs[{j}]", op)
                _check_op(op)
    for o in graph.outputs:
        _check_ref(o.ref, f"output {o.name!r}", None)


@register_pass
@dataclass(frozen=True)
class Verify(Pass):
    """Check that the graph is well formed; an identity on a good graph."""

    name: ClassVar[str] = "verify"

    def run(self, graph: Graph) -> Graph:
        verify_graph(graph)
        return graph
