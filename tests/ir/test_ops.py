"""Ops: identity by digest, immutability, metadata and locations outside the digest, config changes."""

from __future__ import annotations

import dataclasses

import pytest

from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph, Output
from mason.ir.imageconfig import apply_config_changes, empty_image_config, env_dict
from mason.ir.ops import (
    ConfigChange,
    ExecOp,
    Meta,
    Mount,
    OpMetadata,
    Platform,
    Ref,
    SourceOp,
    walk_ops,
)
from tests.ir.strategies import chain, fixed_graph


def _src(**kw: object) -> SourceOp:
    return SourceOp("docker-image://docker.io/library/busybox:latest", **kw)  # type: ignore[arg-type]


def test_identity_is_the_digest() -> None:
    a, b = _src(), _src()
    assert a is not b and a == b and hash(a) == hash(b)
    assert a.digest.startswith("sha256:") and len(a.digest) == 71
    assert _src(platform=Platform("amd64", "linux")) != a
    assert _src(constraints=()) != a  # present-but-empty constraints change the bytes


def test_metadata_and_loc_outside_digest() -> None:
    a = _src(metadata=OpMetadata(description=(("llb.customname", "x"),)), loc=SourceLoc("Dockerfile", 1))
    assert a == _src() and a.digest == _src().digest


def test_frozen_and_replace_recomputes() -> None:
    a = _src()
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.identifier = "x"  # type: ignore[misc]
    d = a.digest
    b = dataclasses.replace(a, identifier="docker-image://docker.io/library/alpine:latest")
    assert b.digest != d and a.digest == d


def test_repr_short() -> None:
    top = chain(5000)
    r = repr(top)
    assert r.startswith("<ExecOp ") and len(r) < 60
    assert repr(Ref(top, 1)).endswith(", 1)")


def test_walk_topological_iterative() -> None:
    g = fixed_graph()
    ops = g.ops()
    pos = {id(o): i for i, o in enumerate(ops)}
    for o in ops:
        for r in o.inputs:
            assert pos[id(r.op)] < pos[id(o)]
    assert len(walk_ops([chain(20000)])) == 20000
    assert g.op(ops[0].digest) == ops[0]
    assert g.output("layer").ref.op.kind == "diff"
    with pytest.raises(MasonError, match="no output 'x' \\(outputs: app, layer\\)"):
        g.output("x")


def test_num_outputs() -> None:
    e = ExecOp(Meta(("true",)), (Mount(0, dest="/", output=0), Mount(-1, dest="/o", output=1), Mount(-1, dest="/r")),
               inputs=(Ref(_src()),))
    assert e.num_outputs() == 2 and e.mount_for_output(1).dest == "/o"  # type: ignore[union-attr]


def test_graph_of() -> None:
    g = Graph.of(_src(), {"os": "linux"})
    assert g.outputs == (Output("default", Ref(_src()), None),)


# ---------------------------------------------------------------- image config

def test_apply_config_changes() -> None:
    base = empty_image_config()
    base["config"]["Env"] = ["PATH=/bin", "A=1"]
    out = apply_config_changes(base, [
        ConfigChange("env", "A", "2"), ConfigChange("env", "B", "x=y"),
        ConfigChange("label", "k", "v"),
        ConfigChange("add", "ExposedPorts", '{"80/tcp":{}}'), ConfigChange("add", "ExposedPorts", '{"53/udp":{}}'),
        ConfigChange("set", "Cmd", '["sh"]'), ConfigChange("set", "Entrypoint", '["x"]'),
        ConfigChange("set", "Entrypoint", "null"),
        ConfigChange("append", "OnBuild", '["RUN a"]'), ConfigChange("append", "OnBuild", '["RUN b"]'),
    ], created_by="ENV A=2")
    c = out["config"]
    assert c["Env"] == ["PATH=/bin", "A=2", "B=x=y"]
    assert env_dict(out) == {"PATH": "/bin", "A": "2", "B": "x=y"}
    assert c["Labels"] == {"k": "v"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Cmd"] == ["sh"] and "Entrypoint" not in c
    assert c["OnBuild"] == ["RUN a", "RUN b"]
    assert out["history"] == [{"created_by": "ENV A=2", "comment": "buildkit.dockerfile.v0", "empty_layer": True}]
    assert base["config"]["Env"] == ["PATH=/bin", "A=1"] and base["history"] == []  # pure


def test_apply_config_changes_errors() -> None:
    with pytest.raises(MasonError, match="unknown config change action 'nope'"):
        apply_config_changes({}, [ConfigChange("nope", "k", "v")])
    with pytest.raises(MasonError, match="config change set Cmd: value is not JSON"):
        apply_config_changes({}, [ConfigChange("set", "Cmd", "[")])
    with pytest.raises(MasonError, match="must be a JSON object"):
        apply_config_changes({}, [ConfigChange("add", "Volumes", "[]")])
