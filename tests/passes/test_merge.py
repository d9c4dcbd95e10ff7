"""``merge`` (-O2): FileOp chains fold into one FileOp (action inputs renumbered by LLB's
rules), stacked ``COPY --link`` layers into one MergeOp; what must not fold stays."""

from __future__ import annotations

import json
from dataclasses import replace

from mason.ir.builder import State, image, local, merge, mkdir, scratch
from mason.ir.graph import Graph, Output
from mason.ir.layers import HISTORY_KEY
from mason.ir.ops import FileOp, MergeOp, Platform, Ref
from mason.passes import run_pipeline
from tests.passes.helpers import digests, meaning


def copies(n: int) -> tuple[State, State, State]:
    base = image("busybox", platform="linux/amd64")
    ctx = local("context")
    s = base
    for i in range(n):
        s = s.copy(ctx, f"/f{i}", f"/app/f{i}")
    return base, ctx, s


def test_chain_of_five_copies_becomes_one_fileop_with_five_actions() -> None:
    base, ctx, s = copies(5)
    g = Graph.of(s.ref, {"config": {}})  # type: ignore[arg-type]
    out = run_pipeline(g, "merge")
    op = out.outputs[0].ref.op
    assert isinstance(op, FileOp) and len(out.ops()) == 3
    assert [r.op for r in op.inputs] == [base.ref.op, ctx.ref.op]  # type: ignore[union-attr]
    # action 0 copies onto input 0; action k onto the result of action k-1 (len(inputs)+k-1)
    assert [(a.input, a.secondary_input, a.output) for a in op.actions] == \
        [(0, 1, -1), (2, 1, -1), (3, 1, -1), (4, 1, -1), (5, 1, 0)]
    assert [a.action.dest for a in op.actions] == [f"/app/f{i}" for i in range(5)]  # type: ignore[union-attr]
    assert meaning(out) == meaning(g)
    assert digests(run_pipeline(out, "merge")) == digests(out)


def test_chain_with_multi_action_ops_and_scratch_sources() -> None:
    ctx = local("context")
    s = scratch().mkdir("/a").file(mkdir("/b").mkfile("/b/c", "x")).copy(ctx, "/d", "/b/d")
    g = Graph.of(s.ref)  # type: ignore[arg-type]
    out = run_pipeline(g, "merge")
    (op,) = [o for o in out.ops() if isinstance(o, FileOp)]
    assert [(a.input, a.secondary_input, a.output) for a in op.actions] == [(-1, -1, -1), (1, -1, -1), (2, -1, -1), (3, 0, 0)]
    assert meaning(out) == meaning(g)


def test_what_must_not_fold_stays() -> None:
    base, ctx, s = copies(2)
    mid = s.ref.op.inputs[0]  # type: ignore[union-attr]
    # an output names the middle op: it is a snapshot someone wants
    g = Graph((Output("mid", mid), Output("top", s.ref)))  # type: ignore[arg-type]
    assert digests(run_pipeline(g, "merge")) == digests(g)
    # a copy *from* a FileOp (not onto it) keeps it apart
    src = scratch().mkfile("/x", "1")
    user = base.copy(src, "/x", "/x")
    g2 = Graph.of(user.ref)  # type: ignore[arg-type]
    assert digests(run_pipeline(g2, "merge")) == digests(g2)
    # two consumers keep it apart
    a, b = s.mkdir("/a"), s.mkdir("/b")
    g3 = Graph((Output("a", a.ref), Output("b", b.ref)))  # type: ignore[arg-type]
    folded = run_pipeline(g3, "merge")
    assert sum(isinstance(op, FileOp) for op in folded.ops()) == 3  # the shared 2-chain folds, the tips stay
    # FileOps carry no platform (BuildKit v0.12+): a state's platform does not keep them apart
    arm = s.with_platform("linux/arm64").mkdir("/c")
    g4 = Graph.of(arm.ref)  # type: ignore[arg-type]
    assert sum(isinstance(op, FileOp) for op in run_pipeline(g4, "merge").ops()) == 1
    # ... but a platform or constraints an op does carry (a decoded v0.11 Definition) do
    top = arm.ref.op  # type: ignore[union-attr]
    for kw in ({"platform": Platform("arm64", "linux")}, {"constraints": ("worker=x",)}):
        odd = replace(top, **kw)
        assert sum(isinstance(op, FileOp) for op in run_pipeline(Graph.of(odd.ref()), "merge").ops()) == 2


def test_copy_link_layers_become_one_mergeop() -> None:
    """COPY --link a / COPY --link b: each a FileOp onto scratch, merged onto the base."""
    base = image("busybox", platform="linux/amd64")
    ctx = local("context")
    s = base
    layers = []
    for name in ("a", "b", "c"):
        layer = scratch().copy(ctx, f"/{name}", f"/{name}")
        layers.append(layer)
        s = merge([s, layer])
    g = Graph.of(s.ref, {})  # type: ignore[arg-type]
    assert sum(isinstance(op, MergeOp) for op in g.ops()) == 3
    out = run_pipeline(g, "merge")
    m = out.outputs[0].ref.op
    assert isinstance(m, MergeOp) and sum(isinstance(op, MergeOp) for op in out.ops()) == 1
    assert [r.op for r in m.inputs] == [base.ref.op] + [lay.ref.op for lay in layers]  # type: ignore[union-attr]
    assert m.merge_inputs == (0, 1, 2, 3)
    assert meaning(out) == meaning(g)
    assert run_pipeline(g, "merge{layers=false}").outputs[0].ref.op is g.outputs[0].ref.op


def test_history_entries_of_folded_ops_are_kept_in_order() -> None:
    base, ctx, s = copies(3)
    new = base.ref
    for i, op in enumerate(r.op for r in [s.ref.op.inputs[0].op.inputs[0], s.ref.op.inputs[0], s.ref]):  # type: ignore[union-attr]
        md = op.metadata.with_descriptions({HISTORY_KEY: json.dumps({"created_by": f"COPY {i}"})})
        new = Ref(replace(op, inputs=(new, op.inputs[1]), metadata=md))
    g = Graph.of(new, {})
    out = run_pipeline(g, "merge")
    (f,) = [o for o in out.ops() if isinstance(o, FileOp)]
    assert json.loads(f.metadata.describe(HISTORY_KEY)) == [{"created_by": f"COPY {i}"} for i in range(3)]  # type: ignore[arg-type]
    hoisted = run_pipeline(out, "hoist-config").outputs[0].image_config
    assert [h["created_by"] for h in hoisted["history"]] == ["COPY 0", "COPY 1", "COPY 2"]
    assert meaning(out) == meaning(g)
