"""Test helpers for the passes: well-formed random graphs and a reference interpreter.

* :func:`valid_graphs` — ``tests.ir.strategies.graphs`` repaired into graphs ``verify`` accepts
  (outputs numbered, root mounts, JSON config values…), some ops carrying ``mason.history``.
* :func:`meaning` — what a graph means, computed here independently of the passes: per output,
  the final root filesystem, evaluated symbolically, and the image config.

  The filesystem model is a *log*: a sequence of items applied bottom-up. Sources and execs are
  opaque items (a source by digest; an exec by its own fields plus the values of what it mounts,
  so renumbering inputs does not change it); a file action appends one item naming what it does
  (with the values it copies from and resolves owners in); a MergeOp concatenates its inputs'
  logs; a DiffOp strips the lower log from the upper one when it is a prefix; a ConfigOp is the
  identity. Two graphs mean the same when every output's log and config agree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from hypothesis import strategies as st

from mason.ir.graph import Graph, Output
from mason.ir.imageconfig import apply_config_changes
from mason.ir.ops import (
    EMPTY_METADATA,
    CacheOpt,
    ChownOpt,
    ConfigChange,
    ConfigOp,
    DiffOp,
    ExecOp,
    FileAction,
    FileOp,
    MergeOp,
    MountType,
    Op,
    Ref,
    SecretOpt,
    SourceOp,
    SSHOpt,
    UserOpt,
    walk_ops,
)
from tests.ir.strategies import graphs

HISTORY_KEY = "mason.history"
BUILDKIT_KINDS = {"exec", "source", "file", "merge", "diff"}


# ================================================================ repairing random graphs

def _fix_change(c: ConfigChange) -> ConfigChange:
    # keep each config field one JSON type: add → a map field, append → a list field
    if c.action == "add":
        c = replace(c, key="ExposedPorts")
    elif c.action == "append":
        c = replace(c, key="OnBuild")
    elif c.action == "set" and c.key in ("Env", "ExposedPorts", "OnBuild"):
        c = replace(c, key="Cmd")
    if c.action == "set":
        try:
            json.loads(c.value)
        except ValueError:
            return replace(c, value=json.dumps(c.value))
    if c.action == "add" and not c.value.startswith("{"):
        return replace(c, value="{}")
    if c.action == "append" and not c.value.startswith("["):
        return replace(c, value='["x"]')
    return c


def _fix_owner(o: ChownOpt | None, hi: int) -> ChownOpt | None:
    if o is None:
        return None

    def one(u: UserOpt | None) -> UserOpt | None:
        if u is None or u.name is None or -1 <= u.name_input < hi:
            return u
        return UserOpt(u.id, u.name, hi - 1)

    return ChownOpt(one(o.user), one(o.group))


def _fix_op(op: Op, ins: tuple[Ref, ...]) -> Op:
    t = type(op)
    if t is ExecOp:
        ms, dests = [], set()
        for m in op.mounts:
            if m.dest not in dests:
                dests.add(m.dest)
                ms.append(m)
        if "/" not in dests:
            ms[0] = replace(ms[0], dest="/")
        out, n = [], 0
        for m in ms:
            if m.dest == "/":
                m = replace(m, mount_type=MountType.BIND, readonly=False)
            if m.mount_type == MountType.CACHE and m.cache is None:
                m = replace(m, cache=CacheOpt("c"))
            if m.mount_type == MountType.SECRET and m.secret is None:
                m = replace(m, secret=SecretOpt("s"))
            if m.mount_type == MountType.SSH and m.ssh is None:
                m = replace(m, ssh=SSHOpt("k"))
            if m.mount_type == MountType.BIND and not m.readonly and (m.output >= 0 or m.dest == "/"):
                m = replace(m, output=n)
                n += 1
            else:
                m = replace(m, output=-1)
            out.append(m)
        meta = op.meta if op.meta.args else replace(op.meta, args=("true",))
        return replace(op, inputs=ins, mounts=tuple(out), meta=meta)
    if t is FileOp:
        k_last = len(op.actions) - 1
        acts = tuple(FileAction(a.input, a.secondary_input, 0 if k == k_last else -1,
                                replace(a.action, owner=_fix_owner(a.action.owner, len(ins) + k))  # type: ignore[call-arg]
                                if hasattr(a.action, "owner") else a.action)
                     for k, a in enumerate(op.actions))
        return replace(op, inputs=ins, actions=acts)
    if t is ConfigOp:
        return replace(op, inputs=ins, changes=tuple(_fix_change(c) for c in op.changes))
    return replace(op, inputs=ins)


def repair(graph: Graph, markers: list[bool] | None = None) -> Graph:
    """A well-formed copy of a random graph; ``markers`` (picked by digest) give ops history."""
    new: dict[int, Op] = {}
    for op in walk_ops(o.ref.op for o in graph.outputs):
        ins = []
        for r in op.inputs:
            nop = new[id(r.op)]
            ins.append(Ref(nop, min(r.index, nop.num_outputs() - 1)))
        fixed = _fix_op(op, tuple(ins))
        # history as a lowering writes it: a function of the op (equal digests, equal entries)
        h = int(fixed.digest[-4:], 16)
        if markers and markers[h % len(markers)]:
            fixed = replace(fixed, metadata=fixed.metadata.with_descriptions(
                {HISTORY_KEY: json.dumps({"created_by": f"STEP {fixed.digest[7:15]}", "comment": "test"})}))
        new[id(op)] = fixed
    outs = []
    for o in graph.outputs:
        nop = new[id(o.ref.op)]
        outs.append(Output(o.name, Ref(nop, min(o.ref.index, nop.num_outputs() - 1)), o.image_config, o.metadata))
    return Graph(tuple(outs))


@st.composite
def valid_graphs(draw: st.DrawFn, max_ops: int = 12, max_outputs: int = 3) -> Graph:
    g = draw(graphs(max_ops, max_outputs))
    markers = draw(st.lists(st.booleans(), min_size=1, max_size=8))
    return repair(g, markers)


# ================================================================ the reference interpreter

def fp(value: object) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:20]


class Interp:
    """Evaluates refs to filesystem logs (tuples of items), memoized by (digest, output)."""

    def __init__(self) -> None:
        self.memo: dict[tuple[str, int], tuple] = {}

    def fs(self, ref: Ref) -> tuple:
        key = (ref.op.digest, ref.index)
        if key not in self.memo:
            self.memo[key] = self._eval(ref.op, ref.index)
        return self.memo[key]

    def _side(self, op: Op, i: int | None) -> tuple:
        return () if i is None or i < 0 else self.fs(op.inputs[i])

    def _eval(self, op: Op, index: int) -> tuple:
        t = type(op)
        if t is SourceOp:
            return (("src", op.digest),)
        if t is ConfigOp:
            return self.fs(op.inputs[0])
        if t is ExecOp:
            mounts = tuple((replace(m, input=0), fp(self._side(op, m.input))) for m in op.mounts)
            own = replace(op, inputs=(), mounts=(), metadata=EMPTY_METADATA).digest
            return (("exec", own, mounts, index),)
        if t is MergeOp:
            out: tuple = ()
            for i in op.merge_inputs:
                out += self.fs(op.inputs[i])
            return out
        if t is DiffOp:
            lo, up = self._side(op, op.lower), self._side(op, op.upper)
            if up[:len(lo)] == lo:
                return up[len(lo):]
            return (("diff", fp(lo), fp(up)),)
        if t is FileOp:
            return self._file(op, index)
        raise AssertionError(f"unknown op {op!r}")

    def _file(self, op: FileOp, index: int) -> tuple:
        n = len(op.inputs)
        results: list[tuple] = []

        def at(i: int) -> tuple:
            if i < 0:
                return ()
            return self.fs(op.inputs[i]) if i < n else results[i - n]

        for a in op.actions:
            x = a.action
            owner = getattr(x, "owner", None)
            if owner is not None:
                def canon(u: UserOpt | None) -> object:
                    if u is None or u.name is None:
                        return u
                    return ("byname", u.name, fp(at(u.name_input)))
                x = replace(x, owner=(canon(owner.user), canon(owner.group)))  # type: ignore[call-arg]
            results.append(at(a.input) + (("act", fp(at(a.secondary_input)), x),))
        for a, r in zip(op.actions, results, strict=False):
            if a.output == index:
                return r
        raise AssertionError("no such output")


def _reach(ref: Ref, seen: set[str]) -> None:
    if ref.op.digest in seen:
        return
    seen.add(ref.op.digest)
    for r in _layers(ref):
        _reach(r, seen)


def _layers(ref: Ref) -> list[Ref]:
    op, n = ref.op, len(ref.op.inputs)
    t = type(op)
    if t is ConfigOp:
        return [op.inputs[0]]
    if t is ExecOp:
        m = op.mount_for_output(ref.index)
        return [op.inputs[m.input]] if m is not None and m.input >= 0 else []
    if t is FileOp:
        a = next(a for a in op.actions if a.output == ref.index)
        while a.input >= n:
            a = op.actions[a.input - n]
        return [op.inputs[a.input]] if a.input >= 0 else []
    if t is MergeOp:
        return [op.inputs[i] for i in op.merge_inputs]
    if t is DiffOp:
        return [op.inputs[op.upper]] if op.upper is not None and op.upper >= 0 else []
    return []


def _chain(ref: Ref, seen: set[str], blocked: frozenset[str], out: list[Op]) -> None:
    op = ref.op
    if op.digest in seen or op.digest in blocked:
        return
    seen.add(op.digest)
    if type(op) is DiffOp and op.lower is not None and op.lower >= 0:
        low: set[str] = set()
        _reach(op.inputs[op.lower], low)
        blocked = blocked | low
    for r in _layers(ref):
        _chain(r, seen, blocked, out)
    out.append(op)


def config_of(o: Output) -> dict | None:
    """The output's image config with every ConfigOp and history entry on its layer chain."""
    chain: list[Op] = []
    _chain(o.ref, set(), frozenset(), chain)
    cfg = o.image_config
    for op in chain:
        raw = op.metadata.describe(HISTORY_KEY)
        entries = [] if raw is None else (lambda v: v if isinstance(v, list) else [v])(json.loads(raw))
        is_cfg = type(op) is ConfigOp and (op.changes or op.created_by)
        if not entries and not is_cfg:
            continue
        if cfg is None:
            cfg = {}
        if is_cfg:
            cfg = apply_config_changes(cfg, op.changes, created_by=op.created_by or None)  # type: ignore[union-attr]
        if entries:
            cfg = dict(cfg)
            if not isinstance(cfg.get("config"), dict):
                cfg["config"] = {}
            cfg["history"] = list(cfg.get("history") or []) + entries
    return cfg


