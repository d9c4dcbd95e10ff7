"""Chains of 10,000+ ops: every pass is iterative (no recursion over inputs) and linear."""

from __future__ import annotations

import sys

from mason.ir.graph import Graph, Output
from mason.ir.ops import (
    ConfigChange,
    ConfigOp,
    FileAction,
    FileOp,
    MergeOp,
    MkDir,
    MkFile,
    Platform,
    Ref,
    SourceOp,
)
from mason.passes import LEVELS, run_pipeline
from tests.ir.strategies import chain

N = 10_000
PLAT = Platform("amd64", "linux")


def test_recursion_limit_is_the_default() -> None:
    assert sys.getrecursionlimit() <= 10_000 < N + 1


def test_O2_over_a_long_mixed_chain() -> None:
    g = Graph.of(chain(N), {"config": {}})
    out = run_pipeline(g, LEVELS[2], verify_each=True)
    cfg = out.outputs[0].image_config
    assert len(cfg["history"]) == (N - 1) // 3  # one per ENV ConfigOp
    last = max(i for i in range(N - 1) if i % 3 == 2)
    assert cfg["config"]["Env"] == [f"STEP={last}"]
    assert not any(op.kind == "config" for op in out.ops())
    assert run_pipeline(out, LEVELS[2]).outputs[0].ref.op is out.outputs[0].ref.op


def test_long_config_chain_hoists_to_the_source() -> None:
    src = SourceOp("docker-image://docker.io/library/busybox:latest", platform=PLAT, constraints=())
    op = src
    for i in range(N):
        op = ConfigOp((ConfigChange("label", f"l{i % 7}", str(i)),), f"LABEL l{i % 7}={i}", inputs=(Ref(op),))
    out = run_pipeline(Graph.of(op, {}), "hoist-config")
    assert out.outputs[0].ref.op is src
    cfg = out.outputs[0].image_config
    assert len(cfg["history"]) == N and cfg["config"]["Labels"]["l0"] == str(N - 1 - (N - 1) % 7)


def test_long_file_chain_merges_into_one_op() -> None:
    op = SourceOp("docker-image://docker.io/library/busybox:latest", platform=PLAT, constraints=())
    for i in range(N):
        op = FileOp((FileAction(0, -1, -1, MkDir(f"/d{i}")), FileAction(1, -1, 0, MkFile(f"/d{i}/f", data=b"x"))),
                    inputs=(Ref(op),), platform=PLAT, constraints=())
    out = run_pipeline(Graph.of(op), "dedupe,merge,verify")
    f = out.outputs[0].ref.op
    assert isinstance(f, FileOp) and len(f.actions) == 2 * N and len(out.ops()) == 2
    assert [a.input for a in f.actions[:4]] == [0, 1, 2, 3] and f.actions[-1].output == 0


def test_deeply_nested_merges_flatten() -> None:
    layers = [SourceOp(f"local://l{i}", constraints=()) for i in range(N + 1)]
    op = layers[0]
    for i in range(1, N + 1):
        op = MergeOp((0, 1), inputs=(Ref(op), Ref(layers[i])), platform=PLAT, constraints=())
    out = run_pipeline(Graph.of(op), "verify,merge,prune,dedupe")
    m = out.outputs[0].ref.op
    assert isinstance(m, MergeOp) and m.merge_inputs == tuple(range(N + 1))
    assert [r.op for r in m.inputs] == layers


def test_wide_fan_in_many_outputs() -> None:
    src = SourceOp("docker-image://docker.io/library/busybox:latest", platform=PLAT, constraints=())
    outs = []
    for i in range(2000):
        c = ConfigOp((ConfigChange("env", "I", str(i)),), f"ENV I={i}", inputs=(Ref(src),))
        f = FileOp((FileAction(0, -1, 0, MkDir(f"/o{i}")),), inputs=(Ref(c),), platform=PLAT, constraints=())
        outs.append(Output(f"s{i}", Ref(f), {}))
    out = run_pipeline(Graph(tuple(outs)), LEVELS[2])
    assert len(out.ops()) == 2001
    assert out.outputs[7].image_config["config"]["Env"] == ["I=7"]
