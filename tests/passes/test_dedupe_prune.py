"""``dedupe`` (hash-consing across stages) and ``prune{targets=…}`` (drop what no requested
output reaches) on hand-built multi-stage graphs."""

from __future__ import annotations

import pytest

from mason.ir.builder import State, image
from mason.ir.errors import MasonError
from mason.ir.graph import Graph, Output
from mason.passes import run_pipeline
from tests.passes.helpers import digests


def stage(cmd: str) -> State:
    """A fresh stage built from scratch objects: same prefix, distinct Python objects."""
    s = image("busybox", platform="linux/amd64").run("apk add make").root()
    return s.run(cmd).root()


def test_dedupe_shares_one_vertex_per_digest_across_stages() -> None:
    a, b = stage("make a"), stage("make b")
    prefix_a, prefix_b = a.ref.op.inputs[0].op, b.ref.op.inputs[0].op  # type: ignore[union-attr]
    assert prefix_a.digest == prefix_b.digest and prefix_a is not prefix_b
    g = Graph((Output("a", a.ref), Output("b", b.ref)))  # type: ignore[arg-type]
    out = run_pipeline(g, "dedupe")
    oa, ob = (o.ref.op for o in out.outputs)
    assert oa.inputs[0].op is ob.inputs[0].op
    assert oa.inputs[0].op.inputs[0].op is ob.inputs[0].op.inputs[0].op
    assert len(out.ops()) == len(out.unique_ops()) == 4
    assert digests(out) == digests(g)
    again = run_pipeline(out, "dedupe")
    assert all(x is y for x, y in zip(again.ops(), out.ops(), strict=False))


def test_dedupe_also_joins_same_digest_outputs() -> None:
    a, b = stage("make"), stage("make")
    out = run_pipeline(Graph((Output("a", a.ref), Output("b", b.ref))), "dedupe")  # type: ignore[arg-type]
    assert out.outputs[0].ref.op is out.outputs[1].ref.op


def stages() -> Graph:
    """Like the Dockerfile lowering: one output per stage name plus the default final output.

        FROM busybox AS a / RUN make a
        FROM alpine AS b / RUN make b
        FROM busybox / COPY --from=a /a /a
    """
    a = image("busybox", platform="linux/amd64").run("make a").root()
    b = image("alpine", platform="linux/amd64").run("make b").root()
    final = image("busybox", platform="linux/amd64").copy(a, "/a", "/a")
    return Graph((Output("a", a.ref), Output("b", b.ref), Output("default", final.ref)))  # type: ignore[arg-type]


def idents(g: Graph) -> set[str]:
    """What each op is: a source's identifier, an exec's command, else its kind."""
    out = set()
    for op in g.ops():
        if op.kind == "source":
            out.add(op.identifier)  # type: ignore[attr-defined]
        elif op.kind == "exec":
            out.add(" ".join(op.meta.args))  # type: ignore[attr-defined]
        else:
            out.add(op.kind)
    return out


def test_prune_keeps_only_what_the_targets_need() -> None:
    g = stages()
    assert run_pipeline(g, "prune") is g  # default: every output
    a = run_pipeline(g, "prune{targets=a}")
    assert a.names() == ["a"]
    assert idents(a) == {"docker-image://docker.io/library/busybox:latest", "/bin/sh -c make a"}
    final = run_pipeline(g, "prune{targets=default}")
    assert "/bin/sh -c make b" not in idents(final) and "docker-image://docker.io/library/alpine:latest" not in idents(final)
    assert "/bin/sh -c make a" in idents(final)  # COPY --from=a needs stage a
    both = run_pipeline(g, "prune{targets=default,b}")
    assert both.names() == ["default", "b"]
    assert run_pipeline(both, "prune{targets=default,b}") is both


def test_prune_unknown_target_lists_outputs() -> None:
    with pytest.raises(MasonError, match=r"prune: no output 'c' \(outputs: a, b, default\)"):
        run_pipeline(stages(), "prune{targets=a,c}")


def test_O1_with_target_builds_one_stage() -> None:
    g = stages()
    out = run_pipeline(g, "verify,hoist-config,dedupe,prune{targets=b}")
    assert out.names() == ["b"] and len(out.ops()) == 2