def meaning(graph: Graph) -> list[tuple[str, str, str]]:
    """Per output: (name, fingerprint of its filesystem log, its image config as JSON)."""
    it = Interp()
    return [(o.name, fp(it.fs(o.ref)), json.dumps(config_of(o), sort_keys=True)) for o in graph.outputs]


def digests(graph: Graph) -> tuple:
    """The identity of a graph: every op's digest in order, each output's ref and config."""
    return (tuple(op.digest for op in graph.unique_ops()),
            tuple((o.name, o.ref.op.digest, o.ref.index, json.dumps(o.image_config, sort_keys=True))
                  for o in graph.outputs))


def history_free(graph: Graph) -> bool:
    return all(op.metadata.describe(HISTORY_KEY) is None for op in graph.ops())


@st.composite
def chained_graphs(draw: st.DrawFn) -> Graph:
    """Random graphs with what ``merge`` folds: chains of FileOps and stacks of MergeOps on one
    platform, on top of a random well-formed graph, sometimes with an output in the middle."""
    from mason.ir.ops import Platform
    from tests.ir.strategies import file_actions

    base = draw(valid_graphs(max_ops=6, max_outputs=2))
    pool = [Ref(op, i) for op in base.unique_ops() for i in range(op.num_outputs())]
    plat = Platform("amd64", "linux")
    tip = draw(st.sampled_from(pool))
    outs = list(base.outputs)
    for step in range(draw(st.integers(1, 7))):
        if draw(st.booleans()) or not pool:
            extra = draw(st.lists(st.sampled_from(pool), max_size=2))
            ins = (tip, *extra)
            n = len(ins)
            acts = []
            for k in range(draw(st.integers(1, 3))):
                a = draw(file_actions(n, k))
                inp = draw(st.sampled_from([0, 0, 0, -1, a.input])) if k == 0 else \
                    draw(st.sampled_from([n + k - 1, n + k - 1, a.input]))
                acts.append(replace(a, input=inp))
            op: Op = FileOp(tuple(acts), inputs=ins, platform=plat, constraints=())
        else:
            others = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2))
            ins = (tip, *others)
            order = (0, *range(1, len(ins))) if draw(st.booleans()) else tuple(reversed(range(len(ins))))
            op = MergeOp(order, inputs=ins, platform=plat, constraints=())
        g = repair(Graph((Output("tmp", Ref(op)),)))
        tip = g.outputs[0].ref
        pool.append(tip)
        if draw(st.integers(0, 5)) == 0:
            outs.append(Output(f"mid{step}", tip, None))
    outs.append(Output("tip", tip, draw(st.sampled_from([None, {"config": {}}]))))
    markers = draw(st.lists(st.booleans(), min_size=1, max_size=6))
    return repair(Graph(tuple(outs)), markers)
